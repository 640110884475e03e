/**
 * The `verify` use case: check the running cluster against the inventory, once or (--wait) until
 * every check passes or the one deadline (--timeout) runs out. The Kubernetes API, the manifests
 * and the clock come in as ports, so tests can pass fakes.
 *
 * Whatever happens once the kubeconfig is loaded, the result carries a full report: when the API
 * never answered (unreachable, silent, TLS trouble) the report says so in `error` — `-o json`
 * always has something to print.
 */
import { readdir, readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { loadInventory, displayPath } from './inventory.js';
import { IoError, InputError, PiImageError, InternalError } from '../core/errors.js';
import { type Baseline, type CheckResult, type ClusterSnapshot, runChecks, summarize } from '../core/verify/checks.js';
import { assertKnownNodes } from '../core/node-selection.js';
import { baselineFromManifests, type ManifestFile } from '../core/verify/baseline.js';
import { formatDuration } from '../core/verify/duration.js';
import { pollChecks } from '../core/verify/poll.js';
import { renderProgress } from '../core/verify/report.js';
import { describeNodeStatus, type NodeStatus } from '../core/status.js';
import type { StatusOptions } from './status.js';

export interface VerifyOptions {
  inventoryDir: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** --kubeconfig (default: $KUBECONFIG, then ~/.kube/config) */
  kubeconfig?: string;
  context?: string;
  /** check only these inventory nodes (skips cluster-wide checks) */
  nodes: readonly string[];
  wait: boolean;
  timeoutMs: number;
  intervalMs: number;
  /** manifests directory for the baseline checks (default: the one pi-image ships) */
  manifestsDir?: string;
}

/** A loaded kubeconfig: where it points, and one snapshot of the cluster under a deadline. */
export interface KubeSession {
  context: string;
  server: string;
  snapshot(timeoutMs: number, opts: { helmCharts: boolean }): Promise<ClusterSnapshot>;
}

export interface KubeApiPort {
  /** Resolves and loads the kubeconfig; InputError / EnvironmentError when it is missing or unusable. */
  open(o: { kubeconfig?: string; context?: string; env: NodeJS.ProcessEnv; cwd: string }): KubeSession;
  /** errors worth retrying under --wait (API not up yet, silent, timeouts) */
  isRetryable(error: unknown): boolean;
}

export interface VerifyPorts {
  clock: { now(): number; sleep(ms: number): Promise<void> };
  kube: KubeApiPort;
  /** the *.yaml files of a manifests directory; the default directory when `dir` is undefined */
  readManifests(dir: string | undefined, cwd: string): Promise<ManifestFile[]>;
  /** one progress line per round under --wait */
  progress?(line: string): void;
  /**
   * What the first boot of nodes that are not registered is doing (`pi-image status`, over SSH), so
   * a failing `registered` check says why. Absent: the check only points to `pi-image status`.
   */
  firstBoot?(nodes: readonly string[]): Promise<NodeStatus[]>;
}

export interface VerifyErrorReport {
  category: string;
  exitCode: number;
  message: string;
  hint?: string;
}

export interface VerifyReport {
  ok: boolean;
  cluster: string;
  context: string;
  server: string;
  summary: { pass: number; fail: number; warn: number };
  rounds: number;
  timedOut: boolean;
  elapsedMs: number;
  checks: CheckResult[];
  /** why verify gave up without a full answer from the API (the last round's error) */
  error?: VerifyErrorReport;
}

export interface VerifyResult {
  report: VerifyReport;
  /** the error behind report.error, for the exit code and the message on stderr */
  error?: PiImageError;
}

/** The *.yaml files of manifests/ (not alerting/: those are source copies embedded into CRs). */
export async function readManifestDir(dir: string, cwd: string): Promise<ManifestFile[]> {
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

/**
 * The real ports: the Kubernetes API through @kubernetes/client-node (loaded on demand), the system
 * clock; with `statusVia`, the first-boot status of unregistered nodes read over SSH as `pi-image
 * status` reads it.
 */
export async function verifyPorts(progress?: (line: string) => void, statusVia?: Omit<StatusOptions, 'nodes' | 'all'>): Promise<VerifyPorts> {
  const kube = await import('../adapters/kube.js');
  const { packagePath } = await import('../adapters/paths.js');
  const firstBoot = statusVia
    ? async (nodes: readonly string[]) => {
        const { runStatus, statusPorts } = await import('./status.js');
        return (await runStatus({ ...statusVia, nodes, all: false }, await statusPorts())).nodes;
      }
    : undefined;
  return {
    ...(firstBoot ? { firstBoot } : {}),
    clock: { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) },
    kube: {
      open: (o) => {
        const target = kube.loadKubeConfig(kube.resolveKubeconfigPath({ flag: o.kubeconfig, env: o.env, cwd: o.cwd }), o.context);
        return { context: target.context, server: target.server, snapshot: (ms, opts) => kube.takeSnapshot(target, ms, opts) };
      },
      isRetryable: kube.isRetryable,
    },
    readManifests: (dir, cwd) => readManifestDir(dir ?? packagePath('manifests'), cwd),
    ...(progress ? { progress } : {}),
  };
}

function asPiImageError(error: unknown): PiImageError {
  if (error instanceof PiImageError) return error;
  const e = error instanceof Error ? error : new Error(String(error));
  return new InternalError(e.message, { cause: e });
}

/**
 * A node that is not registered gets its first-boot status in the `registered` check's message:
 * "…; first boot: waiting-for-registration, attempt 7: <the join script's last error>".
 */
async function withFirstBoot(results: CheckResult[], ports: VerifyPorts): Promise<CheckResult[]> {
  const missing = results.filter((c) => c.name === 'registered' && c.status === 'fail' && c.node !== undefined).map((c) => c.node!);
  if (missing.length === 0 || !ports.firstBoot) return results;
  let statuses: NodeStatus[];
  try {
    statuses = await ports.firstBoot(missing);
  } catch (error) {
    const why = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return results.map((c) => (c.name === 'registered' && c.node !== undefined && missing.includes(c.node) ? { ...c, message: `${c.message}; first boot: status unavailable (${why})` } : c));
  }
  const byNode = new Map(statuses.map((s) => [s.node, s]));
  return results.map((c) => {
    const s = c.name === 'registered' && c.node !== undefined ? byNode.get(c.node) : undefined;
    return s ? { ...c, message: `${c.message}; first boot: ${describeNodeStatus(s)}` } : c;
  });
}

export async function runVerify(options: VerifyOptions, ports: VerifyPorts): Promise<VerifyResult> {
  if (options.timeoutMs <= 0) throw new InputError('--timeout must be more than 0', { hint: 'e.g. --timeout 10m' });
  if (options.intervalMs <= 0) throw new InputError('--interval must be more than 0', { hint: 'e.g. --interval 5s' });

  const inventory = await loadInventory(options.inventoryDir, { cwd: options.cwd });
  const only = [...options.nodes];
  assertKnownNodes(inventory, only);
  let baseline: Baseline | undefined;
  if (inventory.cluster.manifests && only.length === 0) {
    const dir = options.manifestsDir ? (isAbsolute(options.manifestsDir) ? options.manifestsDir : resolve(options.cwd, options.manifestsDir)) : undefined;
    baseline = baselineFromManifests(await ports.readManifests(dir, options.cwd));
  }

  const session = ports.kube.open({ kubeconfig: options.kubeconfig, context: options.context, env: options.env, cwd: options.cwd });
  const started = ports.clock.now();
  let rounds = 0;
  let last: CheckResult[] = [];
  const report = (results: CheckResult[], timedOut: boolean, error?: PiImageError): VerifyReport => {
    const summary = summarize(results);
    return {
      ok: summary.ok && error === undefined,
      cluster: inventory.cluster.name,
      context: session.context,
      server: session.server,
      summary: { pass: summary.pass, fail: summary.fail, warn: summary.warn },
      rounds,
      timedOut,
      elapsedMs: ports.clock.now() - started,
      checks: results,
      ...(error ? { error: { category: error.category, exitCode: error.exitCode, message: error.message, ...(error.hint ? { hint: error.hint } : {}) } } : {}),
    };
  };
  try {
    const outcome = await pollChecks(
      {
        now: ports.clock.now,
        sleep: ports.clock.sleep,
        snapshot: (ms) => {
          rounds += 1;
          return session.snapshot(ms, { helmCharts: baseline !== undefined });
        },
        isRetryable: ports.kube.isRetryable,
        evaluate: (s) => (last = runChecks(inventory, s, { nodes: only, ...(baseline ? { baseline } : {}) })),
        onRound: ({ results, error, remainingMs }) => {
          const left = formatDuration(remainingMs);
          if (results) ports.progress?.(renderProgress(results, left));
          else ports.progress?.(`waiting: ${error instanceof Error ? error.message : String(error)}; ${left} left\n`);
        },
      },
      { timeoutMs: options.timeoutMs, intervalMs: options.intervalMs, wait: options.wait },
    );
    rounds = outcome.rounds;
    return { report: report(await withFirstBoot(outcome.results, ports), outcome.timedOut) };
  } catch (thrown) {
    const error = asPiImageError(thrown);
    const timedOut = options.wait && ports.clock.now() - started >= options.timeoutMs;
    return { report: report(last, timedOut, error), error };
  }
}
