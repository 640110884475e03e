/**
 * HTTP download of a base image: resumable (an unfinished `<dest>.part` continues with a Range
 * request), retried when the connection breaks, sha256-checked while streaming, and aborted when
 * no data arrives for too long. `.part` becomes `<dest>` only once the digest matches.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { resolve } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EnvironmentError, IoError, PiImageError } from '../core/errors.js';
import { downloadName } from '../core/catalogue.js';
import { ensureFreeSpace, fileSha256, formatBytes, type ProgressFn } from './image-files.js';
import { elapsed, trace } from './trace.js';

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
    const started = performance.now();
    try {
      const digest = await downloadAttempt(url, part, opts);
      trace(`GET ${url}: ${elapsed(started)}, sha256 ${digest}`);
      if (digest !== opts.sha256) {
        await rm(part, { force: true });
        throw new IoError(`download of ${url} has sha256 ${digest}, expected ${opts.sha256}; the file was deleted`, {
          hint: 'run the command again; if it keeps failing, the catalogue entry or the mirror is wrong',
        });
      }
      await rename(part, dest);
      return;
    } catch (err) {
      trace(`GET ${url}: attempt ${attempt + 1} failed after ${elapsed(started)}: ${err instanceof Error ? err.message : String(err)}`);
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
      trace(`GET ${url}${have > 0 ? ` (resuming at byte ${have})` : ''}`);
      res = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal: ctrl.signal, redirect: 'follow' });
      trace(`GET ${url}: ← ${res.status}${res.headers.get('content-length') ? `, ${res.headers.get('content-length')} bytes` : ''}`);
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
    // the caller's progress callback failing is its own error, not a lost connection to retry
    let progressError: { error: unknown } | undefined;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb: TransformCallback) {
        poke();
        hash.update(chunk);
        bytes += chunk.length;
        // a throw here would escape the stream (an uncaught exception, and a pipeline that never ends)
        try {
          opts.onProgress?.({ phase: 'download', bytes, total });
        } catch (error) {
          progressError = { error };
          cb(error as Error);
          return;
        }
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
      if (progressError !== undefined) throw progressError.error;
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
