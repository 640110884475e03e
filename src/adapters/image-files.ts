/**
 * Whole image files: sparse copies of a cached base, free-space checks, temp-then-rename outputs
 * that are cleaned up on failure and on Ctrl-C, and writing a node's rendered files into an image.
 *
 * The bake flow a command builds from these:
 *
 *   const layout = await inspectImage(base);
 *   await requireCloudInit({ image: base, offset: layout.root.startBytes });
 *   await withTempOutput(out, async (tmp) => {
 *     await sparseCopy(base, tmp);                   // never touch the cached base
 *     await writeRenderedFiles(tmp, layout, files);  // boot → mtools, root → one debugfs run
 *   });                                              // renamed to `out` only on success
 */
import { rmSync } from 'node:fs';
import { chmod, lstat, readdir, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { dirname, join, resolve } from 'node:path';
import { EnvironmentError, IoError } from '../core/errors.js';
import type { RenderedFile } from '../core/model.js';
import { killAllChildren, run, pidAlive } from './process.js';
import type { ImageLayout } from './partitions.js';
import { fatWriteFiles } from './fat.js';
import { ext4Apply, type Ext4Op } from './ext4.js';

export interface Progress {
  /** what is being done, e.g. 'download', 'decompress', 'hash', 'copy' */
  phase?: string;
  bytes: number;
  /** undefined when unknown */
  total: number | undefined;
}
export type ProgressFn = (p: Progress) => void;

/** Free bytes for an unprivileged user on the filesystem holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Throws EnvironmentError when `dir`'s filesystem has fewer than `needed` bytes free. */
export async function ensureFreeSpace(dir: string, needed: number, what: string): Promise<void> {
  const free = await freeBytes(dir);
  if (free < needed) {
    throw new EnvironmentError(
      `not enough free space in ${dir} for ${what}: need ${formatBytes(needed)}, ${formatBytes(free)} available`,
      { hint: `free some space there, or choose another location (e.g. set PI_IMAGE_CACHE or --build-dir)` },
    );
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** Bytes a file really occupies on disk (sparse files occupy less than their size). */
export async function allocatedBytes(path: string): Promise<number> {
  const s = await stat(path);
  return Math.min(s.size, s.blocks * 512);
}

/**
 * Copies `src` to `dest` keeping holes (or sharing blocks via reflink where the filesystem can).
 * Checks free space first. `dest` is written directly: use withTempOutput for an atomic result.
 */
export async function sparseCopy(src: string, dest: string): Promise<void> {
  let size: number;
  try {
    size = await allocatedBytes(src);
  } catch (err) {
    throw new IoError(`cannot read ${src}: ${(err as Error).message}`, { cause: err });
  }
  await ensureFreeSpace(dirname(resolve(dest)), size + 16 * 1024 * 1024, `a copy of ${src}`);
  await run('cp', ['--reflink=auto', '--sparse=always', '--', src, dest], { what: `copying ${src}` });
  // owner-only before anything (a seed with tokens) is written into the copy
  await chmod(dest, PRIVATE_FILE_MODE);
}

const cleanups = new Set<string>();
let handlersInstalled = false;

function onSignal(signal: NodeJS.Signals): void {
  killAllChildren(); // first: a running xz or debugfs must not keep writing (or holding) a temp file
  for (const p of cleanups) {
    try {
      rmSync(p, { force: true, recursive: true }); // synchronous: the process is about to exit
    } catch {
      /* best effort */
    }
  }
  cleanups.clear();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  handlersInstalled = false;
  // re-raise so the default action (exit) happens, unless someone else handles the signal
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

/**
 * Registers a path (a temp file, a lock file, a staging folder with what is in it) to delete if the
 * process gets SIGINT/SIGTERM; returns the unregister function.
 */
export function removeOnSignal(path: string): () => void {
  cleanups.add(path);
  if (!handlersInstalled) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    handlersInstalled = true;
  }
  return () => {
    cleanups.delete(path);
    if (cleanups.size === 0 && handlersInstalled) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      handlersInstalled = false;
    }
  };
}

/** The temporary name used for `dest` while it is being produced. */
export function tempPathFor(dest: string): string {
  return `${dest}.tmp-${process.pid}`;
}

/** `<name>.tmp-<pid>` (withTempOutput) and `<name>.tmp-<pid>-<hex>` (atomic writes of small files). */
const TEMP_NAME = /\.tmp-(\d+)(?:-[0-9a-f]+)?$/;

/**
 * Removes the temp outputs in `dir` that a process which no longer runs left behind (a SIGKILLed or
 * crashed build cannot clean up after itself). Temp files of running processes (a concurrent build)
 * are kept. Returns what was removed, so the command can say so.
 */
export async function removeStaleTemps(dir: string): Promise<{ path: string; pid: number; bytes: number }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: { path: string; pid: number; bytes: number }[] = [];
  for (const name of names.sort()) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pidAlive(pid)) continue;
    const path = join(dir, name);
    try {
      const st = await lstat(path);
      if (!st.isFile()) continue;
      await rm(path, { force: true });
      removed.push({ path, pid, bytes: st.size });
    } catch {
      /* gone meanwhile, or not ours to remove: leave it */
    }
  }
  return removed;
}

/**
 * Writes `contents` to a new temp file next to `dest` (`<dest>.tmp-<pid>`, removed on SIGINT/SIGTERM
 * until the caller renames it) and returns its path; IoError naming `dest` when that fails (ENOSPC…).
 */
export async function writeTempFile(dest: string, contents: string, mode: number): Promise<{ path: string; forget: () => void }> {
  const tmp = tempPathFor(dest);
  const forget = removeOnSignal(tmp);
  try {
    await writeFile(tmp, contents, { mode });
    await chmod(tmp, mode);
    return { path: tmp, forget };
  } catch (cause) {
    forget();
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new IoError(`cannot write ${dest}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, {
      hint: 'check that the output directory is writable and the disk is not full (or pass --build-dir DIR); the previous image and record were kept',
      cause,
    });
  }
}

/** Mode of image files and other outputs that hold secrets: owner only. */
export const PRIVATE_FILE_MODE = 0o600;
/** Mode of directories pi-image creates for such outputs. */
export const PRIVATE_DIR_MODE = 0o700;

/**
 * Runs `fn` with a temporary path next to `dest` (`<dest>.tmp-<pid>`); on success renames it to
 * `dest`, on failure or SIGINT/SIGTERM deletes it. An existing `dest` is only replaced on success.
 * With `mode`, the file gets that mode before it appears under its final name.
 */
export interface TempOutputOptions {
  /** the file's mode before it appears under its final name */
  mode?: number;
  /** runs after `fn`, before the rename (e.g. writes a companion file that must exist first); a throw keeps `dest` as it was */
  beforeRename?: (tmp: string) => Promise<void>;
  /** runs right after the rename (e.g. renames the companion file) */
  afterRename?: () => Promise<void>;
}

export async function withTempOutput<T>(dest: string, fn: (tmp: string) => Promise<T>, opts: TempOutputOptions = {}): Promise<T> {
  const tmp = tempPathFor(dest);
  await rm(tmp, { force: true });
  const unregister = removeOnSignal(tmp);
  try {
    const result = await fn(tmp);
    if (opts.mode !== undefined) await chmod(tmp, opts.mode);
    await opts.beforeRename?.(tmp);
    await rename(tmp, dest);
    await opts.afterRename?.();
    return result;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    unregister();
  }
}

/**
 * The loop of fileSha256, run in a worker thread (plain CommonJS, evaluated by the Worker): hashing
 * is CPU-bound and synchronous in OpenSSL, so on the main thread it stalls the event loop and two
 * hashes (the base's while an image is copied, or two images of a `--jobs 2` build) take turns
 * on one core; in workers they run side by side. 1 MiB reads into one reused buffer stay in the
 * CPU caches between read and hash: twice as fast on a 2.7 GiB image as a 4 MiB createReadStream.
 * \`whole: false\` skips the file's own sha256 and reads only the bytes of \`ranges\`.
 */
const HASH_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { closeSync, fstatSync, openSync, readSync } = require('node:fs');
const { createHash } = require('node:crypto');
const { path, chunk, every, ranges, data, whole } = workerData;
try {
  const fd = openSync(path, 'r');
  try {
    const total = fstatSync(fd).size;
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(chunk);
    const zeros = data ? Buffer.alloc(chunk) : undefined;
    // segment boundaries: where a range (hashed on its own too) or a data extent starts or ends
    const cuts = new Set([0, total]);
    for (const r of ranges || []) { cuts.add(r.start); cuts.add(r.end); }
    for (const r of data || []) { cuts.add(Math.min(r.start, total)); cuts.add(Math.min(r.end, total)); }
    const points = [...cuts].filter((p) => p <= total).sort((a, b) => a - b);
    const sums = [];
    let ri = 0;
    let di = 0;
    let rh;
    let bytes = 0;
    let last = 0;
    for (let k = 0; k + 1 < points.length; k++) {
      const start = points[k];
      const end = points[k + 1];
      const range = ranges && ranges[ri] && ranges[ri].start <= start && start < ranges[ri].end ? ranges[ri] : undefined;
      if (range && range.start === start) rh = createHash('sha256');
      while (data && data[di] && data[di].end <= start) di++;
      if (!whole && !range) continue; // only the ranges are wanted: skip what lies between them
      // a hole reads as zeros: hash zeros instead of reading them
      const hole = data !== undefined && !(data[di] && data[di].start <= start);
      for (let pos = start; pos < end; ) {
        const want = Math.min(chunk, end - pos);
        let piece;
        if (hole) piece = zeros.subarray(0, want);
        else {
          const n = readSync(fd, buf, 0, want, pos);
          if (n === 0) throw new Error('the file is shorter than it was (changed while being read)');
          piece = buf.subarray(0, n);
        }
        if (whole) h.update(piece);
        if (range) rh.update(piece);
        pos += piece.length;
        bytes = pos;
        if (every > 0 && (bytes - last >= every || bytes === total)) {
          last = bytes;
          parentPort.postMessage({ bytes, total });
        }
      }
      if (range && range.end === end) { sums.push(rh.digest('hex')); ri++; }
    }
    parentPort.postMessage({ digest: whole ? h.digest('hex') : '', sums });
  } finally {
    closeSync(fd);
  }
} catch (err) {
  parentPort.postMessage({ error: String(err && err.message) });
}
`;

type HashMessage = { digest: string; sums: string[] } | { error: string } | { bytes: number; total: number };

/**
 * sha256 (hex) of a file, streaming, in a worker thread; reports progress (every 16 MiB) if asked.
 * Aborting `signal` stops the thread and rejects (a failed build does not wait for its hashes).
 */
export function fileSha256(path: string, onProgress?: ProgressFn, signal?: AbortSignal): Promise<string> {
  return hashInWorker(path, { whole: true }, onProgress, signal).then((r) => r.sha256);
}

/**
 * The file's sha256 and, in the same read pass (one thread), the sha256 of each of `ranges`
 * (sorted, disjoint byte ranges). With `data` (the file's data extents, SEEK_DATA/SEEK_HOLE), holes
 * are not read: they are hashed as the zeros they read as.
 */
export function fileSha256AndRanges(
  path: string,
  o: { ranges?: readonly { start: number; end: number }[]; data?: readonly { start: number; end: number }[] },
  onProgress?: ProgressFn,
  signal?: AbortSignal,
): Promise<{ sha256: string; sums: string[] }> {
  return hashInWorker(path, { whole: true, ranges: o.ranges, data: o.data }, onProgress, signal);
}

/**
 * The sha256 of each of `ranges` (sorted, disjoint byte ranges) of a file, in a worker thread that
 * reads only those bytes (holes listed by `data` are hashed as zeros, not read). With
 * fileSha256 in another thread, the two hashes of a new image run side by side on two cores.
 */
export function fileRangeSums(
  path: string,
  o: { ranges: readonly { start: number; end: number }[]; data?: readonly { start: number; end: number }[] },
  signal?: AbortSignal,
): Promise<string[]> {
  return hashInWorker(path, { whole: false, ranges: o.ranges, data: o.data }, undefined, signal).then((r) => r.sums);
}

/** One HASH_WORKER thread over `path`. Aborting `signal` stops the thread and rejects. */
function hashInWorker(
  path: string,
  w: { whole: boolean; ranges?: readonly { start: number; end: number }[] | undefined; data?: readonly { start: number; end: number }[] | undefined },
  onProgress?: ProgressFn,
  signal?: AbortSignal,
): Promise<{ sha256: string; sums: string[] }> {
  return new Promise((resolvePromise, reject) => {
    const fail = (message: string, cause?: unknown) => reject(new IoError(`cannot read ${path}: ${message}`, { cause }));
    if (signal?.aborted) return fail('cancelled');
    const worker = new Worker(HASH_WORKER, {
      eval: true,
      workerData: { path, chunk: 1024 * 1024, every: onProgress === undefined ? 0 : 16 * 1024 * 1024, ranges: w.ranges, data: w.data, whole: w.whole },
    });
    worker.on('message', (m: HashMessage) => {
      if ('digest' in m) resolvePromise({ sha256: m.digest, sums: m.sums });
      else if ('error' in m) fail(m.error);
      else {
        try {
          onProgress?.({ phase: 'hash', bytes: m.bytes, total: m.total });
        } catch (err) {
          fail((err as Error).message, err);
          void worker.terminate();
        }
      }
    });
    const onAbort = () => {
      fail('cancelled');
      void worker.terminate();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('error', (err) => fail(err.message, err));
    worker.on('exit', (code) => {
      signal?.removeEventListener('abort', onAbort);
      fail(`the hashing thread stopped (exit code ${code})`); // no-op once settled
    });
  });
}

export interface WriteFilesOptions {
  /** seconds since the epoch for timestamps of written files (reproducible images) */
  epoch?: number;
  /** more root filesystem changes (e.g. `copy` ops for a payload), applied in the same debugfs run */
  rootOps?: readonly Ext4Op[];
}

/**
 * Writes a node's rendered files into an image: `boot` files to the FAT partition (mtools),
 * `root` files (then `opts.rootOps`) to the ext4 partition in one debugfs run (mode 0..7777, owner
 * root unless the RenderedFile says otherwise). `build` files are not part of the image and are skipped.
 */
export async function writeRenderedFiles(
  image: string,
  layout: ImageLayout,
  files: readonly (RenderedFile & { uid?: number; gid?: number })[],
  opts: WriteFilesOptions = {},
): Promise<void> {
  const boot = files.filter((f) => f.target === 'boot');
  const root = files.filter((f) => f.target === 'root');
  await fatWriteFiles(
    { image, offset: layout.boot.startBytes },
    boot.map((f) => ({ path: f.path.startsWith('/') ? f.path : `/${f.path}`, contents: f.contents })),
    opts.epoch === undefined ? {} : { mtime: new Date(opts.epoch * 1000) },
  );
  const ops: Ext4Op[] = root.map((f): Ext4Op => ({
    kind: 'file',
    path: f.path,
    contents: f.contents,
    mode: f.mode,
    ...(f.uid === undefined ? {} : { uid: f.uid }),
    ...(f.gid === undefined ? {} : { gid: f.gid }),
  }));
  ops.push(...(opts.rootOps ?? []));
  await ext4Apply({ image, offset: layout.root.startBytes }, ops, opts.epoch === undefined ? {} : { epoch: opts.epoch });
}
