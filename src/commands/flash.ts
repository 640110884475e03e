import { isAbsolute, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { flashFailure, listFlashDrives, runFlash } from '../app/flash.js';
import { printJson } from '../app/io.js';
import { createProgress } from '../app/progress.js';
import { formatCandidates } from '../core/device-list.js';
import { humanSize } from '../core/devices.js';
import { errorJson } from '../core/error-json.js';
import { InputError } from '../core/errors.js';
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
  eject: boolean;
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
      .option('eject', {
        type: 'boolean',
        default: false,
        describe: 'power the card off once it is written and verified, so it can be pulled out (udisksctl power-off, else the kernel removes the USB/SD reader\'s disk); not after a failed read-back',
      })
      .option('build-dir', buildDirOption())
      .option('allow-loop', allowLoopOption())
      .check((a) => {
        if (a.node !== undefined && a.image !== undefined) throw new Error('give either a node name or --image PATH (not both)');
        if (a.device !== undefined && a.node === undefined && a.image === undefined) throw new Error('give either a node name or --image PATH (not both)');
        return true;
      })
      .example('$0 flash', 'list the SD cards and USB drives that could be written')
      .example('$0 flash pi-cluster-2 --device /dev/sdb', 'write build/images/pi-cluster-2.img to /dev/sdb after confirmation')
      .example('$0 flash pi-cluster-3 --device /dev/sdb --eject', 'write, verify, then power the card reader off: the card can be pulled out')
      .example('$0 flash --image my.img --device /dev/mmcblk0 --yes -o json', 'no prompt, machine-readable report'),
  handler: async (argv) => {
    const out = argv.ctx.io;
    const buildDir = isAbsolute(argv['build-dir']) ? argv['build-dir'] : resolve(out.cwd, argv['build-dir']);
    const allowLoop = argv['allow-loop'] || out.env.PI_IMAGE_ALLOW_LOOP === '1';
    const which = { ...(argv.node === undefined ? {} : { node: argv.node }), ...(argv.image === undefined ? {} : { image: resolve(out.cwd, argv.image) }) };
    if (argv.device === undefined) {
      const { drives, error } = await listFlashDrives({ ...which, buildDir, allowLoop });
      if (argv.output === 'json') printJson(out, { devices: drives, ...errorJson(error) });
      else if (drives.length > 0) out.out(`${formatCandidates(drives).join('\n')}\n`);
      out.err(`error: ${error.message}\n`);
      if (error.hint) out.err(`hint: ${error.hint}\n`);
      throw new InputError(error.message, { reported: true }); // printed above (with the JSON document): only the exit code
    }
    // a bar on a terminal, a line every 10 % otherwise; no final done(): the writer reports the
    // end of each phase itself, and a short read-back must not be shown as 100 %
    const progress = createProgress(out, { everyPercent: 10 });
    const phases = progress.phases((phase) => (phase === 'write' ? 'writing' : 'verifying'));
    let o;
    try {
      o = await runFlash({
        ...which,
        buildDir,
        device: argv.device,
        verify: argv.verify,
        allowLoop,
        yes: argv.yes,
        prompt: out.prompt,
        log: (line) => out.err(`${line}\n`),
        onProgress: phases.update,
        eject: argv.eject,
      });
    } finally {
      progress.stop();
    }
    const { result, verdict } = o;
    if (argv.output === 'json') {
      printJson(out, {
        device: result.device,
        description: verdict.description,
        image: result.image,
        buildRecord: o.record === undefined ? null : (o.recordPath ?? null),
        bytes: result.bytes,
        /** a mapped write (block map beside the image): the block map, bytes and ranges written; null when the whole image was written */
        mapped: result.mapped === undefined ? null : { bmap: o.bmap ?? null, ...result.mapped },
        imageSha256: result.imageSha256,
        writeSeconds: round(result.writeMs / 1000),
        writeMiBPerSecond: round(result.writeBytesPerSecond / MiB),
        verifySeconds: round(result.verifyMs / 1000),
        warnings: verdict.warnings,
        verify: result.verify,
        /** --eject: {ejected, method} or {ejected: false, note}; null without --eject */
        eject: o.eject ?? null,
      });
    } else {
      out.out(`flashed ${o.image} → ${verdict.description}\n`);
      if (result.mapped !== undefined) {
        out.out(`  block map ${o.bmap ?? '?'}: ${humanSize(result.mapped.bytes)} of ${humanSize(result.bytes)} mapped in ${result.mapped.ranges} ranges; the rest of the card was not written\n`);
      }
      out.out(`  wrote ${humanSize(result.mapped?.bytes ?? result.bytes)} (${result.mapped?.bytes ?? result.bytes} bytes) in ${(result.writeMs / 1000).toFixed(1)} s, ${(result.writeBytesPerSecond / MiB).toFixed(1)} MiB/s\n`);
      out.out(`  image sha256 ${result.imageSha256}\n`);
      const v = result.verify;
      if (v.result === 'skipped') out.out('  verify: skipped (--no-verify)\n');
      else {
        out.out(`  verify: ${v.result === 'ok' ? 'ok' : 'FAILED'} — read back with O_DIRECT in ${(result.verifyMs / 1000).toFixed(1)} s, ${result.mapped === undefined ? `sha256 ${v.readbackSha256 ?? '?'}` : `the sha256 of each of the ${result.mapped.ranges} mapped ranges`}\n`);
        if (v.firstBadOffset !== undefined) out.out(`    first difference at byte ${v.firstBadOffset}\n`);
        for (const f of v.files) out.out(`    ${f.ok ? 'ok  ' : 'FAIL'} ${f.target}:${f.path}${f.problem === undefined ? '' : ` — ${f.problem}`}\n`);
      }
      if (o.eject !== undefined) out.out(`  eject: ${o.eject.ejected ? `powered off (${o.eject.method ?? '?'}), the card can be removed` : `not done — ${o.eject.note ?? '?'}`}\n`);
    }
    const failed = flashFailure(o);
    if (failed) throw failed;
  },
};

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
