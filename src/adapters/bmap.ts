/**
 * Block maps of images on disk (the format is src/core/bmap.ts): which bytes of a sparse image hold
 * data (SEEK_DATA/SEEK_HOLE), which bytes nothing on the image needs (free ext4 blocks, free FAT
 * clusters, space outside the partitions), and the map itself, hashed beside the image's own sha256.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { type Bmap, BMAP_BLOCK_SIZE, type ByteRange, mappedBlocks, mergeRanges, parseBmap, rangeBytes, renderBmap } from '../core/bmap.js';
import { IoError } from '../core/errors.js';
import { fileRangeSums, fileSha256AndRanges, type ProgressFn } from './image-files.js';
import type { ImageLayout } from './partitions.js';
import { readAt } from './partitions.js';
import { run } from './process.js';

/**
 * The data extents of a file, as lseek(SEEK_DATA) / lseek(SEEK_HOLE) report them — what bmaptool's
 * FilemapSeek does (yoctoproject/bmaptool src/bmaptool/Filemap.py). Node has no lseek with these
 * whences, python3 does (os.SEEK_DATA); a filesystem without hole support reports one extent.
 */
const SEEK_SCRIPT = `
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
pos = 0
while pos < size:
    try:
        start = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError as e:
        if e.errno == errno.ENXIO:
            break
        raise
    end = os.lseek(fd, start, os.SEEK_HOLE)
    print(start, end)
    pos = end
`;

export async function dataExtents(path: string): Promise<ByteRange[]> {
  const { stdout } = await run('python3', ['-c', SEEK_SCRIPT, path], { what: `finding the data extents of ${path}` });
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [s, e] = l.trim().split(/\s+/).map(Number);
      return { start: s!, end: e! };
    });
}

/** Free blocks of the ext4 filesystem at `offset` (dumpe2fs "Free blocks:" lines), as byte ranges of the image. */
async function ext4FreeRanges(image: string, offset: number, blockSize: number): Promise<ByteRange[]> {
  const { stdout } = await run('dumpe2fs', [`${image}?offset=${offset}`], { what: `reading the block bitmaps of ${image}` });
  const out: ByteRange[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^\s+Free blocks: (.+)$/.exec(line);
    if (!m) continue;
    for (const part of m[1]!.split(',')) {
      const r = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
      if (!r) continue;
      const first = Number(r[1]);
      const last = r[2] === undefined ? first : Number(r[2]);
      out.push({ start: offset + first * blockSize, end: offset + (last + 1) * blockSize });
    }
  }
  return out;
}

/** Free clusters of the FAT16/FAT32 filesystem at `offset` (FAT entry 0), as byte ranges of the image. */
async function fatFreeRanges(image: string, offset: number): Promise<ByteRange[]> {
  const b = await readAt(image, offset, 512);
  const bps = b.readUInt16LE(11);
  const spc = b[13] ?? 0;
  const reserved = b.readUInt16LE(14);
  const numFats = b[16] ?? 0;
  const rootEntries = b.readUInt16LE(17);
  const total = b.readUInt16LE(19) || b.readUInt32LE(32);
  const fatSize = b.readUInt16LE(22) || b.readUInt32LE(36);
  if (bps === 0 || spc === 0) return [];
  const fat32 = b.readUInt16LE(22) === 0;
  const dataStart = (reserved + numFats * fatSize + Math.ceil((rootEntries * 32) / bps)) * bps;
  const clusters = Math.floor((total * bps - dataStart) / (spc * bps));
  if (!fat32 && clusters < 4085) return []; // FAT12: everything counts as needed
  const entry = fat32 ? 4 : 2;
  const fat = await readAt(image, offset + reserved * bps, Math.min(fatSize * bps, (clusters + 2) * entry));
  const clusterBytes = spc * bps;
  const out: ByteRange[] = [];
  for (let c = 2; c < clusters + 2 && (c + 1) * entry <= fat.length; c++) {
    const v = fat32 ? fat.readUInt32LE(c * entry) & 0x0fffffff : fat.readUInt16LE(c * entry);
    if (v === 0) {
      const start = offset + dataStart + (c - 2) * clusterBytes;
      out.push({ start, end: start + clusterBytes });
    }
  }
  return mergeRanges(out);
}

/**
 * Bytes of the image nothing on it needs: outside every partition, and the free space of the boot
 * (FAT) and root (ext4) filesystems. Other partitions count as needed throughout.
 */
export async function unneededRanges(image: string, layout: ImageLayout): Promise<ByteRange[]> {
  const parts = layout.partitions.map((p) => ({ start: p.startBytes, end: p.startBytes + p.sizeBytes }));
  const outside: ByteRange[] = [];
  let pos = 0;
  for (const p of mergeRanges(parts)) {
    if (p.start > pos) outside.push({ start: pos, end: p.start });
    pos = Math.max(pos, p.end);
  }
  if (pos < layout.sizeBytes) outside.push({ start: pos, end: layout.sizeBytes });
  // the first MiB (MBR and what follows it) is always written: never call it unneeded
  const head = outside.map((r) => ({ start: Math.max(r.start, 1024 * 1024), end: r.end }));
  return mergeRanges([
    ...head,
    ...(await fatFreeRanges(image, layout.boot.startBytes)),
    ...(await ext4FreeRanges(image, layout.root.startBytes, layout.root.fs.blockSize)),
  ]);
}

export interface ImageDigest {
  sha256: string;
  bmap: { text: string; checksum: string; mappedBytes: number; blocks: number };
}

/**
 * The image's sha256 and its block map. The map comes first (python3's SEEK_DATA walk, dumpe2fs),
 * then, on a machine with more than one core, the image's sha256 and the sums of the map's ranges
 * run in two threads side by side, neither reading the holes: sha256 runs one block after another,
 * so one thread doing both hashes costs their sum, two threads the longer of the two (the second
 * read comes from the page cache). On one core, one thread hashes both in one read pass. (Starting
 * the image's sha256 before the map is known means reading the holes of a file whose pages are
 * still being written back; measured on the bench image, that made the build slower, not faster.)
 */
export async function hashAndMapImage(image: string, layout: ImageLayout, signal?: AbortSignal, onProgress?: ProgressFn): Promise<ImageDigest> {
  const size = layout.sizeBytes;
  let data: ByteRange[];
  let unneeded: ByteRange[];
  try {
    [data, unneeded] = await Promise.all([dataExtents(image), unneededRanges(image, layout)]);
  } catch (cause) {
    throw new IoError(`cannot map the blocks of ${image}: ${(cause as Error).message.split('\n')[0]}`, { cause });
  }
  const blocks = mappedBlocks({ size, data, unneeded });
  const ranges = blocks.map((r) => rangeBytes(r, size));
  let sha256: string;
  let sums: string[];
  if (availableParallelism() < 2) {
    ({ sha256, sums } = await fileSha256AndRanges(image, { ranges, data }, onProgress, signal));
  } else {
    // either the caller's signal or the other thread's failure stops both threads
    const stop = new AbortController();
    const either = signal === undefined ? stop.signal : AbortSignal.any([signal, stop.signal]);
    const stopOnFailure = <T>(p: Promise<T>) =>
      p.catch((err: unknown) => {
        stop.abort();
        throw err;
      });
    [{ sha256 }, sums] = await Promise.all([
      stopOnFailure(fileSha256AndRanges(image, { data }, onProgress, either)),
      stopOnFailure(fileRangeSums(image, { ranges, data }, either)),
    ]);
  }
  const bmapRanges = blocks.map((r, i) => ({ ...r, sha256: sums[i]! }));
  const { text, checksum } = renderBmap({ imageSize: size, ranges: bmapRanges });
  return {
    sha256,
    bmap: { text, checksum, mappedBytes: ranges.reduce((a, r) => a + r.end - r.start, 0), blocks: bmapRanges.reduce((a, r) => a + r.last - r.first + 1, 0) },
  };
}

/** A bmap file: the map, a reason it cannot be used, or undefined when there is no such file. */
export async function readBmap(path: string): Promise<{ bmap: Bmap } | { problem: string } | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { problem: `cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  return parseBmap(text);
}

export { BMAP_BLOCK_SIZE };
