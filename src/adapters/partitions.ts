/**
 * Reads the partition layout of a raw disk image in-process (no root, no loop devices).
 *
 * Raspberry Pi OS images use an MBR ("dos") partition table: p1 FAT32 labelled `bootfs`
 * (mounted at /boot/firmware), p2 ext4 labelled `rootfs`. The kernel command line refers to the root
 * partition as `root=PARTUUID=<disk id>-02`, so the 32-bit MBR disk identifier matters too.
 *
 * The byte parsers (`parseMbr`, `parseFatBootSector`, `parseExt4Superblock`) are pure and exported
 * for unit tests; `inspectImage` reads the file and checks the Pi OS layout.
 */
import { open, stat } from 'node:fs/promises';
import { InputError, IoError } from '../core/errors.js';

export const SECTOR = 512;

export interface MbrPartition {
  /** 1-based partition number (p1..p4) */
  number: number;
  /** MBR partition type byte, e.g. 0x0c (FAT32 LBA), 0x83 (Linux) */
  type: number;
  bootable: boolean;
  startBytes: number;
  sizeBytes: number;
}

export interface MbrTable {
  /** disk identifier as 8 lower-case hex digits (PARTUUIDs are `<diskId>-0N`) */
  diskId: string;
  partitions: MbrPartition[];
  /** true when the MBR is a GPT protective MBR (a partition of type 0xEE) */
  protectiveGpt: boolean;
}

export interface FatInfo {
  fatType: 'FAT12' | 'FAT16' | 'FAT32';
  /** volume label from the BPB, trimmed ('' when unset / "NO NAME") */
  label: string;
  bytesPerSector: number;
  totalSectors: number;
}

export interface Ext4Info {
  /** volume label, '' when unset */
  label: string;
  uuid: string;
  blockSize: number;
  blocksCount: number;
  /** true when the filesystem has the extents feature (ext4 rather than ext2/3) */
  extents: boolean;
}

export interface ImageLayout {
  path: string;
  sizeBytes: number;
  diskId: string;
  partitions: MbrPartition[];
  boot: MbrPartition & { fs: FatInfo; partuuid: string };
  root: MbrPartition & { fs: Ext4Info; partuuid: string };
}

export interface InspectOptions {
  /** expected FAT label (default `bootfs`); null accepts any label */
  bootLabel?: string | null;
  /** expected ext4 label (default `rootfs`); null accepts any label */
  rootLabel?: string | null;
}

const FAT_TYPES = new Set([0x0b, 0x0c, 0x0e, 0x06, 0x04, 0x01]);
const LAYOUT_HINT =
  'pi-image needs the Raspberry Pi OS MBR layout: p1 FAT `bootfs`, p2 ext4 `rootfs`; use an unmodified Raspberry Pi OS Lite arm64 image (see `pi-image images list`)';

// ── pure parsers ─────────────────────────────────────────────────────────────────────────────────

/** Parses sector 0. Returns undefined when it carries no 0x55AA boot signature. */
export function parseMbr(sector0: Uint8Array): MbrTable | undefined {
  if (sector0.length < SECTOR) return undefined;
  const b = Buffer.from(sector0.buffer, sector0.byteOffset, sector0.length);
  if (b[510] !== 0x55 || b[511] !== 0xaa) return undefined;
  const diskId = b.readUInt32LE(440).toString(16).padStart(8, '0');
  const partitions: MbrPartition[] = [];
  let protectiveGpt = false;
  for (let i = 0; i < 4; i++) {
    const e = 446 + i * 16;
    const type = b[e + 4] ?? 0;
    const startLba = b.readUInt32LE(e + 8);
    const sectors = b.readUInt32LE(e + 12);
    if (type === 0 || sectors === 0) continue;
    if (type === 0xee) protectiveGpt = true;
    partitions.push({
      number: i + 1,
      type,
      bootable: b[e] === 0x80,
      startBytes: startLba * SECTOR,
      sizeBytes: sectors * SECTOR,
    });
  }
  return { diskId, partitions, protectiveGpt };
}

/** Parses a FAT boot sector (BPB). Returns undefined when it does not look like FAT. */
export function parseFatBootSector(sector: Uint8Array): FatInfo | undefined {
  if (sector.length < SECTOR) return undefined;
  const b = Buffer.from(sector.buffer, sector.byteOffset, sector.length);
  const bytesPerSector = b.readUInt16LE(11);
  const sectorsPerCluster = b[13] ?? 0;
  const reserved = b.readUInt16LE(14);
  const numFats = b[16] ?? 0;
  const rootEntries = b.readUInt16LE(17);
  const total16 = b.readUInt16LE(19);
  const fatSize16 = b.readUInt16LE(22);
  const total32 = b.readUInt32LE(32);
  const fatSize32 = b.readUInt32LE(36);
  const validBps = [512, 1024, 2048, 4096].includes(bytesPerSector);
  const validSpc = sectorsPerCluster > 0 && (sectorsPerCluster & (sectorsPerCluster - 1)) === 0;
  if (!validBps || !validSpc || reserved === 0 || numFats === 0) return undefined;
  if (b[510] !== 0x55 || b[511] !== 0xaa) return undefined;
  const totalSectors = total16 !== 0 ? total16 : total32;
  const fatSize = fatSize16 !== 0 ? fatSize16 : fatSize32;
  const rootDirSectors = Math.ceil((rootEntries * 32) / bytesPerSector);
  const dataSectors = totalSectors - (reserved + numFats * fatSize + rootDirSectors);
  const clusters = Math.floor(dataSectors / sectorsPerCluster);
  const fatType = fatSize16 === 0 ? 'FAT32' : clusters < 4085 ? 'FAT12' : 'FAT16';
  // extended BPB: at 38 (FAT12/16) or 66 (FAT32); signature 0x29 means the label field is valid
  const ext = fatType === 'FAT32' ? 66 : 38;
  let label = '';
  if (b[ext] === 0x29) {
    label = b.toString('latin1', ext + 5, ext + 16).trim();
    if (label === 'NO NAME') label = '';
  }
  return { fatType, label, bytesPerSector, totalSectors };
}

/** Parses an ext2/3/4 superblock (the 1024 bytes at partition offset +1024). */
export function parseExt4Superblock(sb: Uint8Array): Ext4Info | undefined {
  if (sb.length < 1024) return undefined;
  const b = Buffer.from(sb.buffer, sb.byteOffset, sb.length);
  if (b.readUInt16LE(56) !== 0xef53) return undefined;
  const logBlock = b.readUInt32LE(24);
  const blockSize = 1024 << logBlock;
  const incompat = b.readUInt32LE(96);
  const is64 = (incompat & 0x80) !== 0;
  const blocksCount = b.readUInt32LE(4) + (is64 ? b.readUInt32LE(0x150) * 2 ** 32 : 0);
  const labelRaw = b.subarray(120, 136);
  const nul = labelRaw.indexOf(0);
  const label = labelRaw.toString('utf8', 0, nul === -1 ? 16 : nul);
  const u = b.subarray(104, 120).toString('hex');
  const uuid = `${u.slice(0, 8)}-${u.slice(8, 12)}-${u.slice(12, 16)}-${u.slice(16, 20)}-${u.slice(20)}`;
  return { label, uuid, blockSize, blocksCount, extents: (incompat & 0x40) !== 0 };
}

/** `<diskId>-0N`, as used in `root=PARTUUID=…` */
export function partuuid(diskId: string, number: number): string {
  return `${diskId}-${number.toString(16).padStart(2, '0')}`;
}

// ── file access ──────────────────────────────────────────────────────────────────────────────────

/** Reads `length` bytes at `position` (fewer at the end of the file). */
export async function readAt(path: string, position: number, length: number): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw openError(path, err);
  }
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * Reads and checks the partition layout of a Raspberry Pi OS image. Throws InputError naming the
 * image and what is wrong (GPT, missing FAT or ext4 partition, wrong label, truncated image).
 */
/** Byte offset of the first (FAT boot) partition of an MBR image. */
export async function bootPartitionOffset(image: string): Promise<number> {
  let sector0: Buffer;
  try {
    sector0 = await readAt(image, 0, SECTOR);
  } catch (e) {
    throw new IoError(`cannot read ${image}`, { cause: e });
  }
  const mbr = parseMbr(sector0);
  const p1 = mbr?.partitions.find((p) => p.number === 1);
  if (mbr === undefined || p1 === undefined) {
    throw new IoError(`${image} has no MBR partition 1 (expected a Raspberry Pi OS layout: p1 FAT bootfs, p2 ext4 rootfs)`);
  }
  return p1.startBytes;
}

export async function inspectImage(path: string, opts: InspectOptions = {}): Promise<ImageLayout> {
  let sizeBytes: number;
  try {
    sizeBytes = (await stat(path)).size;
  } catch (err) {
    throw openError(path, err);
  }
  const bad = (what: string): InputError => new InputError(`base image ${path} ${what}`, { hint: LAYOUT_HINT });
  const mbr = parseMbr(await readAt(path, 0, SECTOR));
  if (mbr === undefined) throw bad('has no MBR partition table (no 0x55AA signature in sector 0)');
  if (mbr.protectiveGpt) {
    throw new InputError(
      `base image ${path} has a GPT partition table; pi-image needs the Raspberry Pi OS MBR layout: p1 FAT bootfs, p2 ext4 rootfs`,
      { hint: 'use an unmodified Raspberry Pi OS Lite arm64 image (see `pi-image images list`)' },
    );
  }
  for (const p of mbr.partitions) {
    if (p.startBytes + p.sizeBytes > sizeBytes) {
      throw bad(
        `is truncated: partition ${p.number} ends at byte ${p.startBytes + p.sizeBytes} but the file has ${sizeBytes} bytes`,
      );
    }
  }
  const p1 = mbr.partitions.find((p) => p.number === 1);
  const p2 = mbr.partitions.find((p) => p.number === 2);
  if (p1 === undefined || p2 === undefined) {
    throw bad(`has ${mbr.partitions.length} partition(s) (${mbr.partitions.map((p) => `p${p.number}`).join(', ') || 'none'}); expected p1 and p2`);
  }
  if (!FAT_TYPES.has(p1.type)) throw bad(`partition 1 has type 0x${hex2(p1.type)}, not FAT (0x0b/0x0c/0x0e)`);
  const fat = parseFatBootSector(await readAt(path, p1.startBytes, SECTOR));
  if (fat === undefined) throw bad('partition 1 has no FAT filesystem (no valid boot sector)');
  const bootLabel = opts.bootLabel === undefined ? 'bootfs' : opts.bootLabel;
  if (bootLabel !== null && fat.label.toLowerCase() !== bootLabel.toLowerCase()) {
    throw bad(`partition 1 is FAT labelled "${fat.label}", expected "${bootLabel}"`);
  }
  if (p2.type !== 0x83) throw bad(`partition 2 has type 0x${hex2(p2.type)}, not Linux (0x83)`);
  const ext = parseExt4Superblock(await readAt(path, p2.startBytes + 1024, 1024));
  if (ext === undefined) throw bad('partition 2 has no ext4 filesystem (no 0xEF53 superblock magic)');
  const rootLabel = opts.rootLabel === undefined ? 'rootfs' : opts.rootLabel;
  if (rootLabel !== null && ext.label !== rootLabel) {
    throw bad(`partition 2 is ext4 labelled "${ext.label}", expected "${rootLabel}"`);
  }
  return {
    path,
    sizeBytes,
    diskId: mbr.diskId,
    partitions: mbr.partitions,
    boot: { ...p1, fs: fat, partuuid: partuuid(mbr.diskId, 1) },
    root: { ...p2, fs: ext, partuuid: partuuid(mbr.diskId, 2) },
  };
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function openError(path: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new InputError(`image ${path} does not exist`, { cause: err });
  if (code === 'EACCES') return new IoError(`cannot read image ${path}: permission denied`, { cause: err });
  return new IoError(`cannot read image ${path}: ${(err as Error).message}`, { cause: err });
}
