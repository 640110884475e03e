/**
 * Reads an inventory directory and validates it with the pure core.
 * The only I/O here is listing and reading nodes/*.yaml and the catalogue names.
 */
import { readdir, readFile } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { packagePath } from '../adapters/paths.js';
import { InputError } from '../core/errors.js';
import { formatDiagnostic } from '../core/inventory/diagnostics.js';
import { type ValidationResult, validateInventory } from '../core/inventory/validate.js';
import type { Inventory } from '../core/model.js';

export interface LoadOptions {
  cwd?: string;
  /** catalogue directory (default: the package's images/); its *.yaml names are the known base images */
  catalogueDir?: string;
}

/** Path as shown to the user: relative to cwd when inside it. */
export function displayPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

async function catalogueNames(dir: string): Promise<string[] | undefined> {
  try {
    const entries = await readdir(dir);
    return entries.filter((f) => /\.ya?ml$/.test(f)).map((f) => f.replace(/\.ya?ml$/, '')).sort();
  } catch {
    return undefined;
  }
}

/** Validates without throwing: for `pi-image validate`, which prints errors and warnings itself. */
export async function checkInventory(dir: string, opts: LoadOptions = {}): Promise<ValidationResult> {
  const cwd = opts.cwd ?? process.cwd();
  const abs = isAbsolute(dir) ? dir : join(cwd, dir);
  let entries: string[];
  try {
    entries = await readdir(abs);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(
      code === 'ENOENT' ? `inventory directory ${dir} does not exist` : `cannot read inventory directory ${dir} (${code})`,
      { hint: 'pass --inventory DIR (default: nodes/) pointing at cluster.yaml and the node files' },
    );
  }
  const names = entries.filter((f) => /\.ya?ml$/.test(f) && !f.startsWith('.')).sort();
  const files = await Promise.all(
    names.map(async (name) => ({ path: displayPath(join(abs, name), cwd), text: await readFile(join(abs, name), 'utf8') })),
  );
  const knownImages = await catalogueNames(opts.catalogueDir ?? packagePath('images'));
  const displayDir = displayPath(abs, cwd);
  return validateInventory(files, knownImages ? { dir: abs, displayDir, knownImages } : { dir: abs, displayDir });
}

/** Loads and validates the inventory; throws an InputError listing every problem. */
export async function loadInventory(dir: string, opts: LoadOptions = {}): Promise<Inventory> {
  const result = await checkInventory(dir, opts);
  if (!result.inventory) {
    const n = result.errors.length;
    throw new InputError(`the inventory in ${dir} has ${n} problem${n === 1 ? '' : 's'}`, {
      details: result.errors.map(formatDiagnostic),
      hint: 'fix the fields above (docs/inventory.md describes each one), then run `pi-image validate`',
    });
  }
  return result.inventory;
}
