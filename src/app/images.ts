/**
 * The base-image use cases: `pi-image images list | fetch | import | verify`, over the image cache
 * (src/adapters/image-cache.ts), HTTP download (http-download.ts), decompression (decompress.ts)
 * and the catalogue (catalogue-files.ts).
 *
 * - Every fetch, import and verify of an entry holds that entry's lock.
 * - A new image is made under a temporary name and checked (sha256 against the catalogue or the
 *   one given, a partition table in sector 0) before it replaces the entry: a failed command
 *   leaves a good cached image and its record as they were.
 * - A catalogue name keeps the catalogue's sha256 check, also when imported from a local file.
 */
import { rm } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { loadCatalogue, loadCatalogueEntry } from '../adapters/catalogue-files.js';
import { type Decompressed, decompressTo, sniffCompression } from '../adapters/decompress.js';
import { downloadFile } from '../adapters/http-download.js';
import {
  type CacheRecord,
  type CachedImage,
  cacheDir,
  cachedImagePath,
  checkImageName,
  ensureCacheDirs,
  entryPaths,
  fileIdentity,
  listCachedImages,
  readCacheRecord,
  withEntryLock,
  writeCacheRecord,
} from '../adapters/image-cache.js';
import { fileSha256, formatBytes, removeStaleTemps, withTempOutput, type ProgressFn } from '../adapters/image-files.js';
import type { HeldLock } from '../adapters/lock.js';
import { parseMbr, readAt } from '../adapters/partitions.js';
import { InputError, IoError } from '../core/errors.js';
import { type CatalogueEntry, type Compression, downloadName } from '../core/catalogue.js';

export type { CacheRecord, CachedImage } from '../adapters/image-cache.js';
export type { Progress, ProgressFn } from '../adapters/image-files.js';
/** How the images command shows sizes and progress (the same bars as build and flash). */
export { formatBytes };
export { createProgress } from '../adapters/progress.js';

export interface CacheOptions {
  /** default: cacheDir() of the process environment */
  cacheDir?: string;
  onProgress?: ProgressFn;
  /** clock for sidecar timestamps (default: new Date()) */
  now?: () => Date;
  /** a line worth telling the operator (what an interrupted fetch or import left and was removed) */
  onNote?: (message: string) => void;
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

const nowOf = (opts: CacheOptions): Date => (opts.now ?? (() => new Date()))();

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

function matches(r: CacheRecord, e: CatalogueEntry): boolean {
  if (r.source.kind === 'url' && r.sourceSha256 !== e.sha256) return false;
  if (e.image.sha256 !== undefined && r.sha256 !== e.image.sha256) return false;
  if (e.image.size !== undefined && r.size !== e.image.size) return false;
  return true;
}

/** Refuses a result that is not a disk image (no partition table): a text file, random bytes. */
async function requireDiskImage(tmp: string, what: string): Promise<void> {
  const sector0 = await readAt(tmp, 0, 512);
  if (sector0.length === 512 && parseMbr(sector0) !== undefined) return;
  const text = sector0.length > 0 && sector0.every((b) => b === 0x09 || b === 0x0a || b === 0x0d || (b >= 0x20 && b < 0x7f));
  throw new InputError(
    `${what} is not a disk image: ${sector0.length < 512 ? `it is only ${sector0.length} bytes` : text ? 'it is a text file' : 'sector 0 holds no partition table (no 0x55AA signature)'}`,
    { hint: 'give a Raspberry Pi OS image (.img, or .img.xz / .img.zst / .img.gz as downloaded); nothing in the cache was changed' },
  );
}

/**
 * What a killed fetch or import of the entry left (its lock, a half-extracted `<name>.img.tmp-<pid>`,
 * a sidecar temp) is removed once the entry's lock is held, and said. Temp files of live
 * processes are kept; a `.part` download is kept on purpose (the next fetch resumes it).
 */
async function cleanUpInterrupted(dir: string, lock: HeldLock, opts: CacheOptions): Promise<void> {
  if (lock.tookOverFrom) opts.onNote?.(`took over ${lock.path}, left by an interrupted run (process ${lock.tookOverFrom.pid} no longer runs)`);
  for (const stale of await removeStaleTemps(join(dir, 'images'))) {
    opts.onNote?.(`removed ${stale.path} (${formatBytes(stale.bytes)}), left by an interrupted fetch or import (process ${stale.pid} no longer runs)`);
  }
}

/** Moves a checked temporary image into place and records it (identity taken after the rename). */
async function commit(dir: string, name: string, fields: Omit<CacheRecord, 'version' | 'name' | 'file' | 'createdAt'>, now: Date): Promise<CacheRecord> {
  const file = await fileIdentity(entryPaths(dir, name).img);
  const record: CacheRecord = { version: 1, name, ...fields, createdAt: now.toISOString(), ...(file ? { file } : {}) };
  await writeCacheRecord(dir, record);
  return record;
}

// ── fetch ────────────────────────────────────────────────────────────────────────────────────────

/**
 * Makes sure the catalogue entry's image is in the cache: downloads (resuming an earlier partial
 * download), checks the download's sha256, decompresses into a temporary sparse image, checks the
 * extracted sha256 (or records it), then puts it in place. Returns quickly when a matching image
 * is already cached.
 */
export async function fetchImage(entry: CatalogueEntry, opts: FetchOptions = {}): Promise<CachedImage> {
  const dir = opts.cacheDir ?? cacheDir();
  const { img } = entryPaths(dir, entry.name);
  await ensureCacheDirs(dir);
  return withEntryLock(dir, entry.name, 'fetching', async (lock) => {
    await cleanUpInterrupted(dir, lock, opts);
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
    const out = await withTempOutput(img, async (tmp) => {
      const d = await decompressTo(done, entry.compression, tmp, opts.onProgress, entry.image.size);
      if (entry.image.sha256 !== undefined && d.sha256 !== entry.image.sha256) {
        throw new IoError(
          `the image extracted from ${downloadName(entry.url)} has sha256 ${d.sha256}, but ${entry.source} says ${entry.image.sha256}`,
          { hint: `the catalogue entry may be wrong; the download itself matched its sha256. Check image.sha256 in ${entry.source}` },
        );
      }
      await requireDiskImage(tmp, `the image extracted from ${downloadName(entry.url)}`);
      return d;
    });
    const record = await commit(
      dir,
      entry.name,
      { sha256: out.sha256, size: out.size, source: { kind: 'url', url: entry.url }, sourceSha256: entry.sha256, compression: entry.compression },
      nowOf(opts),
    );
    if (opts.keepDownload !== true) await rm(done, { force: true });
    return { name: entry.name, path: img, record, cached: false };
  });
}

// ── import ───────────────────────────────────────────────────────────────────────────────────────

export interface ImportOptions extends CacheOptions {
  /** sha256 the local file must have (as published next to a download) */
  expectedSha256?: string;
  /** the catalogue entry of that name, when the name is a catalogue name: its sha256 must match */
  entry?: CatalogueEntry;
}

/** The catalogue's word on an imported file: the download itself, or the raw image it holds. */
function catalogueProblem(entry: CatalogueEntry, d: Decompressed, file: string): string | undefined {
  if (d.sourceSha256 === entry.sha256) return undefined; // the file as downloaded
  if (entry.image.sha256 !== undefined && d.sha256 === entry.image.sha256) return undefined; // its raw image
  const raw = entry.image.sha256 === undefined ? '' : `, nor its image is ${entry.image.sha256} (got ${d.sha256})`;
  return `${file} is not the image ${entry.source} names: its sha256 is ${d.sourceSha256}, the download is ${entry.sha256}${raw}`;
}

/**
 * Copies (and decompresses, by magic bytes: xz, zstd, gzip or raw) a local image into the cache
 * under `name`, recording its sha256. The new image is checked before it replaces the entry:
 * `expectedSha256` against the local file, a catalogue entry's sha256, and a partition table.
 */
export async function importImage(file: string, name: string, opts: ImportOptions = {}): Promise<CachedImage> {
  checkImageName(name);
  const dir = opts.cacheDir ?? cacheDir();
  const { compression } = await sniffCompression(file);
  await ensureCacheDirs(dir);
  const { img } = entryPaths(dir, name);
  return withEntryLock(dir, name, 'importing', async (lock) => {
    await cleanUpInterrupted(dir, lock, opts);
    const out = await withTempOutput(img, async (tmp) => {
      const d = await decompressTo(file, compression, tmp, opts.onProgress, undefined);
      if (opts.expectedSha256 !== undefined && d.sourceSha256 !== opts.expectedSha256) {
        throw new InputError(`${file} has sha256 ${d.sourceSha256}, expected ${opts.expectedSha256}`, {
          hint: 'nothing in the cache was changed; check the file (download it again) or the --sha256 value',
        });
      }
      const problem = opts.entry === undefined ? undefined : catalogueProblem(opts.entry, d, file);
      if (problem !== undefined) {
        throw new InputError(problem, {
          hint: `a catalogue name keeps the catalogue's check: import the file ${downloadName(opts.entry!.url)} as published, or import this one under another name (--name my-${name}); nothing in the cache was changed`,
        });
      }
      await requireDiskImage(tmp, file);
      return d;
    });
    const record = await commit(
      dir,
      name,
      { sha256: out.sha256, size: out.size, source: { kind: 'file', path: resolve(file) }, sourceSha256: out.sourceSha256, compression },
      nowOf(opts),
    );
    return { name, path: img, record, cached: false };
  });
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
 * Re-hashes a cached image (always: the recorded digest is not trusted here) and compares it with
 * the catalogue's image.sha256 when the catalogue has one, else with the digest recorded on first
 * fetch/import. Throws InputError when the image is not cached.
 */
export async function verifyCachedImage(name: string, entry: CatalogueEntry | undefined, opts: CacheOptions = {}): Promise<VerifyResult> {
  const dir = opts.cacheDir ?? cacheDir();
  const { img } = entryPaths(dir, name);
  if ((await readCacheRecord(dir, name)) === undefined) {
    throw new InputError(`base image ${name} is not in the cache (${dir})`, { hint: `run: pi-image images fetch ${name}` });
  }
  return withEntryLock(dir, name, 'verifying', async () => {
    const record = await readCacheRecord(dir, name);
    if (record === undefined) {
      throw new InputError(`base image ${name} is not in the cache (${dir})`, { hint: `run: pi-image images fetch ${name}` });
    }
    const problems: string[] = [];
    const before = await fileIdentity(img);
    if (before === undefined) problems.push(`${img} is missing`);
    const size = before?.size ?? -1;
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
    if (ok) {
      // the file hashed is the one recorded: trust it again while size, mtime and inode stay
      const after = await fileIdentity(img);
      await writeCacheRecord(dir, { ...record, verifiedAt: nowOf(opts).toISOString(), ...(after ? { file: after } : {}) });
    }
    return { name, path: img, ok, sha256, size, expectedSha256, expectedFrom, problems };
  });
}

// ── the command use cases ────────────────────────────────────────────────────────────────────────

export interface ImagesOptions {
  /** --cache (relative to cwd), else from the environment */
  cache?: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
  onProgress?: ProgressFn;
  onNote?: (message: string) => void;
}

export interface ImagesPorts {
  catalogue: () => Promise<CatalogueEntry[]>;
  catalogueEntry: (name: string) => Promise<CatalogueEntry>;
  now: () => Date;
}

/** The catalogue is the one shipped with pi-image, or the directory $PI_IMAGE_CATALOGUE names (a local mirror). */
export function imagesPorts(env: NodeJS.ProcessEnv = process.env): ImagesPorts {
  const own = env['PI_IMAGE_CATALOGUE'];
  const dir = own === undefined || own === '' ? undefined : own;
  return { catalogue: () => loadCatalogue(dir), catalogueEntry: (n) => loadCatalogueEntry(n, dir), now: () => new Date() };
}

export function resolveCacheDir(opts: Pick<ImagesOptions, 'cache' | 'env' | 'cwd'>): string {
  if (opts.cache !== undefined) return isAbsolute(opts.cache) ? opts.cache : resolve(opts.cwd, opts.cache);
  return cacheDir(opts.env);
}

export interface ImageRow {
  name: string;
  catalogue: boolean;
  description?: string;
  release?: string;
  url?: string;
  /** the image file is there, complete (recorded size) */
  cached: boolean;
  /** a record exists but its image file is missing or incomplete */
  missing?: boolean;
  sha256?: string;
  size?: number;
  source?: CacheRecord['source'];
  verifiedAt?: string;
}

/** `images list`: catalogue entries and imported images, with what is really in the cache. */
export async function runImagesList(opts: ImagesOptions, ports: ImagesPorts = imagesPorts(opts.env)): Promise<{ cache: string; images: ImageRow[] }> {
  const dir = resolveCacheDir(opts);
  const entries = await ports.catalogue();
  const records = await listCachedImages(dir);
  const row = async (name: string, e: CatalogueEntry | undefined, c: CacheRecord | undefined): Promise<ImageRow> => {
    const present = c !== undefined && (await cachedImagePath(dir, name)) !== undefined;
    return {
      name,
      catalogue: e !== undefined,
      ...(e?.description === undefined ? {} : { description: e.description }),
      ...(e?.release === undefined ? {} : { release: e.release }),
      ...(e === undefined ? {} : { url: e.url }),
      cached: present,
      ...(c !== undefined && !present ? { missing: true } : {}),
      ...(c === undefined || !present ? {} : { sha256: c.sha256, size: c.size, source: c.source, ...(c.verifiedAt ? { verifiedAt: c.verifiedAt } : {}) }),
    };
  };
  const images = [
    ...(await Promise.all(entries.map((e) => row(e.name, e, records.find((c) => c.name === e.name))))),
    ...(await Promise.all(records.filter((c) => !entries.some((e) => e.name === c.name)).map((c) => row(c.name, undefined, c)))),
  ];
  return { cache: dir, images };
}

/** `images fetch NAME [--force]`. */
export async function runImagesFetch(
  opts: ImagesOptions & { name: string; force: boolean },
  ports: ImagesPorts = imagesPorts(opts.env),
): Promise<{ image: CachedImage; entry: CatalogueEntry }> {
  const entry = await ports.catalogueEntry(opts.name);
  const image = await fetchImage(entry, {
    cacheDir: resolveCacheDir(opts),
    force: opts.force,
    now: ports.now,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.onNote ? { onNote: opts.onNote } : {}),
  });
  return { image, entry };
}

/** `images import FILE --name NAME [--sha256 X]`: a catalogue name keeps the catalogue's check. */
export async function runImagesImport(
  opts: ImagesOptions & { file: string; name: string; sha256?: string },
  ports: ImagesPorts = imagesPorts(opts.env),
): Promise<CachedImage> {
  checkImageName(opts.name);
  const entry = (await ports.catalogue()).find((e) => e.name === opts.name);
  return importImage(resolve(opts.cwd, opts.file), opts.name, {
    cacheDir: resolveCacheDir(opts),
    now: ports.now,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.onNote ? { onNote: opts.onNote } : {}),
    ...(opts.sha256 === undefined ? {} : { expectedSha256: opts.sha256.toLowerCase() }),
    ...(entry ? { entry } : {}),
  });
}

/** `images verify [NAME]`: re-hash one or every cached image; `ok` false when one does not match. */
export async function runImagesVerify(
  opts: ImagesOptions & { name?: string; onStart?: (name: string) => void; onDone?: () => void },
  ports: ImagesPorts = imagesPorts(opts.env),
): Promise<{ cache: string; ok: boolean; images: VerifyResult[] }> {
  const dir = resolveCacheDir(opts);
  const names = opts.name !== undefined ? [opts.name] : (await listCachedImages(dir)).map((r) => r.name);
  const catalogue = await ports.catalogue();
  const images: VerifyResult[] = [];
  for (const name of names) {
    const entry = catalogue.find((e) => e.name === name);
    if (opts.name !== undefined && entry === undefined && (await readCacheRecord(dir, name)) === undefined) {
      await ports.catalogueEntry(name); // throws "not in the catalogue" with the known names
    }
    opts.onStart?.(name);
    images.push(await verifyCachedImage(name, entry, { cacheDir: dir, now: ports.now, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) }));
    opts.onDone?.();
  }
  return { cache: dir, ok: images.every((r) => r.ok), images };
}

/** What `--base FILE` needs when FILE is compressed: the command that puts it into the cache. */
export async function compressedBaseProblem(file: string): Promise<{ compression: Compression } | undefined> {
  const { compression } = await sniffCompression(file);
  return compression === 'none' ? undefined : { compression };
}
