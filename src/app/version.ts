import { readFileSync } from 'node:fs';
import { packagePath } from '../adapters/paths.js';

/** pi-image's version, from package.json. */
export function toolVersion(): string {
  return (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string }).version;
}
