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
 *  4. if the image's sha256 is not the one in the build record, stop here: the card stays
 *     unbootable (zeroed head) instead of carrying a half-correct image;
 *  5. write the first MiB (MBR + start of the boot partition) LAST, fsync — an interrupted write
 *     never leaves a card that looks bootable;
 *  6. verify: `blockdev --flushbufs` (BLKFLSBUF drops the device's buffer cache), then read the
 *     device back with `dd iflag=direct` (O_DIRECT: every byte comes from the medium, not from the
 *     page cache that still holds what we just wrote — Node cannot allocate the aligned buffers
 *     O_DIRECT needs, dd can) and compare its sha256 with the image's;
 *  7. re-read the seed files of the build record from the written card's partitions (mtools on the
 *     FAT partition, debugfs on the ext4 one, at the offsets of the card's MBR) and compare sha256s.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { BuildRecord } from '../core/build-record.js';
import { type Bmap, type ByteRange, mappedBytes, mergeRanges, rangeBytes } from '../core/bmap.js';
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

/**
 * Reads `length` bytes from the start of `device` with O_DIRECT (dd iflag=direct), feeding each
 * chunk to `onChunk`. Returns the number of bytes read.
 */
export async function readDeviceDirect(device: string, length: number, onChunk: (b: Buffer) => void | Promise<void>, skip = 0): Promise<number> {
  const dd = spawnStream('dd', [`if=${device}`, 'bs=4M', `skip=${skip}`, `count=${length}`, 'iflag=direct,skip_bytes,count_bytes', 'status=none'], {
    what: `reading back ${device}`,
  });
  dd.stdin.end();
  let bytes = 0;
  try {
    for await (const chunk of dd.stdout) {
      const b = chunk as Buffer;
      bytes += b.length;
      await onChunk(b);
    }
  } catch (err) {
    dd.kill();
    await dd.done.catch(() => undefined);
    throw err;
  }
  await dd.done;
  return bytes;
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

  let dst: FileHandle;
  try {
    // O_EXCL without O_CREAT on a block device: exclusive open, EBUSY when mounted / in use
    dst = await open(device, constants.O_WRONLY | constants.O_EXCL);
  } catch (err) {
    throw deviceOpenError(device, err);
  }

  const started = performance.now();
  const hash = createHash('sha256');
  let head: Buffer;
  let imageSha256: string;
  let written = 0;
  const src = ImageReader.open(image, compression, chunkSize);
  try {
    try {
      head = Buffer.from(await src.read(HEAD_BYTES));
      // a disk image starts with a partition table: anything else is refused before the card is touched
      if ((parseMbr(head)?.partitions.length ?? 0) === 0) {
        throw new InputError(`${image} is not a disk image: its first sector holds no partition table (MBR)${compression === 'none' ? '' : ` after ${compression} decompression`}`, {
          hint: 'flash an image made by `pi-image build` (.img, .img.xz or .img.zst)',
        });
      }
      hash.update(head);
      // 2. no partition table while the body is being written
      await writeAll(dst, Buffer.alloc(head.length), 0, device);
      await sync(dst, device);
      // 3. the body
      let pos = head.length;
      const total = size ?? 0;
      opts.onProgress?.({ phase: 'write', bytes: 0, total });
      for (;;) {
        const chunk = await src.read(chunkSize);
        if (chunk.length === 0) break;
        hash.update(chunk);
        await writeAll(dst, chunk, pos, device);
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
    await sync(dst, device);
    imageSha256 = hash.digest('hex');
    // 4. the image must be the one that was built
    if (expectedSha !== undefined && expectedSha !== imageSha256) {
      throw new IoError(
        `image ${image} does not match its build record (sha256 ${imageSha256.slice(0, 12)}… ≠ ${expectedSha.slice(0, 12)}…); the card was left without a partition table`,
        { hint: 'rebuild the image with `pi-image build` and flash again' },
      );
    }
    // 5. the head, last
    await writeAll(dst, head, 0, device);
    await sync(dst, device);
    opts.onProgress?.({ phase: 'write', bytes: written, total: written });
  } finally {
    await dst.close();
  }
  const writeMs = performance.now() - started;

  await opts.afterWrite?.();

  const result: FlashResult = {
    device,
    image,
    bytes: written,
    imageSha256,
    writeMs,
    verifyMs: 0,
    writeBytesPerSecond: writeMs > 0 ? written / (writeMs / 1000) : 0,
    verify: { result: 'skipped', files: [] },
  };
  if (opts.verify === false) return result;

  // 6. read back bypassing the page cache; besides hashing, compare with the image (decompressed
  // again) chunk by chunk to say WHERE it differs
  const vStart = performance.now();
  await flushBuffers(device);
  const back = createHash('sha256');
  let seen = 0;
  let firstBad: number | undefined;
  const cmp = ImageReader.open(image, compression, chunkSize);
  let read: number;
  try {
    read = await readDeviceDirect(device, written, async (b) => {
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
    });
  } finally {
    cmp.abort();
  }
  const readbackSha256 = back.digest('hex');
  result.verify.readbackSha256 = readbackSha256;
  let ok = read === written && readbackSha256 === imageSha256;
  if (firstBad !== undefined) result.verify.firstBadOffset = firstBad;
  else if (read !== written) result.verify.firstBadOffset = read;

  // 7. the seed files, from the card's own partition table
  if (opts.record !== undefined && opts.record.files.length > 0) {
    result.verify.files = await checkRecordFiles(device, head, opts.record, compression === 'none' ? opts.image : undefined, ok);
    if (result.verify.files.some((f) => !f.ok)) ok = false;
  }
  result.verify.result = ok ? 'ok' : 'failed';
  result.verifyMs = performance.now() - vStart;
  return result;
}

/**
 * Re-reads the record's files from the card. Files holding secrets have no plain hash in the record:
 * they are compared with the raw image's copy, or — for a compressed image, which has no raw copy to
 * read — proven by the whole card reading back equal to the image (`cardMatches`).
 */
async function checkRecordFiles(device: string, head: Buffer, record: BuildRecord, image: string | undefined, cardMatches: boolean): Promise<FileCheck[]> {
  await flushBuffers(device);
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
      out.push(cardMatches ? { target: f.target, path: f.path, ok: true } : { target: f.target, path: f.path, ok: false, problem: 'the card differs from the image' });
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
  let dst: FileHandle;
  try {
    dst = await open(device, constants.O_WRONLY | constants.O_EXCL);
  } catch (err) {
    throw deviceOpenError(device, err);
  }
  const started = performance.now();
  const src = await positionalReader(image, compression, chunkSize);
  let head: Buffer;
  let done = 0;
  try {
    try {
      head = Buffer.from(await src.read(0, Math.min(HEAD_BYTES, bmap.imageSize)));
      if ((parseMbr(head)?.partitions.length ?? 0) === 0) {
        throw new InputError(`${image} is not a disk image: its first sector holds no partition table (MBR)${compression === 'none' ? '' : ` after ${compression} decompression`}`, {
          hint: 'flash an image made by `pi-image build` (.img, .img.xz or .img.zst)',
        });
      }
      await writeAll(dst, Buffer.alloc(head.length), 0, device);
      await sync(dst, device);
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
          const w = pos >= head.length ? writeAll(dst, chunk, pos, device) : undefined;
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
    await sync(dst, device);
    await writeAll(dst, head, 0, device);
    await sync(dst, device);
  } finally {
    await dst.close();
  }
  const writeMs = performance.now() - started;
  await opts.afterWrite?.();
  const result: FlashResult = {
    device,
    image,
    bytes: bmap.imageSize,
    // the block map is the one the build record names, and every mapped range matched its sum
    imageSha256: expectedSha,
    writeMs,
    verifyMs: 0,
    writeBytesPerSecond: writeMs > 0 ? total / (writeMs / 1000) : 0,
    mapped: { bytes: total, ranges: ranges.length },
    verify: { result: 'skipped', files: [] },
  };
  if (opts.verify === false) return result;

  // read back the mapped ranges with O_DIRECT (nearby ranges in one dd: fewer processes, the gap is read and dropped)
  const vStart = performance.now();
  await flushBuffers(device);
  const spans = mergeRanges(ranges.map((r) => ({ start: r.start, end: r.end + 4 * MiB }))).map((s) => ({ start: s.start, end: Math.min(s.end - 4 * MiB, bmap.imageSize) }));
  let ri = 0;
  let h = createHash('sha256');
  let seen = 0;
  let bad: (ByteRange & { sha256: string }) | undefined;
  for (const span of spans) {
    let pos = span.start;
    const got = await readDeviceDirect(
      device,
      span.end - span.start,
      (b) => {
        let off = 0;
        while (off < b.length) {
          const r = ranges[ri];
          if (r === undefined) return;
          const at = pos + off;
          if (at < r.start) {
            off += Math.min(b.length - off, r.start - at);
            continue;
          }
          const n = Math.min(b.length - off, r.end - at);
          h.update(b.subarray(off, off + n));
          off += n;
          seen += n;
          if (at + n === r.end) {
            if (h.digest('hex') !== r.sha256) bad ??= r;
            h = createHash('sha256');
            ri++;
          }
        }
        pos += b.length;
        opts.onProgress?.({ phase: 'verify', bytes: seen, total });
      },
      span.start,
    );
    if (got !== span.end - span.start) bad ??= { start: span.start + got, end: span.end, sha256: '' };
  }
  let ok = bad === undefined && ri === ranges.length;
  if (bad !== undefined) result.verify.firstBadOffset = await firstDifference(device, image, compression, chunkSize, bad);

  if (opts.record !== undefined && opts.record.files.length > 0) {
    result.verify.files = await checkRecordFiles(device, head, opts.record, compression === 'none' ? image : undefined, ok);
    if (result.verify.files.some((f) => !f.ok)) ok = false;
  }
  result.verify.result = ok ? 'ok' : 'failed';
  result.verifyMs = performance.now() - vStart;
  return result;
}

/** Where a range that read back wrong first differs from the image (its start when that cannot be told). */
async function firstDifference(device: string, image: string, compression: ImageCompression, chunkSize: number, r: ByteRange): Promise<number> {
  const src = await positionalReader(image, compression, chunkSize);
  try {
    let pos = r.start;
    let found: number | undefined;
    await readDeviceDirect(
      device,
      r.end - r.start,
      async (b) => {
        if (found !== undefined) return;
        const want = await src.read(pos, b.length);
        let i = 0;
        while (i < b.length && want[i] === b[i]) i++;
        if (i < b.length) found = pos + i;
        pos += b.length;
      },
      r.start,
    );
    return found ?? r.start;
  } catch {
    return r.start;
  } finally {
    await src.close();
  }
}
