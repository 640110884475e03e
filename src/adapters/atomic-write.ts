/**
 * The one way pi-image writes a small file: a temp file in the same directory (exclusive create,
 * the final mode from the start), fsync, rename over the target, fsync the directory. A reader sees
 * the old file or the new one, never a half-written one, also after a power cut; a crash leaves at
 * most a `<name>.tmp-<pid>-<random>` next to the target. Secret files pass mode 0o600.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { IoError } from '../core/errors.js';
import { trace } from './trace.js';

export interface AtomicWriteOptions {
  /** file mode (default 0o644); applied with chmod too, so the umask cannot widen or narrow it */
  mode?: number;
  /** mode of directories created on the way (default 0o755) */
  dirMode?: number;
  /** the hint of the IoError when the write fails */
  hint?: string;
}

const DEFAULT_HINT = 'check that the directory is writable and the disk is not full';

/** Temp name next to `path`, unique per process and call. */
export function atomicTempPath(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** fsyncs a directory so a rename in it survives a power cut; filesystems that refuse are ignored. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // some filesystems (and platforms) do not allow fsync on a directory: the rename still happened
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** Writes `contents` to `path` atomically with the given mode; throws IoError naming the file. */
export async function atomicWriteFile(path: string, contents: string | Uint8Array, opts: AtomicWriteOptions | number = {}): Promise<void> {
  const o: AtomicWriteOptions = typeof opts === 'number' ? { mode: opts } : opts;
  const mode = o.mode ?? 0o644;
  const dir = dirname(path);
  const tmp = atomicTempPath(path);
  try {
    await mkdir(dir, { recursive: true, mode: o.dirMode ?? 0o755 });
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(contents);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await fsyncDir(dir);
    trace(`wrote ${path} (${typeof contents === 'string' ? Buffer.byteLength(contents) : contents.byteLength} bytes, mode ${mode.toString(8).padStart(4, '0')})`);
  } catch (cause) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new IoError(`cannot write ${path}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, {
      hint: o.hint ?? DEFAULT_HINT,
      cause,
    });
  }
}

/** True for the temp files atomicWriteFile leaves behind after a crash (`<name>.tmp-<pid>-<hex>`). */
export function isAtomicTempName(name: string): boolean {
  return /\.tmp-\d+-[0-9a-f]{8}$/.test(basename(name));
}
