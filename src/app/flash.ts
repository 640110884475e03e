/**
 * `pi-image flash`: put a node image on an SD card or USB drive and prove it landed. One use case
 * for `pi-image flash` and the flash phase of `pi-image rebuild`:
 *   1. find the image (a node's `<build-dir>/<node>.img`, or --image) and its build record;
 *   2. check the target (refusing system disks, mounted, read-only or too-small devices …) and ask
 *      the operator to type the device name unless they said --yes (checkFlashTarget);
 *   3. write it with the head last, read it back with O_DIRECT and re-read the seed files
 *      (src/adapters/flash.ts), then ask the kernel to re-read the partition table;
 *   4. with --eject, power the card off (whether: src/core/eject.ts; how: the blockdev adapter).
 * Block devices, image files and the writer come in as ports, so tests can pass fakes.
 */
import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { devicesHoldingFile, inspectTarget, listBlockDevices, powerOffDrive, rereadPartitionTable, resolveBlockDevice } from '../adapters/blockdev.js';
import { readBuildRecord, recordPath as buildRecordPath, recordPathForImage } from '../adapters/build-record.js';
import { type FlashOptions as WriteOptions, type FlashProgress, type FlashResult, flashImage, imageCompression, uncompressedSize } from '../adapters/flash.js';
import { readAt } from '../adapters/partitions.js';
import { readBmap } from '../adapters/bmap.js';
import { type Bmap, bmapPathFor } from '../core/bmap.js';
import { noteOnInterrupt } from '../adapters/terminal.js';
import type { BuildRecord as FlashRecord } from '../core/build-record.js';
import { type FlashCandidate, flashCandidates } from '../core/device-list.js';
import type { BlockDevice, DeviceVerdict } from '../core/devices.js';
import { ejectDecision } from '../core/eject.js';
import { InputError, IoError, PiImageError } from '../core/errors.js';

export type { FlashProgress, FlashRecord, FlashResult };

/** The outside world of a flash. */
export interface FlashPorts {
  blockDevices: {
    /** what the user typed → the kernel's device node; InputError when it is no block device */
    resolve(given: string): Promise<string>;
    /** lsblk + classification for an image of imageSize bytes */
    inspect(o: { device: string; imageSize: number; imagePath?: string; allowLoop: boolean }): Promise<DeviceVerdict>;
    /** best effort: the kernel re-reads the partition table */
    rereadPartitionTable(device: string): Promise<boolean>;
    /** every block device of the host (lsblk) */
    list(): Promise<BlockDevice[]>;
    /** kernel names of the device a file is stored on */
    holding(file: string): Promise<string[]>;
    /** powers the drive off (flash --eject): how it was done; IoError when it cannot be */
    eject?(device: string): Promise<{ method: string }>;
  };
  images: {
    /** size of a regular file; undefined when it does not exist; InputError when it is no regular file */
    size(path: string): Promise<number | undefined>;
    /** the uncompressed size of a raw, .xz or .zst image (undefined when a compressed file does not record it) */
    uncompressedSize(path: string): Promise<number | undefined>;
    /** a build record; undefined when there is none */
    readRecord(path: string): Promise<FlashRecord | undefined>;
    /** a block map file: the map, why it cannot be used, or undefined when there is none */
    readBmap?(path: string): Promise<{ bmap: Bmap } | { problem: string } | undefined>;
  };
  /** writes and verifies (src/adapters/flash.ts flashImage) */
  write(o: WriteOptions): Promise<FlashResult>;
}

export function defaultFlashPorts(): FlashPorts {
  return {
    blockDevices: {
      resolve: resolveBlockDevice,
      inspect: async (o) => (await inspectTarget(o)).verdict,
      rereadPartitionTable,
      list: listBlockDevices,
      holding: devicesHoldingFile,
      eject: powerOffDrive,
    },
    images: {
      size: async (path) => {
        try {
          const st = await stat(path);
          if (!st.isFile()) throw new InputError(`image ${path} is not a regular file`);
          return st.size;
        } catch (err) {
          if (err instanceof InputError) throw err;
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
          throw new IoError(`cannot read image ${path}: ${(err as Error).message}`, { cause: err });
        }
      },
      uncompressedSize: async (path) => uncompressedSize(path, imageCompression(await readAt(path, 0, 8))),
      readRecord: readBuildRecord,
      readBmap,
    },
    write: flashImage,
  };
}

export interface FlashTargetOptions {
  /** resolved block device path */
  device: string;
  imageSize: number;
  imagePath?: string;
  allowLoop: boolean;
  /** skip the typed confirmation */
  yes: boolean;
  /** asks a question on the terminal; undefined without one */
  prompt: ((question: string) => Promise<string>) | undefined;
  /** where the target description and warnings go (stderr) */
  log: (line: string) => void;
}

/** Returns the verdict of a device that may be written; throws InputError when it may not (or the operator did not confirm). */
export async function checkFlashTarget(opts: FlashTargetOptions, ports: Pick<FlashPorts, 'blockDevices'> = defaultFlashPorts()): Promise<DeviceVerdict> {
  const verdict = await ports.blockDevices.inspect({
    device: opts.device,
    imageSize: opts.imageSize,
    ...(opts.imagePath === undefined ? {} : { imagePath: opts.imagePath }),
    allowLoop: opts.allowLoop,
  });
  opts.log(`target ${verdict.description}`);
  for (const w of verdict.warnings) opts.log(`warning: ${w}`);
  if (!verdict.ok) {
    throw new InputError(`refusing to write ${verdict.device}`, {
      details: verdict.refusals,
      hint: verdict.suggestion !== undefined ? `use --device ${verdict.suggestion}` : 'pick another device (`lsblk -o NAME,SIZE,TRAN,RM,MODEL,MOUNTPOINTS` lists them)',
    });
  }
  if (!opts.yes) {
    const name = verdict.device.replace(/^\/dev\//, '');
    if (opts.prompt === undefined) {
      throw new InputError(`not flashing ${verdict.device}: confirmation needs a terminal`, {
        hint: `check the device with \`lsblk ${verdict.device}\`, then pass --yes to flash without asking`,
      });
    }
    const answer = (await opts.prompt(`All data on ${verdict.description} will be erased.\nType the device name (${name}) to continue: `)).trim();
    if (answer !== name && answer !== verdict.device) {
      throw new InputError(`not flashing ${verdict.device}: confirmation "${answer}" does not match "${name}"`);
    }
  }
  return verdict;
}

export interface FlashOptions {
  /** flash this node's image from buildDir … */
  node?: string;
  /** … or this image file (absolute) */
  image?: string;
  /** absolute: where node images and build records are */
  buildDir: string;
  /** the build record to check against, when the caller has it (rebuild); else read beside the image */
  record?: FlashRecord;
  /** the device as typed */
  device: string;
  verify: boolean;
  allowLoop: boolean;
  yes: boolean;
  prompt: ((question: string) => Promise<string>) | undefined;
  log: (line: string) => void;
  onProgress?: (p: FlashProgress) => void;
  /** power the card off once written (and verified, unless --no-verify), as rpi-imager ejects it */
  eject?: boolean;
}

/** What `--eject` did: powered off (how), or why not. */
export interface EjectOutcome {
  ejected: boolean;
  method?: string;
  note?: string;
}

export interface FlashOutcome {
  image: string;
  /** where the build record was looked for; undefined when the caller passed it */
  recordPath?: string;
  record?: FlashRecord;
  /** the block map used for a mapped write */
  bmap?: string;
  verdict: DeviceVerdict;
  result: FlashResult;
  /** --eject: what was done; undefined without it */
  eject?: EjectOutcome;
}

const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** the forms `pi-image build` writes: raw, or compressed with --compress zstd / xz */
const IMAGE_SUFFIXES = ['.img', '.img.zst', '.img.xz'] as const;

/**
 * The image a flash writes, its build record, and its size: the file --image names, or the node's
 * image in the build directory — the one its build record describes, else the only one of
 * `<node>.img`, `<node>.img.zst`, `<node>.img.xz` there is.
 */
async function findImage(o: Pick<FlashOptions, 'node' | 'image' | 'buildDir' | 'record'>, ports: FlashPorts): Promise<{ image: string; recordPath: string; record?: FlashRecord; fileSize: number }> {
  if (o.image !== undefined) {
    const fileSize = await ports.images.size(o.image);
    if (fileSize === undefined) throw new InputError(`image ${o.image} does not exist`, { hint: 'check the --image path' });
    const recordPath = recordPathForImage(o.image);
    const record = o.record ?? (await ports.images.readRecord(recordPath));
    // a record describing another file that is there too: this one is left over from an earlier build
    const current = record === undefined ? undefined : join(dirname(o.image), basename(record.image.path));
    if (current !== undefined && current !== o.image && (await ports.images.size(current)) !== undefined) {
      throw new InputError(`${o.image} is not the image its build record ${recordPath} describes (${basename(current)}, which is beside it): it is left over from an earlier build`, {
        hint: `flash ${current}, or build the node again`,
      });
    }
    return { image: o.image, recordPath, ...(record === undefined ? {} : { record }), fileSize };
  }
  const node = o.node ?? '';
  if (!HOSTNAME.test(node)) throw new InputError(`"${node}" is not a node hostname (lower-case letters, digits and "-")`);
  const recordPath = buildRecordPath(o.buildDir, node);
  const record = o.record ?? (await ports.images.readRecord(recordPath));
  const candidates: { image: string; size: number }[] = [];
  for (const suffix of IMAGE_SUFFIXES) {
    const image = join(o.buildDir, `${node}${suffix}`);
    const size = await ports.images.size(image);
    if (size !== undefined) candidates.push({ image, size });
  }
  const described = record === undefined ? undefined : candidates.find((c) => basename(c.image) === basename(record.image.path));
  const chosen = described ?? (record === undefined && candidates.length === 1 ? candidates[0] : undefined);
  if (chosen === undefined) {
    if (candidates.length === 0) {
      throw new InputError(`image ${join(o.buildDir, `${node}.img`)} does not exist (nor .img.zst or .img.xz)`, { hint: `build it first: \`pi-image build ${node}\`` });
    }
    throw new InputError(
      record === undefined
        ? `${node} has several images in ${o.buildDir} (${candidates.map((c) => basename(c.image)).join(', ')}) and no build record saying which one is current`
        : `the build record ${recordPath} describes ${basename(record.image.path)}, which is not in ${o.buildDir} (found ${candidates.map((c) => basename(c.image)).join(', ')})`,
      { hint: `build it again (\`pi-image build ${node}\`), or pass --image FILE` },
    );
  }
  return { image: chosen.image, recordPath, ...(record === undefined ? {} : { record }), fileSize: chosen.size };
}

/**
 * Writes the image and verifies it. Returns the outcome also when the read-back differs (the
 * caller reports it, then throws flashFailure(outcome)); throws for everything that stops it before.
 */
export async function runFlash(opts: FlashOptions, ports: FlashPorts = defaultFlashPorts()): Promise<FlashOutcome> {
  const { image, recordPath, record, fileSize } = await findImage(opts, ports);
  // a compressed image needs the room of what it decompresses to
  const imageSize = (await ports.images.uncompressedSize(image)) ?? fileSize;
  const device = await ports.blockDevices.resolve(opts.device);
  const verdict = await checkFlashTarget({ device, imageSize, imagePath: image, allowLoop: opts.allowLoop, yes: opts.yes, prompt: opts.prompt, log: opts.log }, ports);
  if (record === undefined) opts.log(`note: no build record at ${recordPath}; the seed files cannot be checked against it`);
  const mapped = await usableBmap(image, imageSize, record, ports, opts.log);
  // stopped half way (Ctrl-C, SIGTERM), the card holds no bootable image, or one never read back
  let written = false;
  const forget = noteOnInterrupt(() =>
    written
      ? `error: ${verdict.device} was written but its read-back check was stopped: the card is not verified; flash it again`
      : `error: the card in ${verdict.device} is incomplete (the write was stopped) and will not boot: flash it again`,
  );
  let result: FlashResult;
  try {
    result = await ports.write({
      image,
      device: verdict.device,
      verify: opts.verify,
      ...(record === undefined ? {} : { record }),
      ...(mapped === undefined ? {} : { bmap: mapped.bmap }),
      afterWrite: async () => {
        written = true;
      },
      ...(opts.onProgress === undefined ? {} : { onProgress: opts.onProgress }),
    });
  } finally {
    forget();
  }
  await ports.blockDevices.rereadPartitionTable(verdict.device);
  const eject = opts.eject === true ? await ejectCard(verdict, result, ports, opts.log) : undefined;
  return {
    image,
    ...(opts.record === undefined ? { recordPath } : {}),
    ...(record === undefined ? {} : { record }),
    ...(mapped === undefined ? {} : { bmap: mapped.path }),
    verdict,
    result,
    ...(eject === undefined ? {} : { eject }),
  };
}

/**
 * --eject once the card is written: the decision is core/eject.ts's (not after a failed read-back,
 * nothing for a loop device), the power-off the adapter's. A drive that cannot be powered off is a
 * warning, not a failure: the card is written, synced and (unless --no-verify) verified.
 */
async function ejectCard(verdict: DeviceVerdict, result: FlashResult, ports: FlashPorts, log: (line: string) => void): Promise<EjectOutcome> {
  const decision = ejectDecision({ device: verdict.device, deviceType: verdict.type, verify: result.verify.result });
  if (!decision.eject) {
    log(`note: ${decision.note}`);
    return { ejected: false, note: decision.note };
  }
  const eject = ports.blockDevices.eject;
  if (eject === undefined) return { ejected: false, note: 'ejecting is not available here' };
  try {
    const { method } = await eject(verdict.device);
    log(`ejected ${verdict.device} (${method}): the card can be removed`);
    return { ejected: true, method };
  } catch (err) {
    const e = err as Error;
    log(`warning: ${e.message}`);
    if (err instanceof PiImageError && err.hint !== undefined) log(`hint: ${err.hint}`);
    return { ejected: false, note: e.message };
  }
}

/**
 * The block map a flash may trust: the one the build record names, beside the image, intact (its
 * BmapFileChecksum), the record's (same checksum) and of the image's size. Anything else is
 * ignored with a note, and the whole image is written as before.
 */
async function usableBmap(image: string, imageSize: number, record: FlashRecord | undefined, ports: FlashPorts, log: (line: string) => void): Promise<{ bmap: Bmap; path: string } | undefined> {
  const read = ports.images.readBmap;
  if (read === undefined) return undefined;
  const named = record?.image.bmap;
  const path = named === undefined ? bmapPathFor(image) : join(dirname(image), basename(named.path));
  const found = await read(path);
  if (found === undefined) {
    if (named !== undefined) log(`note: the block map ${path} named by the build record is missing; writing the whole image`);
    return undefined;
  }
  const ignore = (why: string) => {
    log(`note: ignoring the block map ${path}: ${why}; writing the whole image`);
    return undefined;
  };
  if ('problem' in found) return ignore(found.problem);
  if (named === undefined) return ignore(record === undefined ? 'there is no build record to check it against' : 'the build record does not name it (an earlier build left it)');
  if (found.bmap.checksum !== named.sha256) return ignore(`its checksum ${found.bmap.checksum.slice(0, 12)}… is not the build record's ${named.sha256.slice(0, 12)}…`);
  if (found.bmap.imageSize !== imageSize) return ignore(`it maps ${found.bmap.imageSize} bytes, the image has ${imageSize}`);
  return { bmap: found.bmap, path };
}

/** The error for a flash whose read-back differs; undefined when it was verified or not checked. */
export function flashFailure(o: FlashOutcome): IoError | undefined {
  const v = o.result.verify;
  if (v.result !== 'failed') return undefined;
  const against = o.record !== undefined && v.files.some((f) => !f.ok) ? 'the image / build record' : 'the image';
  return new IoError(`verification of ${o.verdict.device} failed: what was read back differs from ${against}${v.firstBadOffset === undefined ? '' : ` (first difference at byte ${v.firstBadOffset})`}`, {
    hint: 'the card or reader may be faulty or counterfeit (fake capacity); flash again, and if it fails again use another card',
  });
}

/**
 * No --device: the removable drives that could take the image, with the write's own verdicts (as
 * rpi-imager's picker), and the error that says how to pick one (exit 2).
 */
export async function listFlashDrives(
  o: Pick<FlashOptions, 'node' | 'image' | 'buildDir' | 'allowLoop'>,
  ports: FlashPorts = defaultFlashPorts(),
): Promise<{ drives: FlashCandidate[]; error: InputError }> {
  let imageSize = 0;
  let sourceDevices: string[] = [];
  if (o.node !== undefined || o.image !== undefined) {
    const found = await findImage(o, ports).catch(() => undefined);
    if (found !== undefined) {
      imageSize = (await ports.images.uncompressedSize(found.image).catch(() => undefined)) ?? found.fileSize;
      sourceDevices = await ports.blockDevices.holding(found.image).catch(() => []);
    }
  }
  const drives = flashCandidates(await ports.blockDevices.list(), { imageSize, sourceDevices, allowLoop: o.allowLoop });
  const usable = drives.filter((d) => d.usable);
  const what = o.node ?? (o.image === undefined ? 'pi-cluster-2' : `--image ${o.image}`);
  const error = new InputError(
    drives.length === 0 ? 'no --device given, and no removable drive is attached' : `no --device given: pick the drive to write (${usable.length} of ${drives.length} usable now)`,
    {
      hint:
        drives.length === 0
          ? 'insert the SD card (or USB drive) and run `pi-image flash` again to see it'
          : `e.g. \`pi-image flash ${what} --device ${(usable[0] ?? drives[0])!.device}\`; the whole disk is overwritten after you confirm`,
    },
  );
  return { drives, error };
}
