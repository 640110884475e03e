/** Where pi-image's own files (templates, catalogue, manifests) live, in a checkout and when installed. */
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** The package root: the folder holding package.json, cloud-init/, images/, manifests/. */
export function packageRoot(): string {
  // this file is src/adapters/paths.ts (tsx/vitest) or dist/adapters/paths.js (built): two levels up.
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

export function packagePath(...parts: string[]): string {
  return join(packageRoot(), ...parts);
}
