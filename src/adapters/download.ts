/**
 * The base-image cache: downloads (resumable, sha256-checked while streaming), decompression into
 * sparse raw images, import of local files, and re-verification.
 *
 * Cache directory: $PI_IMAGE_CACHE, else $XDG_CACHE_HOME/pi-image, else ~/.cache/pi-image.
 *   images/<name>.img        the raw image (sparse), never modified after it is complete
 *   images/<name>.json       sidecar: sha256 + size of the .img and where it came from
 *   downloads/<file>.part    an unfinished download (resumed with an HTTP Range request)
 *   downloads/<file>         a complete, verified download not yet decompressed
 *
 * Progress goes through `onProgress({ phase, bytes, total })` so commands can draw a bar.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { EnvironmentError, InputError, IoError, PiImageError } from '../core/errors.js';
import {
  cachedImageName,
  compressionFromMagic,
  compressionFromName,
  downloadName,
  type CatalogueEntry,
  type Compression,
} from '../core/catalogue.js';
import { spawnStream } from './process.js';
import { ensureFreeSpace, fileSha256, formatBytes, withTempOutput, type ProgressFn } from './image-files.js';

export type { Progress, ProgressFn } from './image-files.js';

/** The cache directory from the environment (see module comment). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const own = env['PI_IMAGE_CACHE'];
  if (own !== undefined && own !== '') return resolve(own);
  const xdg = env['XDG_CACHE_HOME'];
  if (xdg !== undefined && xdg !== '') return resolve(xdg, 'pi-image');
  return join(home, '.cache', 'pi-image');
}

/** What the sidecar `images/<name>.json` records about a cached image. */
export interface CacheRecord {
  version: 1;
  name: string;
  /** sha256 and size of the raw .img */
  sha256: string;
  size: number;
  source: { kind: 'url'; url: string } | { kind: 'file'; path: string };
  /** sha256 of the downloaded / imported (possibly compressed) file */
  sourceSha256: string;
  compression: Compression;
  createdAt: string;
  verifiedAt?: string;
}

export interface CachedImage {
  name: string;
  path: string;
  record: CacheRecord;
  /** true when it was already in the cache */
  cached: boolean;
}

export interface CacheOptions {
  /** default: cacheDir() */
  cacheDir?: string;
  onProgress?: ProgressFn;
  /** clock for sidecar timestamps (default: new Date()) */
  now?: () => Date;
}

export interface FetchOptions extends CacheOptions {
  /** re-download even when a matching image is cached */
  force?: boolean;
  /** attempts after the first when the connection breaks (default 3); each resumes via Range */
  retries?: number;
  /** pause before a retry (default 2000 ms, doubled each time) */
  retryDelayMs?: number;
  /** abort an attempt after this long without data (default 60 s) */
  stallTimeoutMs?: number;
  /** keep downloads/<file> after decompressing (default false) */
  keepDownload?: boolean;
}

function paths(dir: string, name: string): { img: string; sidecar: string } {
  return { img: join(dir, 'images', cachedImageName(name)), sidecar: join(dir, 'images', `${name}.json`) };
}

export async function readCacheRecord(dir: string, name: string): Promise<CacheRecord | undefined> {
  const p = paths(dir, name).sidecar;
  let text: string;
  try {
    text = await readFile(p, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IoError(`cannot read ${p}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const r = JSON.parse(text) as CacheRecord;
    if (r.version !== 1 || typeof r.sha256 !== 'string' || typeof r.size !== 'number') throw new Error('unexpected content');
    return r;
  } catch (err) {
    throw new IoError(`cache record ${p} is damaged: ${(err as Error).message}`, {
      hint: `delete it and the image next to it, then fetch again (pi-image images fetch ${name} --force)`,
    });
  }
}

async function writeCacheRecord(dir: string, record: CacheRecord): Promise<void> {
  const p = paths(dir, record.name).sidecar;
  await writeFile(`${p}.tmp-${process.pid}`, `${JSON.stringify(record, null, 2)}\n`);
  await rename(`${p}.tmp-${process.pid}`, p);
}

/** Cached images (those with a sidecar), by name. */
export async function listCachedImages(dir: string): Promise<CacheRecord[]> {
  const { readdir } = await import('node:fs/promises');
  let names: string[];
  try {
    names = await readdir(join(dir, 'images'));
  } catch {
    return [];
  }
  const out: CacheRecord[] = [];
  for (const f of names.filter((n) => n.endsWith('.json')).sort()) {
    const r = await readCacheRecord(dir, f.slice(0, -'.json'.length));
    if (r !== undefined) out.push(r);
  }
  return out;
}

/** Path of the cached image for `name`, if it is complete (sidecar + file of the recorded size). */
export async function cachedImagePath(dir: string, name: string): Promise<string | undefined> {
  const r = await readCacheRecord(dir, name);
  if (r === undefined) return undefined;
  const p = paths(dir, name).img;
  try {
    return (await stat(p)).size === r.size ? p : undefined;
  } catch {
    return undefined;
  }
}

// ── fetch ────────────────────────────────────────────────────────────────────────────────────────

/**
 * Makes sure the catalogue entry's image is in the cache: downloads (resuming an earlier partial
 * download), checks the download's sha256, decompresses into a sparse .img, checks or records the
 * extracted sha256. Returns quickly when a matching image is already cached.
 */
export async function fetchImage(entry: CatalogueEntry, opts: FetchOptions = {}): Promise<CachedImage> {
  const dir = opts.cacheDir ?? cacheDir();
  const { img } = paths(dir, entry.name);
  await mkdir(join(dir, 'images'), { recursive: true });
  await mkdir(join(dir, 'downloads'), { recursive: true });

  const existing = await readCacheRecord(dir, entry.name);
  if (existing !== undefined && opts.force !== true && matches(existing, entry) && (await cachedImagePath(dir, entry.name)) !== undefined) {
    return { name: entry.name, path: img, record: existing, cached: true };
  }

  const done = join(dir, 'downloads', downloadName(entry.url));
  // a complete, verified download left by an earlier run whose extraction failed
  const haveComplete = await fileSha256(done).then(
    (digest) => digest === entry.sha256,
    () => false,
  );
  if (!haveComplete) {
    await downloadFile(entry.url, done, {
      sha256: entry.sha256,
      ...(entry.size === undefined ? {} : { size: entry.size }),
      extraSpace: entry.image.size,
      ...pick(opts, ['onProgress', 'retries', 'retryDelayMs', 'stallTimeoutMs']),
    });
  }

  const out = await decompressInto(done, entry.compression, img, dir, opts.onProgress, entry.image.size);
  if (entry.image.sha256 !== undefined && out.sha256 !== entry.image.sha256) {
    await rm(img, { force: true });
    throw new IoError(
      `the image extracted from ${downloadName(entry.url)} has sha256 ${out.sha256}, but ${entry.source} says ${entry.image.sha256}`,
      { hint: `the catalogue entry may be wrong; the download itself matched its sha256. Check image.sha256 in ${entry.source}` },
    );
  }
  const record: CacheRecord = {
    version: 1,
    name: entry.name,
    sha256: out.sha256,
    size: out.size,
    source: { kind: 'url', url: entry.url },
    sourceSha256: entry.sha256,
    compression: entry.compression,
    createdAt: (opts.now ?? (() => new Date()))().toISOString(),
  };
  await writeCacheRecord(dir, record);
  if (opts.keepDownload !== true) await rm(done, { force: true });
  return { name: entry.name, path: img, record, cached: false };
}

function matches(r: CacheRecord, e: CatalogueEntry): boolean {
  if (r.source.kind === 'url' && r.sourceSha256 !== e.sha256) return false;
  if (e.image.sha256 !== undefined && r.sha256 !== e.image.sha256) return false;
  if (e.image.size !== undefined && r.size !== e.image.size) return false;
  return true;
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

// ── import ───────────────────────────────────────────────────────────────────────────────────────

/**
 * Copies (and decompresses, by magic bytes: xz, zstd, gzip or raw) a local image into the cache
 * under `name`, recording its sha256. `expectedSha256`, when given, must match the local file.
 */
export async function importImage(
  file: string,
  name: string,
  opts: CacheOptions & { expectedSha256?: string } = {},
): Promise<CachedImage> {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) {
    throw new InputError(`image name "${name}" must be lower-case letters, digits, ".", "-" or "_"`);
  }
  const dir = opts.cacheDir ?? cacheDir();
  await mkdir(join(dir, 'images'), { recursive: true });
  let head: Buffer;
  try {
    const fh = await open(file, 'r');
    try {
      head = Buffer.alloc(8);
      await fh.read(head, 0, 8, 0);
    } finally {
      await fh.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw code === 'ENOENT'
      ? new InputError(`${file} does not exist`)
      : new IoError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const compression = compressionFromMagic(head) ?? 'none';
  if (compression === 'none' && compressionFromName(file) !== 'none') {
    throw new InputError(`${file} is named like a ${compressionFromName(file)} file but does not start like one`, {
      hint: 'the file may be incomplete or damaged; download it again',
    });
  }
  const { img } = paths(dir, name);
  const out = await decompressInto(file, compression, img, dir, opts.onProgress, undefined);
  if (opts.expectedSha256 !== undefined && out.sourceSha256 !== opts.expectedSha256) {
    await rm(img, { force: true });
    throw new InputError(`${file} has sha256 ${out.sourceSha256}, expected ${opts.expectedSha256}`);
  }
  const record: CacheRecord = {
    version: 1,
    name,
    sha256: out.sha256,
    size: out.size,
    source: { kind: 'file', path: resolve(file) },
    sourceSha256: out.sourceSha256,
    compression,
    createdAt: (opts.now ?? (() => new Date()))().toISOString(),
  };
  await writeCacheRecord(dir, record);
  return { name, path: img, record, cached: false };
}

// ── verify ───────────────────────────────────────────────────────────────────────────────────────

export interface VerifyResult {
  name: string;
  path: string;
  ok: boolean;
  sha256: string;
  size: number;
  /** the digest it was compared with and where that came from */
  expectedSha256: string;
  expectedFrom: 'catalogue' | 'recorded';
  problems: string[];
}

/**
 * Re-hashes a cached image and compares it with the catalogue's image.sha256 when the catalogue
 * has one, else with the digest recorded on first fetch/import. Throws InputError when the image
 * is not cached.
 */
export async function verifyCachedImage(name: string, entry: CatalogueEntry | undefined, opts: CacheOptions = {}): Promise<VerifyResult> {
  const dir = opts.cacheDir ?? cacheDir();
  const record = await readCacheRecord(dir, name);
  const { img } = paths(dir, name);
  if (record === undefined) {
    throw new InputError(`base image ${name} is not in the cache (${dir})`, { hint: `run: pi-image images fetch ${name}` });
  }
  const problems: string[] = [];
  let size = -1;
  try {
    size = (await stat(img)).size;
  } catch {
    problems.push(`${img} is missing`);
  }
  const sha256 = size < 0 ? '' : await fileSha256(img, opts.onProgress);
  const fromCatalogue = entry?.image.sha256;
  const expectedSha256 = fromCatalogue ?? record.sha256;
  const expectedFrom = fromCatalogue === undefined ? 'recorded' : 'catalogue';
  if (size >= 0 && size !== record.size) problems.push(`size is ${size} bytes, recorded ${record.size}`);
  if (entry?.image.size !== undefined && size >= 0 && size !== entry.image.size) {
    problems.push(`size is ${size} bytes, ${entry.source} says ${entry.image.size}`);
  }
  if (size >= 0 && sha256 !== expectedSha256) problems.push(`sha256 is ${sha256}, ${expectedFrom === 'catalogue' ? entry?.source ?? 'catalogue' : 'recorded'} ${expectedSha256}`);
  if (entry !== undefined && record.source.kind === 'url' && record.sourceSha256 !== entry.sha256) {
    problems.push(`cached from a download with sha256 ${record.sourceSha256}, but ${entry.source} now names ${entry.sha256}`);
  }
  const ok = problems.length === 0;
  if (ok) await writeCacheRecord(dir, { ...record, verifiedAt: (opts.now ?? (() => new Date()))().toISOString() });
  return { name, path: img, ok, sha256, size, expectedSha256, expectedFrom, problems };
}

// ── download ─────────────────────────────────────────────────────────────────────────────────────

export interface DownloadOptions {
  /** expected sha256 of the whole file (checked while streaming) */
  sha256: string;
  /** expected size, when known */
  size?: number;
  /** more bytes that will be needed next to the download (e.g. the extracted image), for the free-space check */
  extraSpace?: number | undefined;
  onProgress?: ProgressFn;
  retries?: number;
  retryDelayMs?: number;
  stallTimeoutMs?: number;
}

class RetryableError extends Error {}

/**
 * Downloads `url` to `dest` through `dest.part`, resuming an existing .part with a Range request
 * and retrying a broken connection. On a sha256 mismatch the .part is deleted and IoError thrown;
 * on success `.part` is renamed to `dest`.
 */
export async function downloadFile(url: string, dest: string, opts: DownloadOptions): Promise<void> {
  const part = `${dest}.part`;
  const retries = opts.retries ?? 3;
  let delay = opts.retryDelayMs ?? 2000;
  for (let attempt = 0; ; attempt++) {
    try {
      const digest = await downloadAttempt(url, part, opts);
      if (digest !== opts.sha256) {
        await rm(part, { force: true });
        throw new IoError(`download of ${url} has sha256 ${digest}, expected ${opts.sha256}; the file was deleted`, {
          hint: 'run the command again; if it keeps failing, the catalogue entry or the mirror is wrong',
        });
      }
      await rename(part, dest);
      return;
    } catch (err) {
      if (!(err instanceof RetryableError) || attempt >= retries) {
        if (err instanceof RetryableError) {
          throw new IoError(`download of ${url} failed: ${err.message}`, {
            hint: 'run the same command again to resume where it stopped',
          });
        }
        throw err;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay *= 2;
    }
  }
}

async function sizeOf(p: string): Promise<number> {
  try {
    return (await stat(p)).size;
  } catch {
    return 0;
  }
}

/** One HTTP request; returns the sha256 of the complete .part or throws (RetryableError to retry). */
async function downloadAttempt(url: string, part: string, opts: DownloadOptions): Promise<string> {
  let have = await sizeOf(part);
  if (opts.size !== undefined && have > opts.size) {
    await rm(part, { force: true });
    have = 0;
  }
  const ctrl = new AbortController();
  const stallMs = opts.stallTimeoutMs ?? 60_000;
  let timer = setTimeout(() => ctrl.abort(), stallMs);
  const poke = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => ctrl.abort(), stallMs);
  };
  try {
    let res: Response;
    try {
      res = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal: ctrl.signal, redirect: 'follow' });
    } catch (err) {
      throw new RetryableError(describeNetError(err));
    }
    if (res.status === 416 && have > 0) {
      // range not satisfiable: the .part is complete already (or stale) — check it
      await res.body?.cancel();
      if (opts.size === undefined || have === opts.size) return await fileSha256(part);
      await rm(part, { force: true });
      throw new RetryableError('the server refused to resume; starting over');
    }
    if (res.status >= 500) {
      await res.body?.cancel();
      throw new RetryableError(`HTTP ${res.status} ${res.statusText}`);
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw new IoError(`download of ${url} failed: HTTP ${res.status} ${res.statusText}`, {
        hint:
          res.status === 404
            ? 'the release may have been removed; check the url in the catalogue entry'
            : 'check the url in the catalogue entry and your network/proxy',
      });
    }
    let start = 0;
    let total: number | undefined;
    if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (m === null || Number(m[1]) !== have) {
        await res.body?.cancel();
        await rm(part, { force: true });
        throw new RetryableError('the server answered the resume request with an unexpected range; starting over');
      }
      start = have;
      total = m[3] === '*' ? undefined : Number(m[3]);
    } else {
      const len = res.headers.get('content-length');
      total = len === null ? undefined : Number(len);
    }
    total ??= opts.size;
    if (opts.size !== undefined && total !== undefined && total !== opts.size) {
      await res.body?.cancel();
      throw new IoError(`download of ${url} is ${total} bytes, expected ${opts.size}`, {
        hint: 'the catalogue entry or the mirror is wrong',
      });
    }
    const dir = resolve(part, '..');
    await ensureFreeSpace(dir, (total ?? 0) - start + (opts.extraSpace ?? 0), `downloading ${downloadName(url)}`);

    const hash = createHash('sha256');
    if (start > 0) await hashFileInto(part, hash);
    else await writeFile(part, '');
    if (res.body === null) throw new RetryableError('empty response');

    let bytes = start;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb: TransformCallback) {
        poke();
        hash.update(chunk);
        bytes += chunk.length;
        opts.onProgress?.({ phase: 'download', bytes, total });
        cb(null, chunk);
      },
    });
    try {
      await pipeline(
        Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>),
        counter,
        createWriteStream(part, { flags: 'a' }),
      );
    } catch (err) {
      if (err instanceof PiImageError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new EnvironmentError(`disk full while downloading ${downloadName(url)} to ${dir}`, {
          hint: 'free some space (or set PI_IMAGE_CACHE elsewhere) and run again to resume',
        });
      }
      throw new RetryableError(`connection lost after ${formatBytes(bytes)}${total === undefined ? '' : ` of ${formatBytes(total)}`} (${describeNetError(err)})`);
    }
    if (total !== undefined && bytes < total) {
      throw new RetryableError(`the server sent ${bytes} of ${total} bytes`);
    }
    return hash.digest('hex');
  } finally {
    clearTimeout(timer);
  }
}

async function hashFileInto(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk as Buffer);
}

function describeNetError(err: unknown): string {
  if (err instanceof Error && err.name === 'AbortError') return 'no data received for too long';
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code !== undefined) return cause.code;
  if (cause?.message !== undefined) return cause.message;
  return err instanceof Error ? err.message : String(err);
}

// ── decompression into a sparse file ─────────────────────────────────────────────────────────────

interface Decompressed {
  sha256: string;
  size: number;
  sourceSha256: string;
}

/** Decompresses `src` into `dest` (atomically, via a temp file), keeping zero blocks as holes. */
async function decompressInto(
  src: string,
  compression: Compression,
  dest: string,
  cache: string,
  onProgress: ProgressFn | undefined,
  knownSize: number | undefined,
): Promise<Decompressed> {
  const srcSize = (await stat(src)).size;
  // the image is written sparse; without a known size assume up to 6× the compressed size
  await ensureFreeSpace(join(cache, 'images'), knownSize ?? (compression === 'none' ? srcSize : srcSize * 6), `extracting ${src}`);
  return withTempOutput(dest, async (tmp) => {
    const srcHash = createHash('sha256');
    let read = 0;
    const input = createReadStream(src, { highWaterMark: 1024 * 1024 });
    const tap = new Transform({
      transform(chunk: Buffer, _e, cb: TransformCallback) {
        srcHash.update(chunk);
        read += chunk.length;
        onProgress?.({ phase: 'decompress', bytes: read, total: srcSize });
        cb(null, chunk);
      },
    });
    const sink = await SparseSink.open(tmp);
    try {
      if (compression === 'none') {
        await pipeline(input, tap, sink);
      } else if (compression === 'gzip') {
        await pipeline(input, tap, createGunzip(), sink);
      } else {
        const tool = compression === 'xz' ? 'xz' : 'zstd';
        const child = spawnStream(tool, ['-dc'], { what: `decompressing ${src}` });
        const [fed, written, exited] = await Promise.allSettled([
          pipeline(input, tap, child.stdin),
          pipeline(child.stdout, sink),
          child.done,
        ]);
        // most telling error first: the sink (disk full), then the tool (corrupt data), then feeding it
        for (const r of [written, exited, fed]) if (r.status === 'rejected') throw r.reason;
      }
    } catch (err) {
      await sink.abort();
      if (err instanceof PiImageError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new EnvironmentError(`disk full while extracting ${src} into ${cache}`, { hint: 'free some space or set PI_IMAGE_CACHE elsewhere' });
      }
      throw new IoError(`decompressing ${src} failed: ${(err as Error).message}`, {
        cause: err,
        hint: 'the file may be damaged or not a disk image; fetch or import it again',
      });
    }
    return { sha256: sink.sha256, size: sink.size, sourceSha256: srcHash.digest('hex') };
  });
}

/**
 * A Writable that hashes everything and writes it at increasing offsets, skipping all-zero 4 KiB
 * blocks (they stay holes); the file is extended to the full size at the end.
 */
class SparseSink extends Writable {
  static readonly BLOCK = 4096;
  private static readonly ZERO = Buffer.alloc(SparseSink.BLOCK);
  private readonly hash = createHash('sha256');
  private pos = 0;
  private pending: Buffer = Buffer.alloc(0);
  sha256 = '';

  private constructor(private readonly fh: FileHandle) {
    super({ highWaterMark: 4 * 1024 * 1024 });
  }

  static async open(path: string): Promise<SparseSink> {
    return new SparseSink(await open(path, 'w', 0o644));
  }

  get size(): number {
    return this.pos + this.pending.length;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.hash.update(chunk);
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const whole = buf.length - (buf.length % SparseSink.BLOCK);
    this.pending = Buffer.from(buf.subarray(whole));
    this.writeBlocks(buf.subarray(0, whole)).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    const tail = this.pending;
    this.pending = Buffer.alloc(0);
    this.sha256 = this.hash.digest('hex');
    (async () => {
      await this.writeBlocks(tail);
      await this.fh.truncate(this.pos);
      await this.fh.close();
    })().then(() => cb(), cb);
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }

  /** Writes runs of non-zero blocks at their offsets; advances pos over everything. */
  private async writeBlocks(buf: Buffer): Promise<void> {
    const B = SparseSink.BLOCK;
    let runStart = -1;
    for (let off = 0; off < buf.length; off += B) {
      const blk = buf.subarray(off, Math.min(off + B, buf.length));
      const zero = blk.equals(blk.length === B ? SparseSink.ZERO : SparseSink.ZERO.subarray(0, blk.length));
      if (!zero && runStart < 0) runStart = off;
      if (zero && runStart >= 0) {
        await this.fh.write(buf, runStart, off - runStart, this.pos + runStart);
        runStart = -1;
      }
    }
    if (runStart >= 0) await this.fh.write(buf, runStart, buf.length - runStart, this.pos + runStart);
    this.pos += buf.length;
  }
}
