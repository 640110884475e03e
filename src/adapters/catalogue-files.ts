/** Reads the base-image catalogue (`images/<name>.yaml` shipped with pi-image) from disk. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, IoError } from '../core/errors.js';
import { parseCatalogue, type CatalogueEntry } from '../core/catalogue.js';
import { packagePath } from './paths.js';

/** The catalogue directory shipped with pi-image. */
export function catalogueDir(): string {
  return packagePath('images');
}

/** Names of all catalogue entries (file names without .yaml), sorted. */
export async function catalogueNames(dir: string = catalogueDir()): Promise<string[]> {
  try {
    return (await readdir(dir))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.slice(0, -'.yaml'.length))
      .sort();
  } catch (err) {
    throw new IoError(`cannot read the base-image catalogue ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

/** Loads and validates `images/<name>.yaml`; InputError listing the known names when it is missing. */
export async function loadCatalogueEntry(name: string, dir: string = catalogueDir()): Promise<CatalogueEntry> {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) {
    throw new InputError(`"${name}" is not a base-image name (lower-case letters, digits, ".", "-", "_")`);
  }
  const file = join(dir, `${name}.yaml`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      const known = await catalogueNames(dir).catch(() => []);
      throw new InputError(`base image "${name}" is not in the catalogue (${dir})`, {
        hint: known.length > 0 ? `known images: ${known.join(', ')}` : 'run `pi-image images list`',
      });
    }
    throw new IoError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseCatalogue(text, `images/${name}.yaml`, name);
}

/** Every catalogue entry. */
export async function loadCatalogue(dir: string = catalogueDir()): Promise<CatalogueEntry[]> {
  const names = await catalogueNames(dir);
  return Promise.all(names.map((n) => loadCatalogueEntry(n, dir)));
}
