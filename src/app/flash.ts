/**
 * The safety steps before a card is erased, shared by `pi-image flash` and `pi-image rebuild`:
 * classify the target (refusing system disks, mounted, read-only or too-small devices …) and ask
 * the operator to type the device name unless they said --yes.
 */
import { inspectTarget } from '../adapters/blockdev.js';
import type { DeviceVerdict } from '../core/devices.js';
import { InputError } from '../core/errors.js';

export interface FlashTargetOptions {
  /** resolved block device path */
  device: string;
  imageSize: number;
  imagePath: string;
  allowLoop: boolean;
  /** skip the typed confirmation */
  yes: boolean;
  /** asks a question on the terminal; undefined without one */
  prompt: ((question: string) => Promise<string>) | undefined;
  /** where the target description and warnings go (stderr) */
  log: (line: string) => void;
}

/** Returns the verdict of a device that may be written; throws InputError when it may not. */
export async function prepareFlashTarget(opts: FlashTargetOptions): Promise<DeviceVerdict> {
  const { verdict } = await inspectTarget({ device: opts.device, imageSize: opts.imageSize, imagePath: opts.imagePath, allowLoop: opts.allowLoop });
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
