import { stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { printJson } from '../app/io.js';
import { devicesHoldingFile, listBlockDevices, rereadPartitionTable, resolveBlockDevice } from '../adapters/blockdev.js';
import { prepareFlashTarget } from '../app/flash.js';
import { readBuildRecord, recordPath as buildRecordPath, recordPathForImage } from '../adapters/build-record.js';
import { flashImage, type FlashResult } from '../adapters/flash.js';
import { createProgress } from '../adapters/progress.js';
import { flashCandidates, formatCandidates } from '../core/device-list.js';
import { humanSize } from '../core/devices.js';
import { errorJson } from '../core/error-json.js';
import { InputError, IoError } from '../core/errors.js';
import type { GlobalArgs } from './context.js';
import { allowLoopOption, buildDirOption } from './options.js';

interface FlashArgs extends GlobalArgs {
  node?: string;
  image?: string;
  device?: string;
  yes: boolean;
  verify: boolean;
  'build-dir': string;
  'allow-loop': boolean;
}

const MiB = 1024 * 1024;

export const flashCommand: CommandModule<GlobalArgs, FlashArgs> = {
  command: 'flash [node]',
  describe: 'write a node image to an SD card or USB drive, then read it back and verify it',
  builder: (y) =>
    y
      .positional('node', { type: 'string', describe: 'node hostname: flashes <build-dir>/<node>.img' })
      .option('image', { type: 'string', describe: 'flash this image file instead of a node image' })
      .option('device', { type: 'string', describe: 'target device, e.g. /dev/sdb or /dev/mmcblk0 (the whole disk); without it, flash lists the removable drives' })
      .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'do not ask to confirm by typing the device name' })
      .option('verify', { type: 'boolean', default: true, describe: 'read the card back and compare (--no-verify skips it)' })
      .option('build-dir', buildDirOption())
      .option('allow-loop', allowLoopOption())
      .check((a) => {
        if (a.node !== undefined && a.image !== undefined) throw new Error('give either a node name or --image PATH (not both)');
        if (a.device !== undefined && a.node === undefined && a.image === undefined) throw new Error('give either a node name or --image PATH (not both)');
        return true;
      })
      .example('$0 flash', 'list the SD cards and USB drives that could be written')
      .example('$0 flash pi-cluster-2 --device /dev/sdb', 'write build/images/pi-cluster-2.img to /dev/sdb after confirmation')
      .example('$0 flash --image my.img --device /dev/mmcblk0 --yes -o json', 'no prompt, machine-readable report'),
  handler: async (argv) => {
    const out = argv.ctx.io;
    if (argv.device === undefined) {
      await listDrives(argv);
      return;
    }
    const { image, recordPath } = imagePaths(argv, out.cwd);
    let size: number;
    try {
      const st = await stat(image);
      if (!st.isFile()) throw new InputError(`image ${image} is not a regular file`);
      size = st.size;
    } catch (err) {
      if (err instanceof InputError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new InputError(`image ${image} does not exist`, {
          hint: argv.node === undefined ? 'check the --image path' : `build it first: \`pi-image build ${argv.node}\``,
        });
      }
      throw new IoError(`cannot read image ${image}: ${(err as Error).message}`, { cause: err });
    }
    const record = await readBuildRecord(recordPath);

    const device = await resolveBlockDevice(argv.device);
    const allowLoop = argv['allow-loop'] || out.env.PI_IMAGE_ALLOW_LOOP === '1';
    const verdict = await prepareFlashTarget({
      device,
      imageSize: size,
      imagePath: image,
      allowLoop,
      yes: argv.yes,
      prompt: out.prompt,
      log: (line) => out.err(`${line}\n`),
    });

    if (record === undefined) out.err(`note: no build record at ${recordPath}; the seed files cannot be checked against it\n`);
    // a bar on a terminal, a line every 10 % otherwise; no final done(): flashImage reports the
    // end of each phase itself, and a short read-back must not be shown as 100 %
    const progress = createProgress(out, { everyPercent: 10 });
    const phases = progress.phases((phase) => (phase === 'write' ? 'writing' : 'verifying'));
    let result: FlashResult;
    try {
      result = await flashImage({
        image,
        device: verdict.device,
        verify: argv.verify,
        ...(record === undefined ? {} : { record }),
        onProgress: phases.update,
      });
    } finally {
      progress.stop();
    }
    await rereadPartitionTable(verdict.device);

    if (argv.output === 'json') {
      printJson(out, {
        device: result.device,
        description: verdict.description,
        image: result.image,
        buildRecord: record === undefined ? null : recordPath,
        bytes: result.bytes,
        imageSha256: result.imageSha256,
        writeSeconds: round(result.writeMs / 1000),
        writeMiBPerSecond: round(result.writeBytesPerSecond / MiB),
        verifySeconds: round(result.verifyMs / 1000),
        warnings: verdict.warnings,
        verify: result.verify,
      });
    } else {
      out.out(`flashed ${image} → ${verdict.description}\n`);
      out.out(`  wrote ${humanSize(result.bytes)} (${result.bytes} bytes) in ${(result.writeMs / 1000).toFixed(1)} s, ${(result.writeBytesPerSecond / MiB).toFixed(1)} MiB/s\n`);
      out.out(`  image sha256 ${result.imageSha256}\n`);
      const v = result.verify;
      if (v.result === 'skipped') out.out('  verify: skipped (--no-verify)\n');
      else {
        out.out(`  verify: ${v.result === 'ok' ? 'ok' : 'FAILED'} — read back with O_DIRECT in ${(result.verifyMs / 1000).toFixed(1)} s, sha256 ${v.readbackSha256 ?? '?'}\n`);
        if (v.firstBadOffset !== undefined) out.out(`    first difference at byte ${v.firstBadOffset}\n`);
        for (const f of v.files) out.out(`    ${f.ok ? 'ok  ' : 'FAIL'} ${f.target}:${f.path}${f.problem === undefined ? '' : ` — ${f.problem}`}\n`);
      }
    }
    if (result.verify.result === 'failed') {
      throw new IoError(`verification of ${verdict.device} failed: what was read back differs from ${record !== undefined && result.verify.files.some((f) => !f.ok) ? 'the image / build record' : 'the image'}`, {
        hint: 'the card or reader may be faulty or counterfeit (fake capacity); flash again, and if it fails again use another card',
      });
    }
  },
};

/** No --device: list the removable drives (as rpi-imager's picker), say how to pick one, exit 2. */
async function listDrives(argv: FlashArgs): Promise<void> {
  const out = argv.ctx.io;
  let imageSize = 0;
  let sourceDevices: string[] = [];
  const what = argv.node ?? (argv.image === undefined ? 'pi-cluster-2' : `--image ${argv.image}`);
  if (argv.node !== undefined || argv.image !== undefined) {
    const { image } = imagePaths(argv, out.cwd);
    const st = await stat(image).catch(() => undefined);
    if (st?.isFile()) {
      imageSize = st.size;
      sourceDevices = await devicesHoldingFile(image).catch(() => []);
    }
  }
  const allowLoop = argv['allow-loop'] || out.env.PI_IMAGE_ALLOW_LOOP === '1';
  const drives = flashCandidates(await listBlockDevices(), { imageSize, sourceDevices, allowLoop });
  const usable = drives.filter((d) => d.usable);
  const error = new InputError(
    drives.length === 0
      ? 'no --device given, and no removable drive is attached'
      : `no --device given: pick the drive to write (${usable.length} of ${drives.length} usable now)`,
    {
      hint:
        drives.length === 0
          ? 'insert the SD card (or USB drive) and run `pi-image flash` again to see it'
          : `e.g. \`pi-image flash ${what} --device ${(usable[0] ?? drives[0])!.device}\`; the whole disk is overwritten after you confirm`,
    },
  );
  if (argv.output === 'json') {
    printJson(out, { devices: drives, ...errorJson(error) });
  } else if (drives.length > 0) {
    out.out(`${formatCandidates(drives).join('\n')}\n`);
  }
  out.err(`error: ${error.message}\n`);
  if (error.hint) out.err(`hint: ${error.hint}\n`);
  throw new InputError(error.message, { reported: true }); // printed above (with the JSON document): only the exit code
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

function imagePaths(argv: FlashArgs, cwd: string): { image: string; recordPath: string } {
  if (argv.image !== undefined) {
    const image = resolve(cwd, argv.image);
    return { image, recordPath: recordPathForImage(image) };
  }
  const node = argv.node ?? '';
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(node)) {
    throw new InputError(`"${node}" is not a node hostname (lower-case letters, digits and "-")`);
  }
  const dir = isAbsolute(argv['build-dir']) ? argv['build-dir'] : resolve(cwd, argv['build-dir']);
  return { image: join(dir, `${node}.img`), recordPath: buildRecordPath(dir, node) };
}
