import { readdir, readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { loadInventory, displayPath } from '../app/inventory.js';
import { printJson } from '../app/io.js';
import { packagePath } from '../adapters/paths.js';
import { InputError, IoError } from '../core/errors.js';
import { type Baseline, runChecks, summarize, unknownNodeNames } from '../core/verify/checks.js';
import { baselineFromManifests, type ManifestFile } from '../core/verify/baseline.js';
import { formatDuration, parseDuration } from '../core/verify/duration.js';
import { pollChecks } from '../core/verify/poll.js';
import { renderProgress, renderSummary, renderTable } from '../core/verify/report.js';
import { type GlobalArgs, io, lastString, setExitCode } from './context.js';


interface VerifyArgs extends GlobalArgs {
  kubeconfig?: string;
  context?: string;
  node?: string[];
  wait: boolean;
  timeout: string;
  interval: string;
  manifests?: string;
}

/** Reads the *.yaml files of manifests/ (not alerting/: those are source copies embedded into CRs). */
async function readManifests(dir: string, cwd: string): Promise<ManifestFile[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  } catch (error) {
    throw new IoError(`cannot read the manifests directory ${dir} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: 'pass --manifests DIR, or set `manifests: false` in cluster.yaml to skip the baseline checks',
    });
  }
  return Promise.all(names.map(async (n) => ({ path: displayPath(join(dir, n), cwd), contents: await readFile(join(dir, n), 'utf8') })));
}

export const verifyCommand: CommandModule<GlobalArgs, VerifyArgs> = {
  command: 'verify',
  describe: 'check the running cluster against the inventory (nodes registered, Ready, roles, k3s version, arch, labels, taints, baseline manifests)',
  builder: (y) =>
    y
      .option('kubeconfig', { type: 'string', coerce: lastString, describe: 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)' })
      .option('context', { type: 'string', coerce: lastString, describe: 'kubeconfig context (default: its current-context)' })
      .option('node', { type: 'string', array: true, describe: 'check only this inventory node (repeatable); skips cluster-wide checks' })
      .option('wait', { type: 'boolean', default: false, describe: 'poll until every check passes or --timeout runs out' })
      .option('timeout', { type: 'string', coerce: lastString, default: '10m', describe: 'deadline for the whole run (e.g. 90s, 10m)' })
      .option('interval', { type: 'string', coerce: lastString, default: '5s', describe: 'pause between polls with --wait' })
      .option('manifests', { type: 'string', coerce: lastString, describe: 'manifests directory the baseline checks expect (default: the one pi-image ships)' })
      .example('$0 verify', 'one round against ~/.kube/config')
      .example('$0 verify --wait --timeout 15m', 'wait for freshly flashed nodes to join')
      .example('$0 verify --node pi-cluster-3 -o json', 'one node, machine-readable'),
  handler: async (argv) => {
    // loaded here, not at start-up: these pull in heavy libraries every other command would pay for
    const { isRetryable, loadKubeConfig, resolveKubeconfigPath, takeSnapshot } = await import('../adapters/kube.js');
    const out = io();
    const timeoutMs = parseDuration(argv.timeout, '--timeout');
    const intervalMs = parseDuration(argv.interval, '--interval');
    if (timeoutMs <= 0) throw new InputError('--timeout must be more than 0', { hint: 'e.g. --timeout 10m' });
    if (intervalMs <= 0) throw new InputError('--interval must be more than 0', { hint: 'e.g. --interval 5s' });

    const inventory = await loadInventory(argv.inventory, { cwd: out.cwd });
    const only = argv.node ?? [];
    const unknown = unknownNodeNames(inventory, only);
    if (unknown.length > 0) {
      throw new InputError(`--node ${unknown.join(', ')}: not in the inventory ${argv.inventory}`, {
        hint: `known nodes: ${inventory.nodes.map((n) => n.hostname).join(', ')}`,
      });
    }
    let baseline: Baseline | undefined;
    if (inventory.cluster.manifests && only.length === 0) {
      const dir = argv.manifests ? (isAbsolute(argv.manifests) ? argv.manifests : resolve(out.cwd, argv.manifests)) : packagePath('manifests');
      baseline = baselineFromManifests(await readManifests(dir, out.cwd));
    }

    const target = loadKubeConfig(resolveKubeconfigPath({ flag: argv.kubeconfig, env: out.env, cwd: out.cwd }), argv.context);
    const started = Date.now();
    const outcome = await pollChecks(
      {
        now: () => Date.now(),
        sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
        snapshot: (ms) => takeSnapshot(target, ms, { helmCharts: baseline !== undefined }),
        isRetryable,
        evaluate: (s) => runChecks(inventory, s, { nodes: only, ...(baseline ? { baseline } : {}) }),
        onRound: ({ results, error, remainingMs }) => {
          const left = formatDuration(remainingMs);
          if (results) out.err(renderProgress(results, left));
          else out.err(`waiting: ${error instanceof Error ? error.message : String(error)}; ${left} left\n`);
        },
      },
      { timeoutMs, intervalMs, wait: argv.wait },
    );
    const summary = summarize(outcome.results);
    if (argv.output === 'json') {
      printJson(out, {
        ok: summary.ok,
        cluster: inventory.cluster.name,
        context: target.context,
        server: target.server,
        summary: { pass: summary.pass, fail: summary.fail, warn: summary.warn },
        rounds: outcome.rounds,
        timedOut: outcome.timedOut,
        elapsedMs: Date.now() - started,
        checks: outcome.results,
      });
    } else {
      out.out(`cluster ${inventory.cluster.name} via ${target.server} (context ${target.context})\n`);
      out.out(renderTable(outcome.results));
      out.out(renderSummary(summary));
      if (outcome.timedOut) out.err(`gave up after ${formatDuration(timeoutMs)} (--timeout) with checks still failing\n`);
    }
    if (!summary.ok) setExitCode(1);
  },
};
