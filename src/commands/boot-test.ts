import { isAbsolute, join } from 'node:path';
import type { CommandModule } from 'yargs';
import { bootTest } from '../app/boottest.js';
import { loadInventory } from '../app/inventory.js';
import { printJson } from '../app/io.js';
import { DEFAULT_BOOT_TEST_TIMEOUT } from '../core/defaults.js';
import { ChecksFailedError, InputError } from '../core/errors.js';
import { buildDirOption, identityOption } from './options.js';
import { parseDuration } from '../core/verify/duration.js';
import { renderTable } from '../core/verify/report.js';
import type { GlobalArgs } from './context.js';

interface BootTestArgs extends GlobalArgs {
  node: string;
  image?: string;
  'build-dir': string;
  identity?: string;
  kernel?: string;
  initrd?: string;
  timeout: string;
  keep: boolean;
}

export const bootTestCommand: CommandModule<GlobalArgs, BootTestArgs> = {
  command: 'boot-test <node>',
  describe: 'boot a node image under qemu-system-aarch64 and check over SSH that it provisioned itself',
  builder: (y) =>
    y
      .positional('node', { type: 'string', demandOption: true, describe: 'hostname from the inventory' })
      .option('image', { type: 'string', describe: 'image to boot (default: <build-dir>/<node>.img)' })
      .option('build-dir', buildDirOption('where `pi-image build` wrote the images'))
      .option('identity', identityOption('private SSH key of an admin.sshKeys entry (default: $PI_IMAGE_SSH_KEY, ~/.ssh/id_ed25519)'))
      .option('kernel', { type: 'string', describe: "arm64 kernel to boot instead of the image's (Raspberry Pi OS's own kernel does not run on QEMU virt)" })
      .option('initrd', { type: 'string', describe: 'initrd for --kernel' })
      .option('timeout', { type: 'string', default: DEFAULT_BOOT_TEST_TIMEOUT, describe: 'deadline from power-on (emulation is slow: minutes)' })
      .option('keep', { type: 'boolean', default: false, describe: 'leave the VM running afterwards (prints its SSH port)' })
      .example('$0 boot-test pi-cluster-4 --identity ~/.ssh/pi-admin', 'boot the built image and check it'),
  handler: async (argv) => {
    const out = argv.ctx.io;
    const timeoutMs = parseDuration(argv.timeout, '--timeout');
    if (argv.initrd && !argv.kernel) throw new InputError('--initrd goes with --kernel', { hint: 'give both, or neither to boot the image\'s own kernel' });
    if (timeoutMs < 30_000) throw new InputError(`--timeout ${argv.timeout} is too short: an emulated boot takes minutes`, { hint: 'e.g. --timeout 20m' });
    const inventory = await loadInventory(argv.inventory, { cwd: out.cwd });
    const buildDir = isAbsolute(argv['build-dir']) ? argv['build-dir'] : join(out.cwd, argv['build-dir']);
    const result = await bootTest({
      inventory,
      node: argv.node,
      ...(argv.image ? { image: argv.image } : {}),
      buildDir,
      ...(argv.identity ? { identity: argv.identity } : {}),
      ...(argv.kernel ? { kernel: argv.kernel } : {}),
      ...(argv.initrd ? { initrd: argv.initrd } : {}),
      timeoutMs,
      keep: argv.keep,
      env: out.env,
      cwd: out.cwd,
      now: new Date(argv.ctx.clock.now()),
      onPhase: (phase, ms) => out.err(`${argv.node}: ${phase} (${(ms / 1000).toFixed(0)} s after power-on)\n`),
    });
    if (argv.output === 'json') {
      printJson(out, result);
    } else {
      out.out(renderTable(result.checks));
      const t = result.timings;
      const fmt = (ms?: number) => (ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(0)} s`);
      out.out(
        `${result.ok ? 'PASS' : 'FAIL'}: ${result.node} — SSH after ${fmt(t.sshMs)}, provisioned (cloud-init done) after ${fmt(t.provisionedMs)}, join settled after ${fmt(t.joinSettledMs)}, total ${fmt(t.totalMs)} (emulated arm64: slow)\n`,
      );
      if (result.stale) out.out(`note: ${result.image} was built from an older configuration of ${result.node}; rebuild to test the current one\n`);
      if (result.kept) out.out(`VM left running: ssh -p ${result.kept.sshPort} ${inventory.cluster.admin.user}@127.0.0.1 (kill ${result.kept.pid ?? '<pid>'} to stop)\n`);
    }
    if (!result.ok) {
      out.err(`console log: ${result.consoleLog}\n`);
      throw new ChecksFailedError(`the boot test of ${result.node} failed`, { reported: true });
    }
  },
};
