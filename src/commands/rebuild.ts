import { isAbsolute, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { displayPath, loadInventory } from '../app/inventory.js';
import { printJson } from '../app/io.js';
import type { RebuildTarget } from '../app/rebuild.js';
import { toolVersion } from '../app/version.js';
import { ChecksFailedError, InputError } from '../core/errors.js';
import { renderDrillText } from '../core/rebuild.js';
import { parseDuration } from '../core/verify/duration.js';
import type { GlobalArgs } from './context.js';
import { DEFAULT_EVIDENCE_DIR } from '../core/defaults.js';
import { currentOperator } from '../app/operator.js';
import { allowLoopOption, buildDirOption, kubeconfigOption, kubeContextOption } from './options.js';

interface RebuildArgs extends GlobalArgs {
  node: string;
  device?: string;
  netboot?: string;
  server?: string;
  budget: string;
  interval: string;
  'drain-timeout': string;
  kubeconfig?: string;
  context?: string;
  yes: boolean;
  'evidence-dir': string;
  'skip-drain': boolean;
  'reset-node-password': boolean;
  base?: string;
  'build-dir': string;
  operator?: string;
  'allow-loop': boolean;
}

const abs = (cwd: string, p: string): string => (isAbsolute(p) ? p : resolve(cwd, p));

export const rebuildCommand: CommandModule<GlobalArgs, RebuildArgs> = {
  command: 'rebuild <node>',
  describe: 'timed rebuild drill: cordon + drain, build, flash (or netboot export), wait until the node is back and passes its checks, uncordon; writes evidence',
  builder: (y) =>
    y
      .positional('node', { type: 'string', demandOption: true, describe: 'node hostname from the inventory' })
      .option('device', { type: 'string', describe: 'flash the rebuilt image to this card/drive (the whole disk, e.g. /dev/sdb)' })
      .option('netboot', { type: 'string', describe: 'instead: re-export the node into this netboot root (as `pi-image netboot --root DIR`)' })
      .option('server', { type: 'string', describe: 'with --netboot: the TFTP/NFS server address (default: the one of the earlier export)' })
      .option('budget', { type: 'string', default: '60m', describe: 'time budget of the whole drill (e.g. 45m, 1h)' })
      .option('interval', { type: 'string', default: '5s', describe: 'pause between checks while waiting for the node' })
      .option('drain-timeout', { type: 'string', default: '5m', describe: 'how long the drain may take before the drill stops' })
      .option('kubeconfig', kubeconfigOption())
      .option('context', kubeContextOption())
      .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'flash without asking to type the device name' })
      .option('evidence-dir', { type: 'string', default: DEFAULT_EVIDENCE_DIR, describe: 'evidence goes to DIR/<YYYY-MM-DD>-rebuild-<node>/' })
      .option('skip-drain', { type: 'boolean', default: false, describe: 'cordon but do not evict pods (e.g. when a drain cannot finish)' })
      .option('reset-node-password', {
        type: 'boolean',
        default: false,
        describe: 'delete the kube-system/<node>.node-password.k3s Secret and the Node before flashing (node not built by pi-image / other seed)',
      })
      .option('base', { type: 'string', describe: 'base image for the build: catalogue name or path to a raw .img' })
      .option('build-dir', buildDirOption('where the image and its build record go'))
      .option('operator', { type: 'string', describe: 'who runs the drill (default: $PI_IMAGE_OPERATOR, $SUDO_USER, $USER)' })
      .option('allow-loop', allowLoopOption())
      .example('$0 rebuild pi-cluster-3 --device /dev/sdb', 'the drill with a 60 min budget; evidence in docs/governance/reviews/')
      .example('$0 rebuild pi-cluster-3 --netboot /srv/netboot --budget 30m --yes -o json', 'a netbooted node, machine-readable'),
  handler: async (argv) => {
    // loaded here, not at start-up: the drill pulls in heavy libraries every other command would pay for
    const { defaultRebuildPorts, runRebuildDrill } = await import('../app/rebuild.js');
    const out = argv.ctx.io;
    if ((argv.device === undefined) === (argv.netboot === undefined)) {
      throw new InputError('give either --device /dev/X or --netboot DIR (one of them)', { hint: `e.g. \`pi-image rebuild ${argv.node} --device /dev/sdb\`` });
    }
    if (argv.server !== undefined && argv.netboot === undefined) throw new InputError('--server goes with --netboot DIR');
    const budgetMs = parseDuration(argv.budget, '--budget');
    const intervalMs = parseDuration(argv.interval, '--interval');
    const drainTimeoutMs = parseDuration(argv['drain-timeout'], '--drain-timeout');
    if (intervalMs <= 0) throw new InputError('--interval must be more than 0', { hint: 'e.g. --interval 5s' });
    if (drainTimeoutMs <= 0) throw new InputError('--drain-timeout must be more than 0', { hint: 'e.g. --drain-timeout 5m' });
    const inventory = await loadInventory(argv.inventory, { cwd: out.cwd });
    const ports = defaultRebuildPorts({
      ...(argv.kubeconfig === undefined ? {} : { kubeconfig: argv.kubeconfig }),
      ...(argv.context === undefined ? {} : { context: argv.context }),
      inventory,
      env: out.env,
      cwd: out.cwd,
      toolVersion: toolVersion(),
    });
    const target: RebuildTarget =
      argv.netboot !== undefined
        ? { mode: 'netboot', root: abs(out.cwd, argv.netboot), ...(argv.server === undefined ? {} : { server: argv.server }) }
        : { mode: 'device', device: argv.device ?? '', yes: argv.yes, allowLoop: argv['allow-loop'] || out.env.PI_IMAGE_ALLOW_LOOP === '1' };
    const operator = currentOperator({ flag: argv.operator, env: out.env });
    let lastFlash = '';
    let lastBuild = '';
    const { evidence, evidenceDir } = await runRebuildDrill(
      {
        inventory,
        node: argv.node,
        target,
        budgetMs,
        skipDrain: argv['skip-drain'],
        drainTimeoutMs,
        resetNodePassword: argv['reset-node-password'],
        intervalMs,
        ...(argv.base === undefined ? {} : { base: argv.base }),
        buildDir: abs(out.cwd, argv['build-dir']),
        evidenceRoot: abs(out.cwd, argv['evidence-dir']),
        operator,
        toolVersion: toolVersion(),
        cwd: out.cwd,
        log: (line) => out.err(`${line}\n`),
        ...(out.prompt ? { prompt: out.prompt } : {}),
        onBuildProgress: (phase, fraction) => {
          if (phase === lastBuild) return;
          lastBuild = phase;
          out.err(`build: ${phase} ${Math.round(fraction * 100)}%\n`);
        },
        onFlashProgress: (p) => {
          const pct = p.total === 0 ? 100 : Math.floor((p.bytes / p.total) * 4) * 25;
          if (`${p.phase}${pct}` === lastFlash) return;
          lastFlash = `${p.phase}${pct}`;
          out.err(`${p.phase === 'write' ? 'writing' : 'verifying'}: ${pct}%\n`);
        },
      },
      ports,
    );
    if (argv.output === 'json') printJson(out, { evidenceDir, ...evidence });
    else out.out(renderDrillText(evidence, displayPath(evidenceDir, out.cwd)));
    if (!evidence.ok) throw new ChecksFailedError(`the rebuild drill of ${argv.node} failed`, { reported: true });
  },
};
