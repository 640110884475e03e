/**
 * Block devices as the host sees them: `lsblk --json` (classified by src/core/devices.ts), which
 * device a file lives on (/sys/dev/block/MAJ:MIN), and `blockdev` ioctls.
 */
import { readlink, realpath, stat, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { classifyDevice, parseLsblk, type BlockDevice, type DeviceVerdict } from '../core/devices.js';
import { EnvironmentError, InputError, IoError } from '../core/errors.js';
import { run } from './process.js';

export const LSBLK_COLUMNS = 'NAME,PATH,SIZE,TYPE,TRAN,RM,HOTPLUG,RO,MOUNTPOINTS,FSTYPE,LABEL,MODEL,VENDOR,SERIAL,PKNAME';

/** Every block device of the host as a tree (disks with their partitions and holders). */
export async function listBlockDevices(): Promise<BlockDevice[]> {
  const { stdout } = await run('lsblk', ['--json', '--bytes', '--output', LSBLK_COLUMNS], { what: 'listing block devices' });
  try {
    return parseLsblk(stdout);
  } catch (err) {
    throw new IoError(`cannot understand the output of lsblk: ${(err as Error).message}`, {
      hint: 'pi-image needs util-linux lsblk with --json (2.27 or newer)',
      cause: err,
    });
  }
}

/**
 * Resolves what the user typed (`/dev/sdb`, `sdb`, `/dev/disk/by-id/usb-…`) to the kernel's
 * device node and checks that it is a block device.
 */
export async function resolveBlockDevice(given: string): Promise<string> {
  const path = given.startsWith('/') ? given : `/dev/${given}`;
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new InputError(`--device ${given}: ${path} does not exist`, { hint: 'run `lsblk` to see the attached disks (e.g. /dev/sdb, /dev/mmcblk0)' });
    }
    throw new IoError(`--device ${given}: cannot resolve ${path}: ${(err as Error).message}`, { cause: err });
  }
  const st = await stat(real);
  if (!st.isBlockDevice()) {
    throw new InputError(`--device ${given}: ${real} is not a block device`, {
      hint: 'give the card reader or USB drive, e.g. --device /dev/sdb (run `lsblk` to list them)',
    });
  }
  return real;
}

/**
 * Kernel names of the block device a file is stored on (e.g. ['nvme0n1p2']), found through
 * /sys/dev/block/<major>:<minor>. Empty for files on filesystems without a backing block device
 * (tmpfs, NFS, btrfs subvolumes report anonymous device numbers).
 */
export async function devicesHoldingFile(file: string): Promise<string[]> {
  const dev = (await stat(file, { bigint: true })).dev;
  // glibc's gnu_dev_major/gnu_dev_minor
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  try {
    const link = await readlink(`/sys/dev/block/${major}:${minor}`);
    return [basename(link)];
  } catch {
    return [];
  }
}

/** Looks the device up in lsblk and classifies it for writing an image of `imageSize` bytes. */
export async function inspectTarget(opts: {
  device: string;
  imageSize: number;
  imagePath?: string;
  allowLoop: boolean;
}): Promise<{ verdict: DeviceVerdict; devices: BlockDevice[] }> {
  const devices = await listBlockDevices();
  const sourceDevices = opts.imagePath === undefined ? [] : await devicesHoldingFile(opts.imagePath);
  const verdict = classifyDevice({ devices, target: opts.device, imageSize: opts.imageSize, sourceDevices, allowLoop: opts.allowLoop });
  return { verdict, devices };
}

/** `blockdev --flushbufs`: write back and drop the kernel's buffer cache of the device (BLKFLSBUF). */
export async function flushBuffers(device: string): Promise<void> {
  await run('blockdev', ['--flushbufs', device], { what: `flushing the buffer cache of ${device}` });
}

/** `blockdev --rereadpt`: ask the kernel to re-read the partition table. Best effort (loop devices without -P refuse). */
export async function rereadPartitionTable(device: string): Promise<boolean> {
  try {
    await run('blockdev', ['--rereadpt', device], { what: `re-reading the partition table of ${device}` });
    return true;
  } catch {
    return false;
  }
}

/** What powerOffDrive runs and writes (replaced in tests). */
export interface PowerOffDeps {
  run(cmd: string, args: string[]): Promise<unknown>;
  writeFile(path: string, data: string): Promise<void>;
}

const powerOffDeps: PowerOffDeps = {
  run: (cmd, args) => run(cmd, args, { what: `powering off ${args.at(-1) ?? 'the drive'}` }),
  writeFile: (path, data) => writeFile(path, data),
};

/**
 * Ejects the drive holding `device` (a whole disk, written and synced): `udisksctl power-off -b`
 * when udisks is there (it flushes, removes the device and cuts the USB port's power, as a desktop's
 * "safely remove"), else the kernel's own removal, `echo 1 > /sys/block/<name>/device/delete`
 * (SCSI disks: USB card readers and sticks; the sd driver flushes the drive's cache first). A
 * built-in SD slot (mmcblk) has neither without udisks: IoError, the card can simply be pulled.
 */
export async function powerOffDrive(device: string, deps: PowerOffDeps = powerOffDeps): Promise<{ method: 'udisksctl power-off' | 'sysfs delete' }> {
  let udisks: string;
  try {
    await deps.run('udisksctl', ['power-off', '--no-user-interaction', '-b', device]);
    return { method: 'udisksctl power-off' };
  } catch (err) {
    udisks = err instanceof EnvironmentError ? 'udisksctl is not installed' : `udisksctl power-off failed (${((err as Error).message.split('\n')[0] ?? '').trim()})`;
  }
  const deleteFile = `/sys/block/${basename(device)}/device/delete`;
  try {
    await deps.writeFile(deleteFile, '1\n');
    return { method: 'sysfs delete' };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new IoError(
      `cannot eject ${device}: ${udisks}, and ${code === 'ENOENT' ? `${deleteFile} does not exist (not a SCSI/USB drive: a built-in SD slot has none)` : `writing ${deleteFile} failed: ${(err as Error).message}`}`,
      { hint: 'the card is written and synced: it can be removed now', cause: err },
    );
  }
}
