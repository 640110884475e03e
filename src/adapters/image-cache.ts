/**
 * The base-image cache on disk.
 *
 * Cache directory: $PI_IMAGE_CACHE, else $XDG_CACHE_HOME/pi-image, else ~/.cache/pi-image.
 *   images/<name>.img        the raw image (sparse), never modified after it is complete
 *   images/<name>.json       sidecar: sha256 + size of the .img, where it came from, and the file's
 *                            identity (size, mtime, inode) when that digest was computed
 *   images/<name>.lock       held (src/adapters/lock.ts) while an entry is fetched, imported or verified
 *   downloads/<file>.part    an unfinished download (resumed with an HTTP Range request)
 *   downloads/<file>         a complete, verified download not yet decompressed
 *
 * A new image is produced under a temporary name, checked, and only then renamed over
 * images/<name>.img: a failed fetch or import leaves the entry as it was.
 */
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { InputError, IoError } from '../core/errors.js';
import { type Compression, cachedImageName } from '../core/catalogue.js';
import { type HeldLock, withLock } from './lock.js';
import { atomicWriteFile } from './atomic-write.js';

/** The cache directory from the environment (see module comment). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const own = env['PI_IMAGE_CACHE'];
  if (own !== undefined && own !== '') return resolve(own);
  const xdg = env['XDG_CACHE_HOME'];
  if (xdg !== undefined && xdg !== '') return resolve(xdg, 'pi-image');
  return join(home, '.cache', 'pi-image');
}

/** Size, mtime and inode of a file: while they are unchanged, its recorded sha256 is trusted. */
export interface FileIdentity {
  size: number;
  /** modification time in nanoseconds since the epoch (decimal string: exact, unlike a float) */
  mtimeNs: string;
  ino: number;
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
  /** the .img's identity when `sha256` was last computed (absent in records of older versions) */
  file?: FileIdentity;
}

export interface CachedImage {
  name: string;
  path: string;
  record: CacheRecord;
  /** true when it was already in the cache */
  cached: boolean;
}

export function entryPaths(dir: string, name: string): { img: string; sidecar: string; lock: string } {
  return {
    img: join(dir, 'images', cachedImageName(name)),
    sidecar: join(dir, 'images', `${name}.json`),
    lock: join(dir, 'images', `${name}.lock`),
  };
}

/** Image names: lower-case letters, digits, ".", "-", "_" (they name files in the cache). */
export function checkImageName(name: string): void {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) {
    throw new InputError(`image name "${name}" must be lower-case letters, digits, ".", "-" or "_"`);
  }
}

export async function ensureCacheDirs(dir: string): Promise<void> {
  try {
    await mkdir(join(dir, 'images'), { recursive: true });
    await mkdir(join(dir, 'downloads'), { recursive: true });
  } catch (err) {
    throw new IoError(`cannot create the image cache ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      hint: 'set PI_IMAGE_CACHE (or --cache) to a writable directory',
    });
  }
}

/**
 * Runs `fn` holding the entry's lock: one fetch, import or verify of an entry at a time. A second
 * process waits (up to 10 minutes: a fetch may be downloading) and then fails naming the holder.
 */
export function withEntryLock<T>(dir: string, name: string, what: string, fn: (lock: HeldLock) => Promise<T>, waitMs = 600_000): Promise<T> {
  return withLock(entryPaths(dir, name).lock, { what: `${what} ${name}`, waitMs }, fn);
}

export async function readCacheRecord(dir: string, name: string): Promise<CacheRecord | undefined> {
  const p = entryPaths(dir, name).sidecar;
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

export async function writeCacheRecord(dir: string, record: CacheRecord): Promise<void> {
  const p = entryPaths(dir, record.name).sidecar;
  await atomicWriteFile(p, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644 });
}

/** The identity of a file (size, mtime, inode); undefined when it does not exist. */
export async function fileIdentity(path: string): Promise<FileIdentity | undefined> {
  try {
    const st = await stat(path, { bigint: true });
    return st.isFile() ? { size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ino: Number(st.ino) } : undefined;
  } catch {
    return undefined;
  }
}

function sameIdentity(a: FileIdentity | undefined, b: FileIdentity | undefined): boolean {
  return a !== undefined && b !== undefined && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ino === b.ino;
}

/** Cached images (those with a sidecar), by name. */
export async function listCachedImages(dir: string): Promise<CacheRecord[]> {
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
  const p = entryPaths(dir, name).img;
  return (await fileIdentity(p))?.size === r.size ? p : undefined;
}

/**
 * The recorded sha256 of a cached image while the file is the one that was hashed (same size,
 * mtime and inode as recorded); undefined when it may have changed (then hash it again).
 */
export async function trustedSha256(dir: string, name: string): Promise<string | undefined> {
  const r = await readCacheRecord(dir, name);
  if (r === undefined) return undefined;
  return sameIdentity(r.file, await fileIdentity(entryPaths(dir, name).img)) ? r.sha256 : undefined;
}
