import type { CommandModule } from 'yargs';
import { printJson } from '../app/io.js';
import { runVerify, verifyPorts } from '../app/verify.js';
import { formatDuration, parseDuration } from '../core/verify/duration.js';
import { renderSummary, renderTable } from '../core/verify/report.js';
import type { GlobalArgs } from './context.js';
import { sshTarget, sshTargetOptions, type SshTargetArgs } from './options.js';
import { STATUS_FILE } from '../core/status.js';
import { homedir } from 'node:os';

/** per node, for reading the first-boot status of unregistered nodes (--status) */
const STATUS_TIMEOUT_MS = 20_000;
import { ChecksFailedError } from '../core/errors.js';

interface VerifyArgs extends GlobalArgs, SshTargetArgs {
  status: boolean;
  kubeconfig?: string;
  context?: string;
  node?: string[];
  wait: boolean;
  timeout: string;
  interval: string;
  manifests?: string;
}

export const verifyCommand: CommandModule<GlobalArgs, VerifyArgs> = {
  command: 'verify',
  describe: 'check the running cluster against the inventory (nodes registered, Ready, roles, k3s version, arch, labels, taints, baseline manifests)',
  builder: (y) =>
    y
      .option('kubeconfig', { type: 'string', describe: 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)' })
      .option('context', { type: 'string', describe: 'kubeconfig context (default: its current-context)' })
      .option('node', { type: 'string', array: true, describe: 'check only this inventory node (repeatable); skips cluster-wide checks' })
      .option('wait', { type: 'boolean', default: false, describe: 'poll until every check passes or --timeout runs out' })
      .option('timeout', { type: 'string', default: '10m', describe: 'deadline for the whole run (e.g. 90s, 10m)' })
      .option('interval', { type: 'string', default: '5s', describe: 'pause between polls with --wait' })
      .option('manifests', { type: 'string', describe: 'manifests directory the baseline checks expect (default: the one pi-image ships)' })
      .option('status', { type: 'boolean', default: false, describe: 'for nodes that are not registered, read what their first boot is doing over SSH (as `pi-image status`)' })
      .options(sshTargetOptions())
      .example('$0 verify', 'one round against ~/.kube/config')
      .example('$0 verify --wait --timeout 15m', 'wait for freshly flashed nodes to join')
      .example('$0 verify --node pi-cluster-3 -o json', 'one node, machine-readable')
      .example('$0 verify --wait --status', 'and say why a node has not registered (its first-boot status, over SSH)'),
  handler: async (argv) => {
    const out = argv.ctx.io;
    const timeoutMs = parseDuration(argv.timeout, '--timeout');
    const { report, error } = await runVerify(
      {
        inventoryDir: argv.inventory,
        cwd: out.cwd,
        env: out.env,
        ...(argv.kubeconfig ? { kubeconfig: argv.kubeconfig } : {}),
        ...(argv.context ? { context: argv.context } : {}),
        nodes: argv.node ?? [],
        wait: argv.wait,
        timeoutMs,
        intervalMs: parseDuration(argv.interval, '--interval'),
        ...(argv.manifests ? { manifestsDir: argv.manifests } : {}),
      },
      await verifyPorts(
        (line) => out.err(line),
        argv.status ? { inventoryDir: argv.inventory, cwd: out.cwd, env: out.env, home: out.env['HOME'] ?? homedir(), remotePath: STATUS_FILE, ...sshTarget(argv, out, STATUS_TIMEOUT_MS) } : undefined,
      ),
    );
    if (argv.output === 'json') {
      // one JSON document on stdout: the report, with the error inside when verify gave up
      printJson(out, report);
      // the error itself goes to stderr (src/cli.ts: the report already is the run's one document)
      if (error) throw error;
    } else if (!error) {
      out.out(`cluster ${report.cluster} via ${report.server} (context ${report.context})\n`);
      out.out(renderTable(report.checks));
      out.out(renderSummary({ ok: report.ok, ...report.summary }));
      if (report.timedOut) out.err(`gave up after ${formatDuration(timeoutMs)} (--timeout) with checks still failing\n`);
    }
    if (error) throw error;
    if (!report.ok) throw new ChecksFailedError('checks failed', { reported: true });
  },
};
