/**
 * Which block device may `pi-image flash` overwrite? Pure classification of `lsblk --json` output.
 *
 * Input is the whole-system tree from
 *   lsblk --json --bytes --output NAME,PATH,SIZE,TYPE,TRAN,RM,HOTPLUG,RO,MOUNTPOINTS,FSTYPE,LABEL,MODEL,VENDOR,SERIAL,PKNAME
 * (all devices, so siblings such as an eMMC's `mmcblk0boot0` are visible), the target path the user
 * named, the image size and the device(s) the source image lives on.
 *
 * The removable-media rule follows what Raspberry Pi Imager / balena's drivelist do on Linux: a
 * device is a candidate when lsblk calls it removable (RM=1, e.g. SD slots in USB readers) or
 * hot-pluggable (HOTPLUG=1, e.g. USB SSDs that report RM=0), or when it sits on a USB or MMC/SD
 * transport. An MMC device that has `boot0`/`boot1` hardware partitions is eMMC soldered to the
 * board (laptops, tablets, CM4) and is refused; a plain `mmcblkN` is an SD card in a built-in slot.
 *
 * Both lsblk JSON dialects are accepted: util-linux ≥ 2.37 (typed values, `mountpoints` array) and
 * older versions (every value a string, singular `mountpoint`).
 */

export interface BlockDevice {
  name: string;
  path: string;
  size: number;
  /** disk, part, loop, rom, lvm, raid1, crypt, … */
  type: string;
  /** usb, mmc, nvme, sata, ata, scsi, … or null */
  tran: string | null;
  rm: boolean;
  hotplug: boolean;
  ro: boolean;
  /** active mount points, `[SWAP]` for active swap */
  mountpoints: string[];
  fstype: string | null;
  label: string | null;
  model: string | null;
  vendor: string | null;
  serial: string | null;
  pkname: string | null;
  children: BlockDevice[];
}

export interface DeviceVerdict {
  ok: boolean;
  /** the device path the verdict is about (as found in lsblk, e.g. /dev/sdb) */
  device: string;
  /** one-line human description, e.g. `/dev/sdb: SanDisk Ultra, 31.9 GB, usb, removable` */
  description: string;
  size: number;
  warnings: string[];
  refusals: string[];
  /** the whole disk to use instead, when a partition was given */
  suggestion?: string;
  /** lsblk's TYPE of the device (disk, loop, part …), when lsblk knows it */
  type?: string;
}

export interface ClassifyInput {
  /** parsed lsblk tree (top-level devices with children) */
  devices: readonly BlockDevice[];
  /** what the user named, resolved through symlinks (e.g. /dev/sdb) */
  target: string;
  imageSize: number;
  /** kernel names of the block device(s) holding the source image (e.g. ['nvme0n1p2']); may be empty */
  sourceDevices?: readonly string[];
  /** explicit test override (PI_IMAGE_ALLOW_LOOP=1 / --allow-loop): accept loop devices */
  allowLoop?: boolean;
}

/** Devices above this size get a "is this really a card?" warning (128 GiB; 128 GB cards are below it). */
export const LARGE_DEVICE_BYTES = 128 * 1024 ** 3;

const SYSTEM_MOUNTS = new Set(['/', '/boot', '/boot/efi', '/boot/firmware', '/usr', '/var', '/home', '[SWAP]']);
const MEMBER_FSTYPES: Record<string, string> = {
  linux_raid_member: 'a Linux software RAID (md) member',
  LVM2_member: 'an LVM physical volume',
  zfs_member: 'a ZFS pool member',
  ceph_bluestore: 'a Ceph OSD',
};
const NON_DISK_TYPES: Record<string, string> = {
  rom: 'an optical drive',
  lvm: 'an LVM logical volume',
  crypt: 'an encrypted (dm-crypt) mapping',
  dm: 'a device-mapper device',
  md: 'a software RAID device',
  mpath: 'a multipath device',
};

// ── parsing ──────────────────────────────────────────────────────────────────────────────────────

function asBool(v: unknown): boolean {
  return v === true || v === 1 || v === '1' || v === 'true';
}
function asNum(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^\d+$/.test(v.trim())) return Number(v.trim());
  return 0;
}
function asStr(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  const t = v.trim();
  return t === '' ? null : t;
}

function toDevice(raw: unknown, where: string): BlockDevice {
  if (typeof raw !== 'object' || raw === null) throw new Error(`lsblk output: ${where} is not an object`);
  const r = raw as Record<string, unknown>;
  const name = asStr(r.name);
  if (name === null) throw new Error(`lsblk output: ${where} has no name`);
  const mounts: string[] = [];
  if (Array.isArray(r.mountpoints)) {
    for (const m of r.mountpoints) if (typeof m === 'string' && m !== '') mounts.push(m);
  } else if (typeof r.mountpoint === 'string' && r.mountpoint !== '') {
    mounts.push(r.mountpoint);
  }
  const children = Array.isArray(r.children) ? r.children.map((c, i) => toDevice(c, `${where}.children[${i}]`)) : [];
  return {
    name,
    path: asStr(r.path) ?? `/dev/${name}`,
    size: asNum(r.size),
    type: asStr(r.type) ?? 'disk',
    tran: asStr(r.tran),
    rm: asBool(r.rm),
    hotplug: asBool(r.hotplug),
    ro: asBool(r.ro),
    mountpoints: mounts,
    fstype: asStr(r.fstype),
    label: asStr(r.label),
    model: asStr(r.model),
    vendor: asStr(r.vendor),
    serial: asStr(r.serial),
    pkname: asStr(r.pkname),
    children,
  };
}

/** Parses `lsblk --json` text. Throws a plain Error (the adapter wraps it) when it is not lsblk JSON. */
export function parseLsblk(json: string): BlockDevice[] {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (err) {
    throw new Error(`lsblk output is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const list = (data as { blockdevices?: unknown }).blockdevices;
  if (!Array.isArray(list)) throw new Error('lsblk output has no "blockdevices" array');
  return list.map((d, i) => toDevice(d, `blockdevices[${i}]`));
}

// ── helpers ──────────────────────────────────────────────────────────────────────────────────────

/** Every device in the tree, depth first, with its parent chain (outermost first). */
function walk(devs: readonly BlockDevice[], parents: BlockDevice[] = []): { dev: BlockDevice; parents: BlockDevice[] }[] {
  const out: { dev: BlockDevice; parents: BlockDevice[] }[] = [];
  for (const d of devs) {
    out.push({ dev: d, parents });
    out.push(...walk(d.children, [...parents, d]));
  }
  return out;
}

function descendants(d: BlockDevice): BlockDevice[] {
  return walk(d.children).map((e) => e.dev);
}

/** Finds a device by path (`/dev/sdb`) or kernel name (`sdb`). */
export function findDevice(devices: readonly BlockDevice[], target: string): { dev: BlockDevice; parents: BlockDevice[] } | undefined {
  const name = target.startsWith('/dev/') ? target.slice(5) : target;
  return walk(devices).find((e) => e.dev.path === target || e.dev.name === name);
}

/** 31914983424 → "31.9 GB" (decimal units, as card vendors print them). */
export function humanSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let u = -1;
  do {
    v /= 1000;
    u++;
  } while (v >= 1000 && u < units.length - 1);
  return `${v.toFixed(1)} ${units[u] ?? 'PB'}`;
}

/** "/dev/sdb: SanDisk Ultra, 31.9 GB, usb, removable" */
export function describeDevice(d: BlockDevice): string {
  const model = [d.vendor, d.model].filter((s): s is string => s !== null && !/^0x[0-9a-f]+$/i.test(s)).join(' ');
  const parts = [model || 'unknown model', humanSize(d.size), d.tran ?? d.type];
  if (d.rm) parts.push('removable');
  else if (d.hotplug) parts.push('hot-pluggable');
  if (d.ro) parts.push('read-only');
  return `${d.path}: ${parts.join(', ')}`;
}

function isEmmc(d: BlockDevice, all: readonly BlockDevice[]): boolean {
  if (!d.name.startsWith('mmcblk')) return false;
  const flat = walk(all).map((e) => e.dev.name);
  return flat.includes(`${d.name}boot0`) || flat.includes(`${d.name}boot1`) || flat.includes(`${d.name}rpmb`);
}

/**
 * Why a whole disk is not removable media (internal eMMC, or RM=0, HOTPLUG=0 on a transport other
 * than USB or MMC), or undefined when it is: the one removable-media rule for classifyDevice and the
 * candidate list.
 */
export function notRemovableReason(d: BlockDevice, all: readonly BlockDevice[]): string | undefined {
  if (d.tran === 'mmc' && isEmmc(d, all)) {
    return `${d.path} is internal eMMC storage (it has ${d.name}boot0/boot1 hardware partitions), not an SD card`;
  }
  if (!d.rm && !d.hotplug && d.tran !== 'usb' && d.tran !== 'mmc') {
    return `${d.path} is not removable (RM=0, HOTPLUG=0, transport ${d.tran ?? 'unknown'}) — it looks like an internal disk; pi-image only writes SD cards and USB drives`;
  }
  return undefined;
}

// ── classification ───────────────────────────────────────────────────────────────────────────────

/** Decides whether `target` may be overwritten with an image of `imageSize` bytes. */
export function classifyDevice(input: ClassifyInput): DeviceVerdict {
  const { devices, target, imageSize } = input;
  const found = findDevice(devices, target);
  if (found === undefined) {
    return {
      ok: false,
      device: target,
      description: `${target}: not found`,
      size: 0,
      warnings: [],
      refusals: [`${target} is not a block device lsblk knows about; run \`lsblk\` to see the attached disks`],
    };
  }
  const d = found.dev;
  const refusals: string[] = [];
  const warnings: string[] = [];
  let suggestion: string | undefined;

  // what kind of device
  if (d.type === 'part') {
    const disk = [...found.parents].reverse().find((p) => p.type === 'disk' || p.type === 'loop');
    suggestion = disk?.path;
    refusals.push(
      `${d.path} is a partition${disk === undefined ? '' : ` of ${disk.path}`}; pi-image writes a whole disk (partition table included)` +
        (disk === undefined ? '' : ` — use --device ${disk.path}`),
    );
  } else if (d.type === 'loop') {
    if (input.allowLoop !== true) {
      refusals.push(`${d.path} is a loop device (a file posing as a disk), not a card; loop devices are accepted only by the test override PI_IMAGE_ALLOW_LOOP=1`);
    }
  } else if (d.name.startsWith('zram')) {
    refusals.push(`${d.path} is a zram device (compressed RAM, usually swap), not a card`);
  } else if (d.type.startsWith('raid')) {
    refusals.push(`${d.path} is a software RAID array (${d.type}), not a card`);
  } else if (NON_DISK_TYPES[d.type] !== undefined) {
    refusals.push(`${d.path} is ${NON_DISK_TYPES[d.type] ?? d.type}, not a card`);
  } else if (d.type !== 'disk') {
    refusals.push(`${d.path} has type "${d.type}", not a whole disk`);
  }

  // removable?
  if (d.type === 'disk' && !d.name.startsWith('zram')) {
    const notRemovable = notRemovableReason(d, devices);
    if (notRemovable !== undefined) refusals.push(notRemovable);
  }

  // medium and size
  if (d.size === 0) {
    refusals.push(`${d.path} has no medium (size 0): insert the card into the reader and try again`);
  } else if (d.size < imageSize) {
    refusals.push(`${d.path} is too small: ${humanSize(d.size)} (${d.size} bytes) < image ${humanSize(imageSize)} (${imageSize} bytes)`);
  }
  if (d.ro) {
    refusals.push(`${d.path} is read-only — check the lock switch on the SD card (or adapter) and re-insert it`);
  }

  // in use by the running system
  const tree = [d, ...descendants(d)];
  const mounts = tree.flatMap((x) => x.mountpoints.map((m) => ({ dev: x.path, m })));
  const system = mounts.filter((x) => SYSTEM_MOUNTS.has(x.m));
  if (system.length > 0) {
    refusals.push(
      `${d.path} holds the running system: ${system.map((x) => `${x.dev} ${x.m === '[SWAP]' ? 'is active swap' : `is mounted at ${x.m}`}`).join('; ')}`,
    );
  }
  const other = mounts.filter((x) => !SYSTEM_MOUNTS.has(x.m));
  if (other.length > 0) {
    refusals.push(
      `${d.path} is mounted: ${other.map((x) => `${x.dev} on ${x.m}`).join('; ')} — unmount it first (\`umount ${other.map((x) => x.dev).filter((v, i, a) => a.indexOf(v) === i).join(' ')}\` or \`udisksctl unmount -b …\`); pi-image never unmounts by itself`,
    );
  }
  if (d.type !== 'part') {
    const members = tree.filter((x) => x.fstype !== null && MEMBER_FSTYPES[x.fstype] !== undefined);
    for (const x of members) {
      refusals.push(`${x.path} is ${MEMBER_FSTYPES[x.fstype ?? ''] ?? x.fstype} (${x.fstype}); remove it from the array/volume group before reusing the disk`);
    }
    const stacked = descendants(d).filter((x) => x.type.startsWith('raid') || x.type === 'lvm' || x.type === 'crypt');
    if (members.length === 0 && stacked.length > 0) {
      refusals.push(`${d.path} carries ${stacked.map((x) => `${x.path} (${x.type})`).join(', ')}; tear those down first`);
    }
  }
  const sources = new Set(input.sourceDevices ?? []);
  const holding = tree.filter((x) => sources.has(x.name));
  if (holding.length > 0) {
    refusals.push(`${d.path} holds the source image (it is on ${holding.map((x) => x.path).join(', ')}); copy the image elsewhere first`);
  }

  if (d.size > LARGE_DEVICE_BYTES) {
    warnings.push(`${d.path} is ${humanSize(d.size)} — larger than 128 GiB; make sure this is the card/drive you mean`);
  }
  if (d.type === 'loop' && input.allowLoop === true) {
    warnings.push(`${d.path} is a loop device, accepted because of the test override`);
  }

  return {
    ok: refusals.length === 0,
    device: d.path,
    description: describeDevice(d),
    size: d.size,
    warnings,
    refusals,
    ...(suggestion === undefined ? {} : { suggestion }),
    type: d.type,
  };
}
