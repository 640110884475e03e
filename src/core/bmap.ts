/**
 * Block maps in bmaptool's format (bmap file format version 2.0), so that `bmaptool copy` can use
 * the maps `pi-image build` writes and `pi-image flash` can use them too.
 *
 * The format, as bmaptool writes and reads it (yoctoproject/bmaptool src/bmaptool/BmapCreate.py,
 * `_BMAP_START_TEMPLATE` / `_bmap_file_start` / `_bmap_file_end` / `_calculate_chksum`, and
 * src/bmaptool/BmapCopy.py `_parse_bmap` / `_verify_bmap_checksum` / `_get_block_ranges`):
 *   - root `<bmap version="2.0">`; children `ImageSize` (bytes), `BlockSize` (4096), `BlocksCount`
 *     (ceil(ImageSize / BlockSize)), `MappedBlocksCount`, `ChecksumType` (sha256),
 *     `BmapFileChecksum`, `BlockMap`;
 *   - `BlockMap` holds `<Range chksum="…"> first-last </Range>` (or `> n <` for one block): block
 *     numbers, inclusive; `chksum` is the sha256 of the bytes of those blocks as read from the image
 *     (the last block of an image whose size is not a multiple of 4096 is short);
 *   - `BmapFileChecksum` is the sha256 of the whole bmap file with its own value replaced by as many
 *     ASCII "0" as it has characters.
 * Pure: no I/O. The ranges come from src/adapters/bmap.ts.
 */
import { createHash } from 'node:crypto';

export const BMAP_VERSION = '2.0';
export const BMAP_BLOCK_SIZE = 4096;

/** A byte range [start, end). */
export interface ByteRange {
  start: number;
  end: number;
}

/** Mapped blocks `first`..`last` (inclusive) and the sha256 of their bytes. */
export interface BmapRange {
  first: number;
  last: number;
  sha256: string;
}

export interface Bmap {
  version: string;
  imageSize: number;
  blockSize: number;
  blocksCount: number;
  mappedBlocksCount: number;
  /** BmapFileChecksum: the file's own sha256 (see above) */
  checksum: string;
  ranges: BmapRange[];
}

/** Sorts and merges byte ranges (touching or overlapping ones become one), dropping empty ones. */
export function mergeRanges(ranges: readonly ByteRange[]): ByteRange[] {
  const sorted = ranges.filter((r) => r.end > r.start).sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

/** The parts of [0, size) not covered by `ranges`. */
export function complementRanges(ranges: readonly ByteRange[], size: number): ByteRange[] {
  const out: ByteRange[] = [];
  let pos = 0;
  for (const r of mergeRanges(ranges)) {
    if (r.start > pos) out.push({ start: pos, end: Math.min(r.start, size) });
    pos = Math.max(pos, r.end);
  }
  if (pos < size) out.push({ start: pos, end: size });
  return out.filter((r) => r.end > r.start);
}

/** The parts covered by both `a` and `b`. */
export function intersectRanges(a: readonly ByteRange[], b: readonly ByteRange[]): ByteRange[] {
  const x = mergeRanges(a);
  const y = mergeRanges(b);
  const out: ByteRange[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    const start = Math.max(x[i]!.start, y[j]!.start);
    const end = Math.min(x[i]!.end, y[j]!.end);
    if (end > start) out.push({ start, end });
    if (x[i]!.end < y[j]!.end) i++;
    else j++;
  }
  return out;
}

/**
 * The blocks a card must receive: every block except those that are both a hole in the image
 * (reads as zeros, SEEK_HOLE) and not needed by anything on it (`unneeded`: space no partition
 * uses, free blocks of ext4, free clusters of FAT). A hole alone is not enough: `cp --sparse`
 * turns every run of zeros into a hole, including zeros inside files and in filesystem metadata
 * (an unused stretch of the FAT, an empty directory cluster) that must read as zeros on the card,
 * where an unmapped block keeps whatever the card held before. Only whole blocks are left out.
 * Returns inclusive block ranges [first, last].
 */
export function mappedBlocks(o: { size: number; data: readonly ByteRange[]; unneeded: readonly ByteRange[]; blockSize?: number }): { first: number; last: number }[] {
  const bs = o.blockSize ?? BMAP_BLOCK_SIZE;
  const blocks = Math.ceil(o.size / bs);
  const holes = complementRanges(o.data, o.size);
  const skippable = intersectRanges(holes, o.unneeded)
    .map((r) => ({ start: Math.ceil(r.start / bs), end: r.end >= o.size ? blocks : Math.floor(r.end / bs) }))
    .filter((r) => r.end > r.start);
  return complementRanges(skippable, blocks).map((r) => ({ first: r.start, last: r.end - 1 }));
}

/** The bytes of blocks first..last in an image of `imageSize` bytes (the last block may be short). */
export function rangeBytes(r: { first: number; last: number }, imageSize: number, blockSize = BMAP_BLOCK_SIZE): ByteRange {
  return { start: r.first * blockSize, end: Math.min((r.last + 1) * blockSize, imageSize) };
}

/** Bytes a map says to copy. */
export function mappedBytes(b: Pick<Bmap, 'ranges' | 'imageSize' | 'blockSize'>): number {
  return b.ranges.reduce((a, r) => {
    const { start, end } = rangeBytes(r, b.imageSize, b.blockSize);
    return a + (end - start);
  }, 0);
}

function human(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} bytes` : `${v.toFixed(1)} ${units[u]}`;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const ZERO_SUM = '0'.repeat(64);

/** The bmap file (laid out as bmaptool writes it) and its BmapFileChecksum. */
export function renderBmap(o: { imageSize: number; ranges: readonly BmapRange[]; blockSize?: number }): { text: string; checksum: string } {
  const bs = o.blockSize ?? BMAP_BLOCK_SIZE;
  const blocksCount = Math.ceil(o.imageSize / bs);
  const mapped = o.ranges.reduce((a, r) => a + (r.last - r.first + 1), 0);
  const percent = blocksCount === 0 ? 0 : (mapped * 100) / blocksCount;
  const lines = [
    '<?xml version="1.0" ?>',
    '<!-- The block map of an image made by pi-image build: the blocks that hold data',
    '     (partition table, filesystem metadata, files). Only these have to be written',
    '     to a card: pi-image flash and bmaptool copy skip the others. Format: bmaptool\'s',
    '     bmap file format, version 2.0. -->',
    '',
    `<bmap version="${BMAP_VERSION}">`,
    `    <!-- Image size in bytes: ${human(o.imageSize)} -->`,
    `    <ImageSize> ${o.imageSize} </ImageSize>`,
    '',
    '    <!-- Size of a block in bytes -->',
    `    <BlockSize> ${bs} </BlockSize>`,
    '',
    '    <!-- Count of blocks in the image file -->',
    `    <BlocksCount> ${blocksCount} </BlocksCount>`,
    '',
    `    <!-- Count of mapped blocks: ${human(mapped * bs)} or ${percent.toFixed(1)}% -->`,
    `    <MappedBlocksCount> ${mapped} </MappedBlocksCount>`,
    '',
    '    <!-- Type of checksum used in this file -->',
    '    <ChecksumType> sha256 </ChecksumType>',
    '',
    '    <!-- The checksum of this bmap file. When it is calculated, the value of',
    '         the checksum has be zero (all ASCII "0" symbols).  -->',
    `    <BmapFileChecksum> ${ZERO_SUM} </BmapFileChecksum>`,
    '',
    '    <!-- The block map: ranges of blocks, with the sha256 of each range -->',
    '    <BlockMap>',
    ...o.ranges.map((r) => `        <Range chksum="${r.sha256}"> ${r.first === r.last ? `${r.first}` : `${r.first}-${r.last}`} </Range>`),
    '    </BlockMap>',
    '</bmap>',
    '',
  ];
  const zeroed = lines.join('\n');
  const checksum = sha256(zeroed);
  return { text: zeroed.replace(`<BmapFileChecksum> ${ZERO_SUM} `, `<BmapFileChecksum> ${checksum} `), checksum };
}

/** Why a bmap file cannot be used, or the map. Never throws: a bad map is only a reason to write the whole image. */
export function parseBmap(text: string): { bmap: Bmap } | { problem: string } {
  // The map is flat XML of one known shape (bmaptool's own reader, BmapCopy.py, takes the same
  // elements with ElementTree); it is read element by element, comments dropped, and anything that
  // does not fit is a reason to write the whole image, never a guess.
  const body = text.replace(/<!--[\s\S]*?-->/g, '');
  const root = /<bmap\s+version="([^"]*)"\s*>([\s\S]*)<\/bmap>/.exec(body);
  if (!/^\s*(<\?xml[^>]*\?>)?\s*<bmap[\s>]/.test(body) || root === null) return { problem: 'no <bmap> element (not a bmap file)' };
  const version = root[1] ?? '';
  if (!/^2\.\d+$/.test(version)) return { problem: `bmap format version ${version || '(none)'} (pi-image reads 2.x)` };
  const inner = root[2] ?? '';
  const element = (name: string): string | undefined => {
    const all = [...inner.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))];
    return all.length === 1 ? all[0]![1]!.trim() : undefined;
  };
  const int = (name: string): number | undefined => {
    const v = element(name);
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
  };
  const imageSize = int('ImageSize');
  const blockSize = int('BlockSize');
  const blocksCount = int('BlocksCount');
  const mappedBlocksCount = int('MappedBlocksCount');
  if (imageSize === undefined || blockSize === undefined || blocksCount === undefined || mappedBlocksCount === undefined) {
    return { problem: 'ImageSize, BlockSize, BlocksCount or MappedBlocksCount missing or not a number' };
  }
  if (blockSize === 0 || blocksCount !== Math.ceil(imageSize / blockSize)) return { problem: `BlocksCount ${blocksCount} does not fit ImageSize ${imageSize} / BlockSize ${blockSize}` };
  if (element('ChecksumType') !== 'sha256') return { problem: `ChecksumType ${element('ChecksumType') ?? '(none)'} (pi-image checks sha256)` };
  const checksum = element('BmapFileChecksum') ?? '';
  if (!/^[0-9a-f]{64}$/.test(checksum)) return { problem: 'BmapFileChecksum is not a sha256' };
  // bmaptool's check: the file's sha256 with the checksum's characters replaced by "0"
  const at = text.indexOf(checksum);
  if (sha256(text.slice(0, at) + ZERO_SUM + text.slice(at + 64)) !== checksum) return { problem: 'its BmapFileChecksum does not match its contents (the file was changed or damaged)' };
  const map = /<BlockMap>([\s\S]*)<\/BlockMap>/.exec(inner);
  if (map === null) return { problem: 'no <BlockMap> element' };
  const ranges: BmapRange[] = [];
  let mapped = 0;
  let next = 0;
  let rest = map[1] ?? '';
  for (const el of (map[1] ?? '').matchAll(/<Range((?:\s+\w+="[^"]*")*)\s*>([^<]*)<\/Range>/g)) {
    rest = rest.replace(el[0], '');
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec((el[2] ?? '').trim());
    const sum = /\schksum="([^"]*)"/.exec(el[1] ?? '')?.[1] ?? '';
    if (!m) return { problem: `a Range "${(el[2] ?? '').trim()}" is not "first-last"` };
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (last < first || first < next || last >= blocksCount) return { problem: `Range ${first}-${last} is out of order or outside the image's ${blocksCount} blocks` };
    if (!/^[0-9a-f]{64}$/.test(sum)) return { problem: `Range ${first}-${last} has no sha256 chksum` };
    ranges.push({ first, last, sha256: sum });
    mapped += last - first + 1;
    next = last + 1;
  }
  if (rest.trim() !== '') return { problem: `the BlockMap holds something other than Range elements: ${rest.trim().slice(0, 40)}` };
  if (mapped !== mappedBlocksCount) return { problem: `MappedBlocksCount ${mappedBlocksCount} ≠ the ${mapped} blocks of its ranges` };
  return { bmap: { version, imageSize, blockSize, blocksCount, mappedBlocksCount, checksum, ranges } };
}

/** `x.img`, `x.img.zst`, `x.img.xz` → `x.img.bmap` (one map for every form: it maps the raw content). */
export function bmapPathFor(image: string): string {
  return `${image.replace(/\.(zst|xz)$/, '')}.bmap`;
}
