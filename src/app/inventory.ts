/**
 * Reads an inventory directory and validates it with the pure core.
 * The only I/O here is listing and reading nodes/*.yaml and the catalogue names.
 */
import { lstat, open, readdir } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { packagePath } from '../adapters/paths.js';
import { trace } from '../adapters/trace.js';
import { InputError, IoError } from '../core/errors.js';
import { type Diagnostic, formatDiagnostic } from '../core/inventory/diagnostics.js';
import { INVENTORY_FILE_RE } from '../core/inventory/names.js';
import { printable } from '../core/inventory/text.js';
import { CLUSTER_FILE, type ValidationResult, validateClusterFile, validateInventory } from '../core/inventory/validate.js';
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

/** Largest inventory file read (a node file is a few hundred bytes; this stops a stray big file early). */
export const MAX_INVENTORY_FILE_BYTES = 1024 * 1024;

/** A path as printed in messages: control characters (a newline in a file name) escaped. */
function shown(path: string, cwd: string): string {
  return printable(displayPath(path, cwd), 4096);
}

function fileProblem(file: string, message: string): Diagnostic {
  return { severity: 'error', file, line: 1, col: 1, field: '', message };
}

/**
 * Reads one inventory file: text, or a diagnostic for a file the user can fix (a loop, a dangling
 * link, a directory, an oversize file). Permission and device errors are I/O errors (exit 4).
 */
async function readInventoryFile(path: string, display: string): Promise<{ text: string } | { problem: Diagnostic }> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return { problem: fileProblem(display, 'is a symbolic link that loops (it points back at itself); replace it with the node file') };
    if (code === 'ENOENT') {
      const link = await lstat(path).then((st) => st.isSymbolicLink(), () => false);
      return { problem: fileProblem(display, link ? 'is a symbolic link to a file that does not exist; fix or remove the link' : 'disappeared while the inventory was read') };
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new IoError(`cannot read ${display}: permission denied`, { hint: `make it readable (e.g. chmod 644 ${display}) or run as its owner`, cause: error });
    }
    throw new IoError(`cannot read ${display}: ${code ?? (error as Error).message}`, { cause: error });
  }
  try {
    const st = await handle.stat();
    if (st.isDirectory()) return { problem: fileProblem(display, 'is a directory; every *.yaml entry of the inventory must be a file (rename the directory)') };
    if (!st.isFile()) return { problem: fileProblem(display, 'is not a regular file (a device, pipe or socket); inventory files are plain YAML files') };
    if (st.size > MAX_INVENTORY_FILE_BYTES) {
      return { problem: fileProblem(display, `is ${st.size} bytes; inventory files are at most ${MAX_INVENTORY_FILE_BYTES} bytes (is this really a node file?)`) };
    }
    const buf = Buffer.alloc(Math.min(st.size, MAX_INVENTORY_FILE_BYTES) + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, n, buf.length - n, n);
      if (bytesRead === 0 || n + bytesRead >= buf.length) {
        n += bytesRead;
        break;
      }
      n += bytesRead;
    }
    if (n > MAX_INVENTORY_FILE_BYTES) {
      return { problem: fileProblem(display, `is larger than ${MAX_INVENTORY_FILE_BYTES} bytes; inventory files are small YAML files`) };
    }
    return { text: buf.subarray(0, n).toString('utf8') };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') return { problem: fileProblem(display, 'is a directory; every *.yaml entry of the inventory must be a file (rename the directory)') };
    throw new IoError(`cannot read ${display}: ${code ?? (error as Error).message}`, { cause: error });
  } finally {
    await handle.close();
  }
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
    const hint = 'pass --inventory DIR (default: nodes/) pointing at cluster.yaml and the node files';
    if (code === 'EACCES' || code === 'EPERM') throw new IoError(`cannot read inventory directory ${dir}: permission denied`, { hint, cause: error });
    throw new InputError(
      code === 'ENOENT'
        ? `inventory directory ${dir} does not exist`
        : code === 'ENOTDIR'
          ? `inventory ${dir} is not a directory`
          : code === 'ELOOP'
            ? `inventory directory ${dir} is a symbolic link that loops`
            : `cannot read inventory directory ${dir} (${code})`,
      { hint, cause: error },
    );
  }
  const names = entries.filter((f) => INVENTORY_FILE_RE.test(f) && !f.startsWith('.')).sort();
  const files: { path: string; text: string }[] = [];
  const problems: Diagnostic[] = [];
  for (const name of names) {
    const display = shown(join(abs, name), cwd);
    const r = await readInventoryFile(join(abs, name), display);
    if ('text' in r) {
      files.push({ path: display, text: r.text });
      trace(`read ${display} (${Buffer.byteLength(r.text)} bytes)`);
    } else problems.push(r.problem);
  }
  const knownImages = await catalogueNames(opts.catalogueDir ?? packagePath('images'));
  const displayDir = shown(abs, cwd);
  const result = validateInventory(files, knownImages ? { dir: abs, displayDir, knownImages } : { dir: abs, displayDir });
  if (problems.length === 0) return result;
  // an unreadable file is a problem of the inventory: no model, every problem listed
  const { inventory: _dropped, ...rest } = result;
  return { ...rest, errors: [...problems, ...result.errors].sort((a, b) => a.file.localeCompare(b.file)) };
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

/** The cluster settings the secrets commands need, from cluster.yaml alone (validated by its schema). */
export interface ClusterSettings {
  name: string;
  /** cluster.yaml configures Wi-Fi (so images need the wifi-psk secret) */
  wifi: boolean;
}

/**
 * Reads and validates only `<dir>/cluster.yaml` (YAML syntax and schema, as `validate` does), so
 * commands that need the cluster's name work before the node files exist or while they are being
 * fixed. Throws an InputError listing every problem of the file.
 */
export async function loadClusterSettings(dir: string, opts: LoadOptions = {}): Promise<ClusterSettings> {
  const cwd = opts.cwd ?? process.cwd();
  const abs = isAbsolute(dir) ? dir : join(cwd, dir);
  const file = join(abs, CLUSTER_FILE);
  const display = shown(file, cwd);
  const exists = await lstat(file).then(
    () => true,
    () => false,
  );
  if (!exists) {
    throw new InputError(`${display} does not exist`, { hint: 'pass the inventory directory with --inventory (default: nodes)' });
  }
  const read = await readInventoryFile(file, display);
  if ('problem' in read) {
    throw new InputError(`${display} cannot be read`, { details: [formatDiagnostic(read.problem)] });
  }
  const text = read.text;
  const r = validateClusterFile({ path: display, text });
  if (!r.cluster) {
    const n = r.errors.length;
    throw new InputError(`${display} has ${n} problem${n === 1 ? '' : 's'}`, {
      details: r.errors.map(formatDiagnostic),
      hint: 'fix the fields above (docs/inventory.md describes each one), then run `pi-image validate`',
    });
  }
  return { name: r.cluster.name, wifi: r.cluster.wifi !== undefined };
}
