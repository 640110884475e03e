/**
 * Decompression of a base image (xz, zstd, gzip or none, by magic bytes) into a sparse raw file:
 * all-zero 4 KiB blocks stay holes. Hashes the source and the output in the same pass.
 */
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { EnvironmentError, InputError, IoError, PiImageError } from '../core/errors.js';
import { type Compression, compressionFromMagic, compressionFromName } from '../core/catalogue.js';
import { spawnStream } from './process.js';
import { ensureFreeSpace, type ProgressFn } from './image-files.js';

/** The first bytes of a file and the compression they announce ('none' when not compressed). */
export async function sniffCompression(file: string): Promise<{ compression: Compression; head: Buffer }> {
  let head: Buffer;
  try {
    const fh = await open(file, 'r');
    try {
      head = Buffer.alloc(512);
      const { bytesRead } = await fh.read(head, 0, 512, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(`${file} does not exist`);
    if (code === 'EISDIR') throw new InputError(`${file} is a directory, not an image file`);
    throw new IoError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const compression = compressionFromMagic(head) ?? 'none';
  if (compression === 'none' && compressionFromName(file) !== 'none') {
    throw new InputError(`${file} is named like a ${compressionFromName(file)} file but does not start like one`, {
      hint: 'the file may be incomplete or damaged; download it again',
    });
  }
  return { compression, head };
}

/** The command that decompresses a file of this compression to stdout, for hints. */
export function decompressCommand(compression: Compression, file: string): string {
  if (compression === 'xz') return `xz -dk ${file}`;
  if (compression === 'zstd') return `zstd -d ${file}`;
  if (compression === 'gzip') return `gunzip -k ${file}`;
  return `cp ${file} …`;
}

export interface Decompressed {
  sha256: string;
  size: number;
  sourceSha256: string;
}

/**
 * Decompresses `src` into `dest` (a temporary path the caller renames once it has checked the
 * result), keeping zero blocks as holes. `knownSize`: the raw size when known (free-space check).
 */
export async function decompressTo(
  src: string,
  compression: Compression,
  tmp: string,
  onProgress: ProgressFn | undefined,
  knownSize: number | undefined,
): Promise<Decompressed> {
  const srcSize = (await stat(src)).size;
  const cache = dirname(tmp);
  // the image is written sparse; without a known size assume up to 6× the compressed size
  await ensureFreeSpace(cache, knownSize ?? (compression === 'none' ? srcSize : srcSize * 6), `extracting ${src}`);
  {
    const srcHash = createHash('sha256');
    let read = 0;
    const input = createReadStream(src, { highWaterMark: 1024 * 1024 });
    const tap = new Transform({
      transform(chunk: Buffer, _e, cb: TransformCallback) {
        srcHash.update(chunk);
        read += chunk.length;
        // a throw here would escape the stream (an uncaught exception, and a pipeline that never ends)
        try {
          onProgress?.({ phase: 'decompress', bytes: read, total: srcSize });
        } catch (err) {
          cb(err as Error);
          return;
        }
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
        // Most telling error first: the sink (disk full); then feeding the tool when that failed on
        // its own (reading the source, the progress callback): the tool then only saw its input
        // end early ("premature end", "Unexpected end of input") and its message would hide the
        // cause; then the tool (corrupt data), whose exit also breaks the feeding pipe (EPIPE).
        if (written.status === 'rejected') throw written.reason;
        if (fed.status === 'rejected' && !stoppedReading(fed.reason)) {
          throw exited.status === 'rejected' ? withDetail(fed.reason, exited.reason) : fed.reason;
        }
        for (const r of [exited, fed]) if (r.status === 'rejected') throw r.reason;
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
  }
}

/** Errors of a feeding pipeline that only say the program on its other end stopped reading. */
function stoppedReading(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EPIPE' || code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_STREAM_DESTROYED';
}

/** `err` with what the decompressor said about it, for -v. */
function withDetail(err: unknown, tool: unknown): unknown {
  if (err instanceof PiImageError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  return Object.assign(e, { cause: e.cause ?? tool });
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
