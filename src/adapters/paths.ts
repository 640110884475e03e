/** Where pi-image's own files (templates, catalogue, manifests) live, in a checkout and when installed. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

let root: string | undefined;

/** The package root: the folder holding package.json, cloud-init/, images/, manifests/. */
export function packageRoot(): string {
  // This code runs from src/adapters/paths.ts (tsx/vitest), dist/adapters/paths.js (the library) or
  // inside the bundled CLI (dist/cli.js, dist/chunks/*.js): the nearest folder above it that holds a
  // package.json is the package (src/ and dist/ hold none).
  if (root === undefined) {
    const here = dirname(fileURLToPath(import.meta.url));
    let dir = here;
    while (!existsSync(join(dir, 'package.json'))) {
      const up = dirname(dir);
      if (up === dir) {
        dir = join(here, '..', '..');
        break;
      }
      dir = up;
    }
    root = dir;
  }
  return root;
}

export function packagePath(...parts: string[]): string {
  return join(packageRoot(), ...parts);
}
