/**
 * Writes an image to a block device and proves it landed.
 *
 * The image is raw, or an xz / zstd stream (told apart by its first bytes, whatever its name): a
 * compressed image is decompressed while it is written and again while it is verified, so the
 * compressed bytes never reach the card. A file whose first sector holds no partition table is not a
 * disk image and is refused before the card is touched.
 *
 * Order of work (why):
 *  1. open the device with O_EXCL — on Linux that fails with EBUSY while any partition is mounted
 *     or another program holds the device exclusively (mkfs, another flash, a RAID member …);
 *  2. zero the first MiB and fsync, so from here on the card carries no partition table;
 *  3. stream the (uncompressed) image from offset 1 MiB to the end (hashing it on the way), fsync;
 *     where the device takes O_DIRECT (block devices do) the writes bypass the page cache from
 *     page-aligned buffers, two in flight (CardWriter), so the card is written at its own speed
 *     while the image is read and hashed;
 *  4. if the image's sha256 is not the one in the build record, stop here: the card stays
 *     unbootable (zeroed head) instead of carrying a half-correct image;
 *  5. write the first MiB (MBR + start of the boot partition) LAST, fsync — an interrupted write
 *     never leaves a card that looks bootable;
 *  6. verify: `blockdev --flushbufs` (BLKFLSBUF drops the device's buffer cache), then read the
 *     device back with O_DIRECT (every byte comes from the medium, never from the page cache) into
 *     page-aligned buffers (readDeviceDirect: Node has no aligned allocation, a WebAssembly memory
 *     is page-aligned), the next chunk read while this one is hashed, and compare its sha256 with
 *     the image's;
 *  7. meanwhile, re-read the seed files of the build record from the written card's partitions
 *     (mtools on the FAT partition, debugfs on the ext4 one, at the offsets of the card's MBR) and
 *     compare sha256s.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { BuildRecord } from '../core/build-record.js';
import { type Bmap, type ByteRange, mappedBytes, rangeBytes } from '../core/bmap.js';
import { InputError, IoError, PiImageError } from '../core/errors.js';
import { flushBuffers } from './blockdev.js';
import { ext4ReadFile } from './ext4.js';
import { fatReadFile } from './fat.js';
import { parseMbr, readAt } from './partitions.js';
import { run, spawnStream } from './process.js';

export const MiB = 1024 * 1024;
/** bytes written last (MBR, partition table and the start of the boot partition) */
export const HEAD_BYTES = MiB;

export interface FlashProgress {
  phase: 'write' | 'verify';
  bytes: number;
  total: number;
}

export interface FlashOptions {
  image: string;
  device: string;
  /** read back and compare (default true) */
  verify?: boolean;
  /** build record: its image sha256 must match the image, its seed files are re-read from the card */
  record?: BuildRecord;
  onProgress?: (p: FlashProgress) => void;
  /** write chunk size (default 4 MiB) */
  chunkSize?: number;
  /**
   * The image's block map, checked by the caller against the image and its build record: only the
   * mapped ranges are written and read back (each against its sha256); the rest of the card keeps
   * what it held, as with `bmaptool copy`. Needs `record`.
   */
  bmap?: Bmap;
  /** TEST HOOK: runs after everything was written and synced, before verification (e.g. to corrupt the medium) */
  afterWrite?: () => Promise<void>;
}

export interface FileCheck {
  target: 'boot' | 'root';
  path: string;
  ok: boolean;
  /** why it failed (missing, different sha256) */
  problem?: string;
}

export interface FlashResult {
  device: string;
  image: string;
  bytes: number;
  imageSha256: string;
  writeMs: number;
  verifyMs: number;
  /** bytes per second of the write phase (including the final fsync) */
  writeBytesPerSecond: number;
  /** a mapped write: bytes and ranges written (of `bytes`, the image's size) */
  mapped?: { bytes: number; ranges: number };
  verify: {
    result: 'ok' | 'failed' | 'skipped';
    readbackSha256?: string;
    /** byte offset of the first difference between image and card, when the read-back differed */
    firstBadOffset?: number;
    files: FileCheck[];
  };
}

function deviceOpenError(device: string, err: unknown): IoError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EBUSY') {
    return new IoError(`${device}: device is busy (mounted or in use by another program)`, {
      hint: `unmount its partitions (\`lsblk ${device}\` shows where; \`umount ${device}?*\` or \`udisksctl unmount -b …\`) and stop programs using it, then retry`,
      cause: err,
    });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new IoError(`${device}: permission denied opening the device for writing`, {
      hint: 'run pi-image flash as root (sudo) or as a member of the `disk` group',
      cause: err,
    });
  }
  if (code === 'EROFS') {
    return new IoError(`${device}: the device is read-only`, { hint: 'check the lock switch of the SD card', cause: err });
  }
  if (code === 'ENOMEDIUM' || code === 'ENXIO') {
    return new IoError(`${device}: no medium in the drive`, { hint: 'insert the card and retry', cause: err });
  }
  return new IoError(`${device}: cannot open for writing: ${(err as Error).message}`, { cause: err });
}

async function writeAll(fh: FileHandle, buf: Buffer, position: number, device: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    let n: number;
    try {
      ({ bytesWritten: n } = await fh.write(buf, done, buf.length - done, position + done));
    } catch (err) {
      throw new IoError(`${device}: write failed at byte ${position + done}: ${(err as Error).message}`, {
        hint: 'the card or reader may be failing (or was removed); try another card or reader',
        cause: err,
      });
    }
    if (n === 0) throw new IoError(`${device}: write returned 0 bytes at byte ${position + done} (device smaller than the image?)`);
    done += n;
  }
}

/**
 * O_DIRECT needs the memory, the device offset and the length of each transfer aligned to the
 * device's logical block size; 4096 covers every block size cards and readers use (512, 4096).
 */
export const DIRECT_ALIGN = 4096;

/** The WebAssembly global of Node (not in the ES lib): only its page-mapped memory is used here. */
declare const WebAssembly: { Memory: new (descriptor: { initial: number; maximum?: number }) => { readonly buffer: ArrayBuffer } };

/**
 * A buffer whose first byte is page-aligned, for O_DIRECT transfers. Node has no aligned-allocation
 * API and a Buffer's address is whatever malloc returned (16-byte aligned, so O_DIRECT fails with
 * EINVAL; Node does not tell the address, so no aligned subarray can be picked); a WebAssembly memory
 * is mapped by whole pages, so its start is page-aligned.
 */
export function alignedBuffer(bytes: number): Buffer {
  const pages = Math.max(1, Math.ceil(bytes / 65536));
  return Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer, 0, bytes);
}

/** O_DIRECT writes in flight at once: the card gets the next chunk while the previous one completes. */
const WRITES_IN_FLIGHT = 2;

/**
 * `count` aligned buffers of `bytes`, or undefined when the memory cannot be had (a WebAssembly
 * memory reserves address space beyond its size: a tight `ulimit -v` refuses it). The callers then
 * go through the page cache instead.
 */
function alignedBuffers(count: number, bytes: number): Buffer[] | undefined {
  try {
    return Array.from({ length: count }, () => alignedBuffer(bytes));
  } catch {
    return undefined;
  }
}

/**
 * The card, opened exclusively for writing. Where the device takes O_DIRECT (proven by one aligned
 * read when it is opened) every aligned transfer goes straight to the medium from an aligned
 * buffer, as `dd oflag=direct` does, with up to two in flight: the card is busy while the image is
 * read and hashed, instead of the page cache filling first and the final fsync then waiting for
 * all of it. Pieces that are not aligned (the end of an image whose size is no multiple of 4096) go
 * through the page cache on a second, plain descriptor. A device refusing O_DIRECT is written
 * through the page cache. A write returns once its bytes are copied and queued; its failure
 * surfaces at the next write or at `sync`, as a buffered write's does at fsync.
 */
export class CardWriter {
  private plain: FileHandle | undefined;
  /** aligned buffers not in use */
  private readonly free: Buffer[];
  /** O_DIRECT writes submitted, oldest first */
  private readonly inflight: { done: Promise<void>; buf: Buffer }[] = [];
  private constructor(
    readonly device: string,
    private readonly fh: FileHandle,
    /** the aligned buffers of O_DIRECT writes; none when the card is written through the page cache */
    buffers: Buffer[],
  ) {
    this.free = buffers;
  }

  get direct(): boolean {
    return this.free.length + this.inflight.length > 0;
  }

  /** Opens `device` (O_EXCL without O_CREAT on a block device: EBUSY while mounted or in use). */
  static async open(device: string, chunkSize: number, o: { direct?: boolean } = {}): Promise<CardWriter> {
    if (o.direct !== false) {
      let fh: FileHandle | undefined;
      try {
        fh = await open(device, constants.O_RDWR | constants.O_EXCL | constants.O_DIRECT);
      } catch (err) {
        // EINVAL: no O_DIRECT here (some file systems, some drivers); else the device cannot be opened at all
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw deviceOpenError(device, err);
      }
      if (fh !== undefined) {
        const size = Math.max(DIRECT_ALIGN, Math.ceil(chunkSize / DIRECT_ALIGN) * DIRECT_ALIGN);
        const buffers = alignedBuffers(WRITES_IN_FLIGHT, size);
        try {
          if (buffers === undefined) throw new Error('no aligned memory');
          await fh.read(buffers[0]!, 0, DIRECT_ALIGN, 0);
          return new CardWriter(device, fh, buffers);
        } catch {
          // no aligned memory, or the device does not take aligned O_DIRECT reads: written through the page cache
          await fh.close();
        }
      }
    }
    try {
      return new CardWriter(device, await open(device, constants.O_WRONLY | constants.O_EXCL), []);
    } catch (err) {
      throw deviceOpenError(device, err);
    }
  }

  /** Writes all of `data` at `position` (queued; `data` may be reused once this returns). */
  async write(data: Buffer, position: number): Promise<void> {
    if (!this.direct) return writeAll(this.fh, data, position, this.device);
    for (let off = 0; off < data.length; ) {
      const at = position + off;
      const left = data.length - off;
      if (at % DIRECT_ALIGN === 0 && left >= DIRECT_ALIGN) {
        const buf = await this.buffer();
        const n = Math.min(left, buf.length) - (Math.min(left, buf.length) % DIRECT_ALIGN);
        data.copy(buf, 0, off, off + n);
        const done = writeAll(this.fh, buf.subarray(0, n), at, this.device);
        done.catch(() => undefined); // awaited by buffer() or drain()
        this.inflight.push({ done, buf });
        off += n;
      } else {
        const n = at % DIRECT_ALIGN === 0 ? left : Math.min(left, DIRECT_ALIGN - (at % DIRECT_ALIGN));
        await this.drain();
        this.plain ??= await open(this.device, constants.O_WRONLY).catch((err: unknown) => {
          throw deviceOpenError(this.device, err);
        });
        await writeAll(this.plain, data.subarray(off, off + n), at, this.device);
        off += n;
      }
    }
  }

  /** A free aligned buffer, once the oldest write in flight completed (throwing its error). */
  private async buffer(): Promise<Buffer> {
    const ready = this.free.pop();
    if (ready !== undefined) return ready;
    const oldest = this.inflight.shift()!;
    this.free.push(oldest.buf);
    await oldest.done;
    return this.free.pop()!;
  }

  /** Waits for every write in flight (throwing the first error). */
  private async drain(): Promise<void> {
    for (let w = this.inflight.shift(); w !== undefined; w = this.inflight.shift()) {
      this.free.push(w.buf);
      await w.done;
    }
  }

  /** Everything written so far is on the medium (fsync). */
  async sync(): Promise<void> {
    await this.drain();
    await sync(this.fh, this.device);
    if (this.plain !== undefined) await sync(this.plain, this.device);
  }

  async close(): Promise<void> {
    await this.drain().catch(() => undefined);
    await this.plain?.close();
    await this.fh.close();
  }
}

async function sync(fh: FileHandle, device: string): Promise<void> {
  try {
    await fh.sync();
  } catch (err) {
    throw new IoError(`${device}: flushing written data failed: ${(err as Error).message}`, {
      hint: 'the card or reader may be failing (or was removed); try another card or reader',
      cause: err,
    });
  }
}

/** Where a read-back chunk lies: its span (index into the spans read), its byte offset on the device, and whether it ends the span. */
export interface ReadBackChunk {
  span: number;
  position: number;
  last: boolean;
}

/**
 * Reads the byte spans `spans` of `device` with O_DIRECT (every byte comes from the medium, not from
 * the page cache), in order, feeding each chunk to `onChunk` (a view of a buffer that is reused
 * once the returned promise settles). The next chunk is read while `onChunk` hashes this one, so
 * the read-back runs at the medium's speed. Returns the bytes read of each span (fewer than asked
 * where the device ended). A device that refuses O_DIRECT (or no aligned memory) is read through
 * the page cache, after `blockdev --flushbufs` dropped what it held of the device.
 */
export async function readDeviceDirect(
  device: string,
  spans: readonly ByteRange[],
  onChunk: (b: Buffer, at: ReadBackChunk) => void | Promise<void>,
  chunkSize = 8 * MiB,
): Promise<number[]> {
  const size = Math.max(DIRECT_ALIGN, Math.ceil(chunkSize / DIRECT_ALIGN) * DIRECT_ALIGN);
  let fh: FileHandle;
  // two aligned buffers: one being read into while the other is handed to onChunk
  const aligned = alignedBuffers(2, size);
  let direct = aligned !== undefined;
  const bufs = aligned ?? [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)];
  const failed = (err: unknown): IoError =>
    new IoError(`${device}: reading the card back failed: ${(err as Error).message}`, {
      hint: 'the card or reader may be failing (or was removed); try another card or reader',
      cause: err,
    });
  try {
    fh = await open(device, constants.O_RDONLY | (direct ? constants.O_DIRECT : 0));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw failed(err);
    fh = await open(device, constants.O_RDONLY).catch((e: unknown) => {
      throw failed(e);
    });
    direct = false;
  }
  const pieces: (ReadBackChunk & { n: number })[] = [];
  spans.forEach((sp, span) => {
    for (let pos = sp.start; pos < sp.end; pos += size) pieces.push({ span, position: pos, n: Math.min(size, sp.end - pos), last: pos + size >= sp.end });
  });
  const got = spans.map(() => 0);
  /** reads piece i into its buffer; the bytes read, short only where the device ended */
  const readPiece = async (i: number): Promise<number> => {
    const { position, n } = pieces[i]!;
    const buf = bufs[i % 2]!;
    // O_DIRECT lengths are whole blocks: a span ending off a block boundary is read up to the next one
    const want = direct ? Math.ceil(n / DIRECT_ALIGN) * DIRECT_ALIGN : n;
    let done = 0;
    while (done < want) {
      const { bytesRead } = await fh.read(buf, done, want - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
      if (direct && done % DIRECT_ALIGN !== 0) break; // the end of the device
    }
    return Math.min(done, n);
  };
  let next: Promise<number> | undefined;
  try {
    next = pieces.length > 0 ? readPiece(0) : undefined;
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      let n: number;
      try {
        n = await next!;
      } catch (err) {
        next = undefined;
        throw failed(err);
      }
      // a short read ends the span: the rest of it is missing (the device is smaller)
      next = i + 1 < pieces.length ? readPiece(i + 1) : undefined;
      if (got[p.span] !== p.position - spans[p.span]!.start) continue;
      got[p.span]! += n;
      if (n > 0) await onChunk(bufs[i % 2]!.subarray(0, n), { span: p.span, position: p.position, last: p.last || n < p.n });
    }
  } finally {
    await next?.catch(() => undefined);
    await fh.close();
  }
  return got;
}

// ── the image as a stream of bytes ───────────────────────────────────────────────────────────────

export type ImageCompression = 'none' | 'xz' | 'zstd';

/** What the first bytes of a file say it is: an xz or zstd stream, or (anything else) a raw image. */
export function imageCompression(head: Uint8Array): ImageCompression {
  const m = (sig: number[]): boolean => sig.every((b, i) => head[i] === b);
  if (m([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (m([0x28, 0xb5, 0x2f, 0xfd])) return 'zstd';
  return 'none';
}

/**
 * The uncompressed bytes of an image, read front to back: the file itself, or the output of
 * `xz -dc` / `zstd -dc` (the compressed stream is never what gets written).
 */
class ImageReader {
  private readonly chunks: AsyncIterator<Buffer>;
  private pending: Buffer = Buffer.alloc(0);
  private ended = false;
  private constructor(
    private readonly iterable: AsyncIterable<Buffer>,
    private readonly finish: () => Promise<void>,
    private readonly stop: () => void,
  ) {
    this.chunks = iterable[Symbol.asyncIterator]();
  }

  static open(image: string, compression: ImageCompression, chunkSize: number): ImageReader {
    if (compression === 'none') {
      const stream = createReadStream(image, { highWaterMark: chunkSize });
      return new ImageReader(stream as AsyncIterable<Buffer>, async () => undefined, () => stream.destroy());
    }
    const child = spawnStream(compression, ['-dc', image], { what: `decompressing ${image}` });
    child.stdin.end();
    return new ImageReader(child.stdout as AsyncIterable<Buffer>, () => child.done.then(() => undefined), () => child.kill());
  }

  /** Up to `n` bytes (fewer only at the end of the image). */
  async read(n: number): Promise<Buffer> {
    while (this.pending.length < n && !this.ended) {
      const r = await this.chunks.next();
      if (r.done) this.ended = true;
      else this.pending = this.pending.length === 0 ? r.value : Buffer.concat([this.pending, r.value]);
    }
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(out.length);
    return out;
  }

  /** Waits for the decompressor's exit status (a damaged stream fails here). */
  async close(): Promise<void> {
    await this.finish();
  }

  abort(): void {
    this.stop();
  }
}

/** The uncompressed size of an xz or zstd file as its index/frame header records it; undefined when it does not say. */
export async function uncompressedSize(image: string, compression: ImageCompression): Promise<number | undefined> {
  if (compression === 'none') return (await stat(image)).size;
  try {
    if (compression === 'xz') {
      const { stdout } = await run('xz', ['--robot', '--list', image], { what: `reading the index of ${image}` });
      const totals = stdout.split('\n').find((l) => l.startsWith('totals\t'))?.split('\t');
      const n = Number(totals?.[4]);
      return Number.isFinite(n) && n > 0 ? n : undefined;
    }
    const { stdout } = await run('zstd', ['-lv', image], { what: `reading the frame header of ${image}` });
    const m = /Decompressed Size:.*\((\d+) B\)/.exec(stdout);
    return m ? Number(m[1]) : undefined;
  } catch (err) {
    throw new InputError(`${image} is not a valid ${compression} file: ${(err as Error).message.split('\n')[0] ?? ''}`, {
      hint: 'the file may be damaged or cut short; build or download it again',
      cause: err,
    });
  }
}

/** Writes `image` (raw, .xz or .zst) to `device`, verifies it, returns what happened. Throws on I/O failure (not on a verify mismatch). */
export async function flashImage(opts: FlashOptions): Promise<FlashResult> {
  const { image, device } = opts;
  const chunkSize = opts.chunkSize ?? 4 * MiB;
  const fileSize = (await stat(image)).size;
  if (opts.record !== undefined && opts.record.image.size !== fileSize) {
    throw new InputError(
      `image ${image} has ${fileSize} bytes but its build record says ${opts.record.image.size}; the image changed after it was built`,
      { hint: 'rebuild it with `pi-image build`' },
    );
  }
  const compression = imageCompression(await readAt(image, 0, 8));
  // what the card must end up holding: the raw image (for a compressed build, rawSha256 in the record)
  const expectedSha = opts.record === undefined ? undefined : compression === 'none' ? opts.record.image.sha256 : opts.record.image.rawSha256;
  const size = await uncompressedSize(image, compression);
  if (opts.bmap !== undefined && expectedSha !== undefined) return flashMapped(opts, opts.bmap, compression, expectedSha, chunkSize);

  const hash = createHash('sha256');
  const { result, head } = await writeCard(opts, chunkSize, async (dst) => {
    let head: Buffer;
    let written: number;
    const src = ImageReader.open(image, compression, chunkSize);
    try {
      head = Buffer.from(await src.read(HEAD_BYTES));
      // a disk image starts with a partition table: anything else is refused before the card is touched
      requireDiskImage(head, image, compression);
      hash.update(head);
      // 2. no partition table while the body is being written
      await dst.write(Buffer.alloc(head.length), 0);
      await dst.sync();
      // 3. the body
      let pos = head.length;
      const total = size ?? 0;
      opts.onProgress?.({ phase: 'write', bytes: 0, total });
      for (;;) {
        const chunk = await src.read(chunkSize);
        if (chunk.length === 0) break;
        // the write runs in libuv's thread pool while this thread hashes the same bytes
        const w = dst.write(chunk, pos);
        hash.update(chunk);
        await w;
        pos += chunk.length;
        opts.onProgress?.({ phase: 'write', bytes: pos - head.length, total: Math.max(total, pos) });
      }
      await src.close();
      written = pos;
    } catch (err) {
      src.abort();
      if (err instanceof PiImageError) throw err;
      throw new IoError(`reading ${image} failed: ${(err as Error).message}`, { hint: 'the file may be damaged or cut short; build it again', cause: err });
    }
    if (size !== undefined && written !== size) {
      throw new IoError(`image ${image} gave ${written} bytes, not ${size} (it is being changed while flashing, or damaged?); the card was left without a partition table`);
    }
    const imageSha256 = hash.digest('hex');
    return {
      head,
      bytes: written,
      written,
      imageSha256,
      // 4. the image must be the one that was built
      check: () => {
        if (expectedSha !== undefined && expectedSha !== imageSha256) {
          throw new IoError(
            `image ${image} does not match its build record (sha256 ${imageSha256.slice(0, 12)}… ≠ ${expectedSha.slice(0, 12)}…); the card was left without a partition table`,
            { hint: 'rebuild the image with `pi-image build` and flash again' },
          );
        }
      },
    };
  });
  if (opts.verify === false) return result;
  const { imageSha256, bytes: written } = result;

  // 6. read back bypassing the page cache; besides hashing, compare with the image (decompressed
  // again) chunk by chunk to say WHERE it differs
  return verifyCard(result, head, opts.record, compression === 'none' ? image : undefined, async () => {
    const back = createHash('sha256');
    let seen = 0;
    let firstBad: number | undefined;
    const cmp = ImageReader.open(image, compression, chunkSize);
    let read: number;
    try {
      [read = 0] = await readDeviceDirect(
        device,
        [{ start: 0, end: written }],
        async (b) => {
          back.update(b);
          if (firstBad === undefined) {
            const w = await cmp.read(b.length);
            if (w.length !== b.length || !w.equals(b)) {
              let i = 0;
              while (i < w.length && w[i] === b[i]) i++;
              firstBad = seen + i;
            }
          }
          seen += b.length;
          opts.onProgress?.({ phase: 'verify', bytes: seen, total: written });
        },
        chunkSize,
      );
    } finally {
      cmp.abort();
    }
    const readbackSha256 = back.digest('hex');
    result.verify.readbackSha256 = readbackSha256;
    if (firstBad !== undefined) result.verify.firstBadOffset = firstBad;
    else if (read !== written) result.verify.firstBadOffset = read;
    return read === written && readbackSha256 === imageSha256;
  });
}

/** What a write path hands over once the image's body is on the card (all but the head). */
interface WrittenBody {
  /** the image's first bytes (MBR, partition table, start of the boot partition): written last */
  head: Buffer;
  /** the image's (uncompressed) size */
  bytes: number;
  /** the bytes written to the card (the whole image, or its mapped ranges): the write speed's */
  written: number;
  imageSha256: string;
  mapped?: { bytes: number; ranges: number };
  /** runs once the body is synced, before the head goes on: throwing leaves the card without a partition table */
  check?: () => void;
}

/**
 * The frame of both write paths: opens the card (CardWriter), lets `body` zero the head and write
 * the rest, then the shared finish — 4. sync and the body's check, 5. the head LAST and sync (an
 * interrupted write never leaves a card that looks bootable) — closes the card (also on failure),
 * runs the afterWrite hook and assembles the result, verification still to come.
 */
async function writeCard(opts: FlashOptions, chunkSize: number, body: (dst: CardWriter) => Promise<WrittenBody>): Promise<{ result: FlashResult; head: Buffer }> {
  const dst = await CardWriter.open(opts.device, chunkSize);
  const started = performance.now();
  let b: WrittenBody;
  try {
    b = await body(dst);
    await dst.sync();
    b.check?.();
    await dst.write(b.head, 0);
    await dst.sync();
    opts.onProgress?.({ phase: 'write', bytes: b.written, total: b.written });
  } finally {
    await dst.close();
  }
  const writeMs = performance.now() - started;
  await opts.afterWrite?.();
  const result: FlashResult = {
    device: opts.device,
    image: opts.image,
    bytes: b.bytes,
    imageSha256: b.imageSha256,
    writeMs,
    verifyMs: 0,
    writeBytesPerSecond: writeMs > 0 ? b.written / (writeMs / 1000) : 0,
    ...(b.mapped === undefined ? {} : { mapped: b.mapped }),
    verify: { result: 'skipped', files: [] },
  };
  return { result, head: b.head };
}

/** Refuses (before the card is touched) an image whose first sector holds no partition table. */
function requireDiskImage(head: Buffer, image: string, compression: ImageCompression): void {
  if ((parseMbr(head)?.partitions.length ?? 0) === 0) {
    throw new InputError(`${image} is not a disk image: its first sector holds no partition table (MBR)${compression === 'none' ? '' : ` after ${compression} decompression`}`, {
      hint: 'flash an image made by `pi-image build` (.img, .img.xz or .img.zst)',
    });
  }
}

/**
 * 6. and 7., filling in `result`'s verification: the read-back (`readBack`, true when the card
 * matched) and, at the same time, the
 * record's seed files re-read from the card's own partition table (small reads through the page
 * cache, by mtools and debugfs, while the read-back streams with O_DIRECT). The card is fully
 * written and synced by then; `blockdev --flushbufs` first drops what the page cache holds of it,
 * so both read the medium.
 */
async function verifyCard(
  result: FlashResult,
  head: Buffer,
  record: BuildRecord | undefined,
  rawImage: string | undefined,
  readBack: () => Promise<boolean>,
): Promise<FlashResult> {
  const started = performance.now();
  const { ok, files } = await readBackAndFiles(result.device, head, record, rawImage, readBack);
  result.verify.files = files;
  result.verify.result = ok ? 'ok' : 'failed';
  result.verifyMs = performance.now() - started;
  return result;
}

async function readBackAndFiles(
  device: string,
  head: Buffer,
  record: BuildRecord | undefined,
  rawImage: string | undefined,
  readBack: () => Promise<boolean>,
): Promise<{ ok: boolean; files: FileCheck[] }> {
  await flushBuffers(device);
  if (record === undefined || record.files.length === 0) return { ok: await readBack(), files: [] };
  let settle!: (matched: boolean) => void;
  const matched = new Promise<boolean>((resolve) => (settle = resolve));
  const checking = checkRecordFiles(device, head, record, rawImage, matched);
  checking.catch(() => undefined); // its error is thrown below, once the read-back is done
  let ok: boolean;
  try {
    ok = await readBack();
  } catch (err) {
    settle(false);
    await checking.catch(() => undefined); // no mcopy or debugfs left running
    throw err;
  }
  settle(ok);
  const files = await checking;
  return { ok: ok && files.every((f) => f.ok), files };
}

/**
 * Re-reads the record's files from the card. Files holding secrets have no plain hash in the record:
 * they are compared with the raw image's copy, or — for a compressed image, which has no raw copy to
 * read — proven by the whole card reading back equal to the image (`cardMatches`).
 */
async function checkRecordFiles(device: string, head: Buffer, record: BuildRecord, image: string | undefined, cardMatches: Promise<boolean>): Promise<FileCheck[]> {
  const mbr = parseMbr(head);
  const boot = mbr?.partitions.find((p) => p.number === 1);
  const root = mbr?.partitions.find((p) => p.number === 2);
  const read = (disk: string, target: 'boot' | 'root', offset: number, path: string) =>
    target === 'boot' ? fatReadFile({ image: disk, offset }, path) : ext4ReadFile({ image: disk, offset }, path);
  const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  const out: FileCheck[] = [];
  for (const f of record.files) {
    const part = f.target === 'boot' ? boot : root;
    if (part === undefined) {
      out.push({ target: f.target, path: f.path, ok: false, problem: `the card has no ${f.target} partition` });
      continue;
    }
    const path = f.path.startsWith('/') ? f.path : `/${f.path}`;
    let sum: string;
    let expected: string;
    let against: string;
    try {
      sum = sha(await read(device, f.target, part.startBytes, path));
    } catch (err) {
      out.push({ target: f.target, path: f.path, ok: false, problem: `cannot read it from the card: ${(err as Error).message}` });
      continue;
    }
    if (f.sha256 !== undefined) {
      expected = f.sha256;
      against = 'build record';
    } else if (image !== undefined) {
      // a file with secrets: the record holds no plain hash, the image holds the reference copy
      expected = sha(await read(image, f.target, part.startBytes, path));
      against = 'the image';
    } else {
      out.push((await cardMatches) ? { target: f.target, path: f.path, ok: true } : { target: f.target, path: f.path, ok: false, problem: 'the card differs from the image' });
      continue;
    }
    out.push(
      sum === expected
        ? { target: f.target, path: f.path, ok: true }
        : { target: f.target, path: f.path, ok: false, problem: `sha256 ${sum.slice(0, 12)}… ≠ ${against} ${expected.slice(0, 12)}…` },
    );
  }
  return out;
}

// ── mapped writes (a block map beside the image) ─────────────────────────────────────────────────

/** Reads bytes of the raw image at increasing offsets: pread on a raw file, skipping through a decompressed stream. */
interface PositionalReader {
  read(position: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

async function positionalReader(image: string, compression: ImageCompression, chunkSize: number): Promise<PositionalReader> {
  if (compression === 'none') {
    const fh = await open(image, 'r');
    return {
      read: async (position, length) => {
        const buf = Buffer.allocUnsafe(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await fh.read(buf, done, length - done, position + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return buf.subarray(0, done);
      },
      close: () => fh.close(),
    };
  }
  const src = ImageReader.open(image, compression, chunkSize);
  let at = 0;
  return {
    read: async (position, length) => {
      // unmapped bytes of the stream are decompressed and dropped, never written
      while (at < position) {
        const skipped = await src.read(Math.min(chunkSize, position - at));
        if (skipped.length === 0) break;
        at += skipped.length;
      }
      const b = Buffer.from(await src.read(length));
      at += b.length;
      return b;
    },
    // the rest of the stream is not needed: the range sums proved what was written
    close: async () => src.abort(),
  };
}

/**
 * Like flashImage, for an image with a block map: the head is zeroed, the mapped ranges past the
 * head are written (each range's sha256 checked against the map on the way: a mismatch stops with
 * the card left without a partition table), then the head; the read-back checks each range's sha256.
 */
async function flashMapped(opts: FlashOptions, bmap: Bmap, compression: ImageCompression, expectedSha: string, chunkSize: number): Promise<FlashResult> {
  const { image, device } = opts;
  const ranges = bmap.ranges.map((r) => ({ ...rangeBytes(r, bmap.imageSize, bmap.blockSize), sha256: r.sha256 }));
  const total = mappedBytes(bmap);
  const { result, head } = await writeCard(opts, chunkSize, async (dst) => {
    const src = await positionalReader(image, compression, chunkSize);
    let head: Buffer;
    let done = 0;
    try {
      head = Buffer.from(await src.read(0, Math.min(HEAD_BYTES, bmap.imageSize)));
      requireDiskImage(head, image, compression);
      await dst.write(Buffer.alloc(head.length), 0);
      await dst.sync();
      opts.onProgress?.({ phase: 'write', bytes: 0, total });
      // the chunks to write, in order; a chunk is either in the head (already in memory, written
      // last) or past it. The next chunk is read while this one is written and hashed.
      const chunks: { range: number; pos: number; n: number }[] = [];
      ranges.forEach((r, range) => {
        for (let pos = r.start; pos < r.end; ) {
          const n = Math.min(chunkSize, r.end - pos, pos < head.length ? head.length - pos : Infinity);
          chunks.push({ range, pos, n });
          pos += n;
        }
      });
      const readChunk = (i: number): Promise<Buffer> => {
        const c = chunks[i]!;
        return c.pos < head.length ? Promise.resolve(head.subarray(c.pos, c.pos + c.n)) : src.read(c.pos, c.n);
      };
      let next = chunks.length > 0 ? readChunk(0) : undefined;
      let h = createHash('sha256');
      try {
        for (let i = 0; i < chunks.length; i++) {
          const { range, pos, n } = chunks[i]!;
          const chunk = await next!;
          next = i + 1 < chunks.length ? readChunk(i + 1) : undefined;
          if (chunk.length !== n) throw new IoError(`image ${image} ended at byte ${pos + chunk.length}, before the end of its block map (${bmap.imageSize} bytes); the card was left without a partition table`);
          // the write runs in libuv's thread pool while this thread hashes the same bytes
          const w = pos >= head.length ? dst.write(chunk, pos) : undefined;
          h.update(chunk);
          await w;
          done += n;
          opts.onProgress?.({ phase: 'write', bytes: done, total });
          const r = ranges[range]!;
          if (pos + n === r.end) {
            if (h.digest('hex') !== r.sha256) {
              throw new IoError(
                `image ${image} does not match its block map (bytes ${r.start}–${r.end - 1} differ from the map's sha256); the card was left without a partition table`,
                { hint: 'rebuild the image with `pi-image build` and flash again' },
              );
            }
            h = createHash('sha256');
          }
        }
      } finally {
        await next?.catch(() => undefined); // a read still running when a write failed
      }
    } catch (err) {
      if (err instanceof PiImageError) throw err;
      throw new IoError(`reading ${image} failed: ${(err as Error).message}`, { hint: 'the file may be damaged or cut short; build it again', cause: err });
    } finally {
      await src.close();
    }
    return {
      head,
      bytes: bmap.imageSize,
      written: total,
      // the block map is the one the build record names, and every mapped range matched its sum
      imageSha256: expectedSha,
      mapped: { bytes: total, ranges: ranges.length },
    };
  });
  if (opts.verify === false) return result;

  // read back the mapped ranges with O_DIRECT, each hashed against its sha256
  return verifyCard(result, head, opts.record, compression === 'none' ? image : undefined, async () => {
    let h = createHash('sha256');
    let seen = 0;
    let bad: ByteRange | undefined;
    const got = await readDeviceDirect(
      device,
      ranges,
      (b, at) => {
        h.update(b);
        seen += b.length;
        if (at.last) {
          const r = ranges[at.span]!;
          if (h.digest('hex') !== r.sha256) bad ??= r;
          h = createHash('sha256');
        }
        opts.onProgress?.({ phase: 'verify', bytes: seen, total });
      },
      chunkSize,
    );
    got.forEach((n, i) => {
      const r = ranges[i]!;
      if (n !== r.end - r.start) bad ??= r;
    });
    if (bad !== undefined) result.verify.firstBadOffset = await firstDifference(device, image, compression, chunkSize, bad);
    return bad === undefined;
  });
}

/** Where a range that read back wrong first differs from the image (its start when that cannot be told). */
async function firstDifference(device: string, image: string, compression: ImageCompression, chunkSize: number, r: ByteRange): Promise<number> {
  const src = await positionalReader(image, compression, chunkSize);
  try {
    let found: number | undefined;
    const [got = 0] = await readDeviceDirect(
      device,
      [r],
      async (b, at) => {
        if (found !== undefined) return;
        const want = await src.read(at.position, b.length);
        let i = 0;
        while (i < b.length && want[i] === b[i]) i++;
        if (i < b.length) found = at.position + i;
      },
      chunkSize,
    );
    // the card ended inside the range
    if (got < r.end - r.start) found ??= r.start + got;
    return found ?? r.start;
  } catch {
    return r.start;
  } finally {
    await src.close();
  }
}
