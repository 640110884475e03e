/**
 * `pi-image rebuild <node>`: the timed rebuild drill. Takes the node out (cordon + drain through
 * the Kubernetes API), rebuilds its image (buildImages), puts it on the card (the flash adapters,
 * as `pi-image flash`) or re-exports it for netboot (as `pi-image netboot`), waits until the node
 * is back and passes its verify checks within what is left of the budget, uncordons it, and writes
 * the evidence (docs/governance/reviews/<date>-rebuild-<node>/evidence.json + README.md) — also
 * when the drill fails or stops half-way. The clock, sleeping, logging and the confirmation prompt
 * come in as RebuildDeps; the decisions and the evidence text are pure (src/core/rebuild.ts).
 *
 * The cordon: a reflashed k3s node re-registers under the same Node object (the kubelet keeps an
 * existing object's spec), so the cordon survives the reflash; the drill lifts it once every check
 * passes — only if the drill set it. A node cordoned before the drill stays cordoned; a node that
 * does not come back stays cordoned. After --reset-node-password the Node object is deleted and the
 * node registers afresh, schedulable.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { V1Node } from '@kubernetes/client-node';
import { rereadPartitionTable, resolveBlockDevice } from '../adapters/blockdev.js';
import { prepareFlashTarget } from './flash.js';
import { type FlashProgress, flashImage } from '../adapters/flash.js';
import { isRetryable, KubeApiError, type KubeTarget, takeSnapshot } from '../adapters/kube.js';
import { deleteNode, deleteSecret, evictPod, listPodsOnNode, readNode, secretExists, setUnschedulable } from '../adapters/kube-drain.js';
import { exportNode, writeSharedFiles } from '../adapters/netboot.js';
import { ChecksFailedError, ClusterError, InputError, IoError, PiImageError } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { findNode } from '../core/node-selection.js';
import type { Inventory } from '../core/model.js';
import { planNetboot } from '../core/netboot.js';
import {
  budgetAccount,
  type DrainEvidence,
  drillVerdict,
  EVIDENCE_SCHEMA,
  findClusterNode,
  type FlashEvidence,
  type NetbootEvidence,
  NODE_PASSWORD_NAMESPACE,
  type NodeIdentity,
  nodeIdentity,
  nodePasswordSecretName,
  notRejoinedHints,
  type PhaseName,
  type PhaseRecord,
  type PhaseStatus,
  phaseRecord,
  planDrain,
  podId,
  podSummary,
  type RebuildEvidence,
  rejoinChecks,
  renderEvidenceJson,
  renderEvidenceMarkdown,
  type SecretPresence,
} from '../core/rebuild.js';
import { type CheckResult, summarize } from '../core/verify/checks.js';
import { formatDuration } from '../core/verify/duration.js';
import { pollChecks } from '../core/verify/poll.js';
import { recordPath } from '../adapters/build-record.js';
import { writeEvidenceFolder } from '../adapters/evidence.js';
import type { BuildRecord } from '../core/build-record.js';
import { buildImages } from './build.js';
import { displayPath } from './inventory.js';

export type RebuildTarget = { mode: 'device'; device: string; yes: boolean; allowLoop: boolean } | { mode: 'netboot'; root: string; server?: string };

export interface RebuildOptions {
  inventory: Inventory;
  node: string;
  target: RebuildTarget;
  budgetMs: number;
  kube: KubeTarget;
  skipDrain: boolean;
  drainTimeoutMs: number;
  resetNodePassword: boolean;
  /** pause between rejoin polls */
  intervalMs: number;
  /** --base for the build (default: the cluster's image from the cache) */
  base?: string;
  /** absolute: where images and build records go */
  buildDir: string;
  /** absolute: docs/governance/reviews */
  evidenceRoot: string;
  operator: string;
  toolVersion: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface RebuildDeps extends Clock {
  /** one progress line (stderr) */
  log(line: string): void;
  /** the flash confirmation; undefined without a terminal */
  prompt?: (question: string) => Promise<string>;
  onBuildProgress?: (phase: string, fraction: number) => void;
  onFlashProgress?: (p: FlashProgress) => void;
}

export interface RebuildOutcome {
  evidence: RebuildEvidence;
  /** absolute path of the evidence folder */
  evidenceDir: string;
}

/** Time for one API request outside the rejoin loop. */
const API_TIMEOUT_MS = 15_000;

/** The NFS server a node booted from before: `nfsroot=<server>:` in its exported cmdline.txt. */
async function previousNetbootServer(root: string, serial: string): Promise<string | undefined> {
  try {
    return /\bnfsroot=([0-9.]+):/.exec(await readFile(join(root, 'tftp', serial, 'cmdline.txt'), 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** Checks that need no cluster and change nothing; throws InputError before the drill starts. */
async function validate(opts: RebuildOptions): Promise<{ netbootServer?: string; device?: string }> {
  const inv = opts.inventory;
  const node = findNode(inv, opts.node);
  if (node.clusterInit) {
    const others = inv.nodes.filter((n) => n.role === 'server' && n !== node).length;
    throw new InputError(`${node.hostname} is the cluster-init server: a reflashed one starts a NEW, empty cluster (new datastore, new CA) instead of rejoining`, {
      hint:
        others === 0
          ? 'it is the only server: recover it from an etcd snapshot (`k3s etcd-snapshot save`, then `k3s server --cluster-reset --cluster-reset-restore-path=…`), see docs/runbooks/rebuild-node.md'
          : 'move `clusterInit` to another server in the inventory first (the rebuilt one then joins through k3s.serverUrl), see docs/runbooks/rebuild-node.md',
    });
  }
  if (opts.budgetMs <= 0) throw new InputError('--budget must be more than 0', { hint: 'e.g. --budget 60m' });
  if (opts.target.mode === 'device') return { device: await resolveBlockDevice(opts.target.device) };
  // the same plan `pi-image netboot` makes (throws for a node without serial / dataDisk)
  const probe = planNetboot(inv, { root: opts.target.root, server: opts.target.server ?? '0.0.0.0', only: [opts.node] });
  const planned = probe.nodes[0];
  if (!planned) {
    throw new InputError(`${opts.node} cannot be netbooted: ${probe.skipped.find((s) => s.node === opts.node)?.reason ?? 'not exported'}`, {
      hint: `give ${node.source} \`boot: netboot\`, a \`serial:\` and a \`dataDisk:\` (docs/runbooks/netboot.md), or rebuild onto a card with --device`,
    });
  }
  const server = opts.target.server ?? (await previousNetbootServer(probe.root, planned.serial));
  if (server === undefined) {
    throw new InputError(`--server is needed: ${join(probe.root, 'tftp', planned.serial, 'cmdline.txt')} (an earlier export) does not say which NFS server ${opts.node} boots from`, {
      hint: 'pass --server <IPv4 address the Pis reach this host on>, as for `pi-image netboot`',
    });
  }
  return { netbootServer: server };
}

class DrillAbort extends Error {
  constructor(
    readonly phase: PhaseName,
    readonly error: unknown,
  ) {
    super(error instanceof Error ? error.message : String(error));
  }
}

export async function runRebuildDrill(opts: RebuildOptions, deps: RebuildDeps): Promise<RebuildOutcome> {
  const checked = await validate(opts);
  const inv = opts.inventory;
  const hostname = opts.node;
  const role = inv.nodes.find((n) => n.hostname === hostname)?.role ?? 'agent';
  const { kube } = opts;
  const t0 = deps.now();
  const phases: PhaseRecord[] = [];
  const notes: string[] = [];
  const log = (s: string): void => deps.log(s);
  /** time since the start, for progress lines: `12.3s` */
  const at = (ms: number): string => `${((ms - t0) / 1000).toFixed(1)}s`;

  /** Runs one timed phase; an exception ends the drill (recorded as the phase's failure). */
  const phase = async <T>(name: PhaseName, fn: () => Promise<{ status: PhaseStatus; summary: string; details?: string[]; value: T }>): Promise<T> => {
    const start = deps.now();
    log(`[${at(start)}] ${name} …`);
    try {
      const r = await fn();
      phases.push(phaseRecord(name, start, deps.now(), r.status, r.summary, r.details));
      log(`[${at(deps.now())}] ${name}: ${r.status} — ${r.summary}`);
      return r.value;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const details = error instanceof PiImageError ? [...error.details, ...(error.hint ? [`hint: ${error.hint}`] : [])] : [];
      phases.push(phaseRecord(name, start, deps.now(), 'failed', message, details));
      throw new DrillAbort(name, error);
    }
  };
  const skip = (name: PhaseName, summary: string): void => {
    const now = deps.now();
    phases.push(phaseRecord(name, now, now, 'skipped', summary));
    log(`[${at(now)}] ${name}: skipped — ${summary}`);
  };

  let reachable = true;
  let before: NodeIdentity | undefined;
  let cordonedByDrill = false;
  let drain: DrainEvidence | null = null;
  let reset: RebuildEvidence['nodePasswordReset'] = null;
  let record: BuildRecord | undefined;
  let flash: FlashEvidence | null = null;
  let netboot: NetbootEvidence | null = null;
  let verify: RebuildEvidence['verify'] = null;
  let rejoined = false;
  let cordonAtEnd = 'not cordoned by the drill';
  let deviceDescription: string | undefined;
  let aborted: { phase: PhaseName; message: string } | undefined;
  let failure: unknown;

  try {
    // ── preflight: is the cluster there, is the node registered? ──
    await phase('preflight', async () => {
      try {
        const node = await readNode(kube, hostname, API_TIMEOUT_MS);
        if (node) before = nodeIdentity(node);
      } catch (error) {
        if (!(error instanceof KubeApiError) || !isRetryable(error)) throw error;
        reachable = false;
        notes.push(`the cluster API was unreachable at the start (${error.message}): the node was not cordoned or drained; the drill went on without it`);
        notes.push('no bootID was recorded at the start: the rejoin could not tell the old boot from the new one (a registered, Ready node counted as back)');
        return { status: 'ok', summary: `cluster API unreachable (${error.message}): going on without cordon and drain`, value: undefined };
      }
      return {
        status: 'ok',
        summary: before ? `node ${hostname} registered (${before.unschedulable ? 'already cordoned' : 'schedulable'})` : `node ${hostname} is not registered: nothing to cordon or drain`,
        value: undefined,
      };
    });

    // ── cordon ──
    if (!reachable) skip('cordon', 'cluster API unreachable at the start');
    else if (!before) skip('cordon', 'node not registered');
    else if (before.unschedulable) {
      cordonAtEnd = 'left cordoned: it was cordoned before the drill';
      skip('cordon', 'already cordoned before the drill (stays cordoned afterwards)');
    } else {
      await phase('cordon', async () => {
        await setUnschedulable(kube, hostname, true, API_TIMEOUT_MS);
        cordonedByDrill = true;
        cordonAtEnd = 'cordoned by the drill, not lifted';
        return { status: 'ok', summary: `cordoned ${hostname} (spec.unschedulable=true)`, value: undefined };
      });
    }

    // ── drain ──
    if (opts.skipDrain) {
      skip('drain', '--skip-drain: pods were not evicted (they stop when the node goes down)');
      notes.push('--skip-drain: the node was not drained');
    } else if (!reachable || !before) skip('drain', reachable ? 'node not registered' : 'cluster API unreachable at the start');
    else {
      await phase('drain', async () => {
        const r = await drainNode(kube, hostname, opts.drainTimeoutMs, deps, before?.unschedulable === true);
        drain = r.value;
        const left = r.value.remaining;
        if (left.length > 0) {
          throw new ChecksFailedError(`the drain of ${hostname} did not finish within ${formatDuration(opts.drainTimeoutMs)}: ${left.length} pod${left.length === 1 ? '' : 's'} left`, {
            details: left.map((x) => `${x.pod}: ${x.reason}`),
            hint: `nothing was rebuilt and ${hostname} stays cordoned; fix the pods (or raise --drain-timeout) and run again, or pass --skip-drain to rebuild anyway (those pods stop when the node goes down)`,
          });
        }
        return r;
      });
    }

    // ── reset the k3s node password (delete its Secret and the Node) ──
    if (!opts.resetNodePassword) skip('reset-node-password', 'not asked (--reset-node-password)');
    else {
      reset = await phase('reset-node-password', async () => {
        if (!reachable) {
          throw new ClusterError('cannot reset the node password: the cluster API was unreachable at the start', {
            hint: `bring the API back, or delete Secret ${NODE_PASSWORD_NAMESPACE}/${nodePasswordSecretName(hostname)} and Node ${hostname} by hand (kubectl delete)`,
          });
        }
        const secret = `Secret ${NODE_PASSWORD_NAMESPACE}/${nodePasswordSecretName(hostname)}`;
        const done = { deleted: [] as string[], notFound: [] as string[] };
        (await deleteSecret(kube, NODE_PASSWORD_NAMESPACE, nodePasswordSecretName(hostname), API_TIMEOUT_MS) ? done.deleted : done.notFound).push(secret);
        (await deleteNode(kube, hostname, API_TIMEOUT_MS) ? done.deleted : done.notFound).push(`Node ${hostname}`);
        for (const d of done.deleted) log(`deleted ${d}`);
        for (const d of done.notFound) log(`not found (nothing deleted): ${d}`);
        if (done.deleted.includes(`Node ${hostname}`)) cordonAtEnd = 'the Node object was deleted; the node registers afresh, schedulable';
        return {
          status: 'ok',
          summary: done.deleted.length > 0 ? `deleted ${done.deleted.join(' and ')}` : 'nothing to delete',
          details: [...done.deleted.map((d) => `deleted ${d}`), ...done.notFound.map((d) => `not found: ${d}`)],
          value: done,
        };
      });
    }

    // ── build ──
    record = await phase('build', async () => {
      log(`building the image of ${hostname} …`);
      const result = await buildImages({
        inventory: inv,
        nodes: [hostname],
        ...(opts.base === undefined ? {} : { base: opts.base }),
        outDir: opts.buildDir,
        compress: 'none',
        jobs: 1,
        dryRun: false,
        env: opts.env,
        cwd: opts.cwd,
        now: new Date(deps.now()),
        toolVersion: opts.toolVersion,
        ...(deps.onBuildProgress ? { onProgress: (_n: string, p: string, f: number) => deps.onBuildProgress?.(p, f) } : {}),
      });
      const r = result.records[0];
      if (!r) throw new IoError(`the build of ${hostname} produced no image`);
      return {
        status: 'ok',
        summary: `built ${displayPath(r.image.path, opts.cwd)} (${Math.round(r.image.size / 1048576)} MiB, sha256 ${r.image.sha256.slice(0, 16)}…)`,
        details: [`image sha256 ${r.image.sha256}`, `base ${r.base.name} sha256 ${r.base.sha256}`, `instance id ${r.instanceId}`],
        value: r,
      };
    });
    const built = record;

    // ── flash the card, or re-export for netboot ──
    if (opts.target.mode === 'device') {
      const t = opts.target;
      flash = await phase('flash', async () => {
        const verdict = await prepareFlashTarget({
          device: checked.device ?? t.device,
          imageSize: built.image.size,
          imagePath: built.image.path,
          allowLoop: t.allowLoop,
          yes: t.yes,
          prompt: deps.prompt,
          log,
        });
        deviceDescription = verdict.description;
        const r = await flashImage({ image: built.image.path, device: verdict.device, verify: true, record: built, ...(deps.onFlashProgress ? { onProgress: deps.onFlashProgress } : {}) });
        await rereadPartitionTable(verdict.device);
        const ev: FlashEvidence = {
          result: r.verify.result,
          bytes: r.bytes,
          imageSha256: r.imageSha256,
          ...(r.verify.readbackSha256 === undefined ? {} : { readbackSha256: r.verify.readbackSha256 }),
          writeMs: Math.round(r.writeMs),
          verifyMs: Math.round(r.verifyMs),
          files: r.verify.files.map((f) => ({ target: f.target, path: f.path, ok: f.ok, ...(f.problem === undefined ? {} : { problem: f.problem }) })),
        };
        if (r.verify.result === 'failed') {
          flash = ev;
          throw new IoError(`verification of ${verdict.device} failed: what was read back differs from the image${r.verify.firstBadOffset === undefined ? '' : ` (first difference at byte ${r.verify.firstBadOffset})`}`, {
            hint: 'the card or reader may be faulty or counterfeit; flash again, and if it fails again use another card',
          });
        }
        return {
          status: 'ok',
          summary: `wrote ${Math.round(r.bytes / 1048576)} MiB to ${verdict.device} in ${(r.writeMs / 1000).toFixed(1)} s, verified (${r.verify.files.length} files read back)`,
          details: [`read back sha256 ${r.verify.readbackSha256 ?? '?'}`, ...ev.files.map((f) => `${f.ok ? 'ok' : 'FAIL'} ${f.target}:${f.path}${f.problem ? ` — ${f.problem}` : ''}`)],
          value: ev,
        };
      });
      skip('netboot', 'flashed a card instead');
      log(`put the card into ${hostname} and power it on; waiting for it to rejoin`);
    } else {
      const t = opts.target;
      const server = checked.netbootServer ?? '';
      skip('flash', 'netboot export instead');
      netboot = await phase('netboot', async () => {
        const plan = planNetboot(inv, { root: t.root, server, only: [hostname] });
        const planned = plan.nodes[0];
        if (!planned) throw new InputError(`${hostname} cannot be netbooted`);
        const r = await exportNode(planned, built.image.path);
        let shared: string;
        if (existsSync(join(plan.root, 'exports'))) {
          shared = 'kept (a rebuild changes neither the serial nor the paths)';
        } else {
          await writeSharedFiles(plan);
          shared = 'written (there were none)';
          notes.push(`${join(plan.root, 'exports')} did not exist: the shared netboot files were written for ${hostname} only; run \`pi-image netboot --all\` for the other nodes`);
        }
        return {
          status: 'ok',
          summary: `exported tftp ${r.tftpDir}/ (${r.bootFiles} files) and nfs ${r.nfsDir}/ (${r.rootfs.entries} entries); shared files ${shared}`,
          value: { tftpDir: r.tftpDir, nfsDir: r.nfsDir, bootFiles: r.bootFiles, rootfsEntries: r.rootfs.entries, sharedFiles: shared },
        };
      });
      log(`power-cycle ${hostname} (it netboots the new export); waiting for it to rejoin`);
    }

    // ── wait for the node to come back: its verify checks + a new boot, within the budget left ──
    let lastNode: V1Node | undefined;
    let last: CheckResult[] = [];
    let pollError: string | undefined;
    let rounds = 0;
    let timedOut = false;
    const rejoinStart = deps.now();
    const left = budgetAccount(opts.budgetMs, t0, rejoinStart).remainingMs;
    try {
      const outcome = await pollChecks(
        {
          now: deps.now,
          sleep: deps.sleep,
          // at least one real look, even with the budget spent
          snapshot: (ms) => takeSnapshot(kube, Math.max(ms, API_TIMEOUT_MS), { helmCharts: false }),
          isRetryable,
          evaluate: (s) => {
            lastNode = findClusterNode(s.nodes, hostname);
            return rejoinChecks(inv, s, hostname, before);
          },
          onRound: ({ results, error, remainingMs }) => {
            const failing = (results ?? []).filter((r) => r.status === 'fail').map((r) => r.name);
            log(`waiting for ${hostname}: ${results ? `failing ${failing.join(', ')}` : error instanceof Error ? error.message : String(error)}; ${formatDuration(remainingMs)} of the budget left`);
          },
        },
        { timeoutMs: Math.max(1, left), intervalMs: opts.intervalMs, wait: true },
      );
      last = outcome.results;
      rounds = outcome.rounds;
      timedOut = outcome.timedOut;
      rejoined = summarize(last).ok;
    } catch (error) {
      pollError = error instanceof Error ? error.message : String(error);
      timedOut = true;
    }
    verify = { rounds, timedOut, checks: last, ...(pollError === undefined ? {} : { error: pollError }) };
    const rejoinEnd = deps.now();
    let hints: string[] = [];
    if (!rejoined) {
      const passwordSecret: SecretPresence = await secretExists(kube, NODE_PASSWORD_NAMESPACE, nodePasswordSecretName(hostname), API_TIMEOUT_MS).then(
        (present): SecretPresence => (present ? 'present' : 'absent'),
        (): SecretPresence => 'unknown',
      );
      hints = notRejoinedHints({ node: hostname, results: last, passwordSecret, resetDone: reset !== null && reset.deleted.length > 0, ...(pollError === undefined ? {} : { error: pollError }) });
      notes.push(...hints);
      for (const h of hints) log(`hint: ${h}`);
    }
    phases.push(
      phaseRecord(
        'rejoin',
        rejoinStart,
        rejoinEnd,
        rejoined ? 'ok' : 'failed',
        rejoined
          ? `${hostname} back and passing ${last.length} checks after ${formatDuration(rejoinEnd - rejoinStart)} (${rounds} round${rounds === 1 ? '' : 's'})`
          : `${hostname} not back within ${formatDuration(Math.max(left, rejoinEnd - rejoinStart))}: ${pollError ?? `failing ${last.filter((r) => r.status === 'fail').map((r) => r.name).join(', ') || 'nothing?'}`}`,
        last.filter((r) => r.status !== 'pass').map((r) => `${r.status} ${r.name}: ${r.message}`),
      ),
    );

    // ── uncordon ──
    if (!rejoined) {
      skip('uncordon', 'the node is not back: left as it is');
      if (cordonedByDrill) cordonAtEnd = `left cordoned: the node did not come back (\`kubectl uncordon ${hostname}\` once it has)`;
    } else if (lastNode?.spec?.unschedulable !== true) {
      skip('uncordon', 'the node came back schedulable');
      if (cordonedByDrill || reset) cordonAtEnd = 'schedulable (registered afresh)';
    } else if (!cordonedByDrill) {
      if (!before?.unschedulable) cordonAtEnd = 'left cordoned: the drill did not set that cordon';
      skip('uncordon', cordonAtEnd);
    } else {
      await phase('uncordon', async () => {
        await setUnschedulable(kube, hostname, false, API_TIMEOUT_MS);
        cordonAtEnd = 'uncordoned by the drill after every check passed (the cordon survived the reflash)';
        return { status: 'ok', summary: `uncordoned ${hostname}`, value: undefined };
      });
    }
  } catch (error) {
    if (!(error instanceof DrillAbort)) throw error;
    aborted = { phase: error.phase, message: error.message };
    failure = error.error;
    if (cordonedByDrill) cordonAtEnd = `left cordoned: the drill stopped (\`kubectl uncordon ${hostname}\` to undo)`;
    notes.push(`the drill stopped in phase ${error.phase}: ${error.message}`);
  }

  const t1 = deps.now();
  const budget = budgetAccount(opts.budgetMs, t0, t1);
  const v = drillVerdict({ budget, rejoined, ...(aborted ? { aborted } : {}) });
  const built = record;
  const evidence: RebuildEvidence = {
    schema: EVIDENCE_SCHEMA,
    drill: 'rebuild',
    cluster: inv.cluster.name,
    node: hostname,
    role,
    operator: opts.operator,
    tool: { name: 'pi-image', version: opts.toolVersion },
    target:
      opts.target.mode === 'device'
        ? { mode: 'device', device: checked.device ?? opts.target.device, ...(deviceDescription === undefined ? {} : { description: deviceDescription }) }
        : { mode: 'netboot', root: opts.target.root, server: checked.netbootServer ?? '' },
    kube: { context: kube.context, server: kube.server, reachableAtStart: reachable },
    startedAt: new Date(t0).toISOString(),
    endedAt: new Date(t1).toISOString(),
    durationMs: t1 - t0,
    budget,
    verdict: v.verdict,
    ok: v.ok,
    reason: v.reason,
    phases,
    image: built
      ? { sha256: built.image.sha256, size: built.image.size, instanceId: built.instanceId, builtAt: built.builtAt, buildRecord: displayPath(recordPath(opts.buildDir, hostname), opts.cwd) }
      : null,
    base: built ? { name: built.base.name, sha256: built.base.sha256 } : null,
    flash,
    netboot,
    drain,
    nodePasswordReset: reset,
    verify,
    cordonAtEnd,
    notes,
  };
  const evidenceDir = await writeRebuildEvidence(opts.evidenceRoot, evidence);
  log(`evidence: ${displayPath(evidenceDir, opts.cwd)}/`);
  if (failure !== undefined) throw failure;
  return { evidence, evidenceDir };
}

/**
 * Cordoned already; evicts what `kubectl drain --ignore-daemonsets` would, retrying refused
 * evictions (PodDisruptionBudget) and waiting for the pods to be gone, all within timeoutMs.
 * Pods it could not get off the node are in `remaining` (the caller stops the drill then).
 */
async function drainNode(
  kube: KubeTarget,
  node: string,
  timeoutMs: number,
  deps: RebuildDeps,
  alreadyCordoned: boolean,
): Promise<{ status: PhaseStatus; summary: string; details: string[]; value: DrainEvidence }> {
  const deadline = deps.now() + timeoutMs;
  const plan = planDrain((await listPodsOnNode(kube, node, API_TIMEOUT_MS)).map(podSummary));
  const evidence: DrainEvidence = { cordoned: true, alreadyCordoned, evicted: [], ignored: plan.ignored, remaining: [...plan.blocked] };
  const refused = new Map<string, string>();
  let pending = plan.blocked.length > 0 ? [] : plan.evict;
  while (pending.length > 0) {
    const next: typeof pending = [];
    for (const p of pending) {
      const r = await evictPod(kube, p.namespace, p.name, API_TIMEOUT_MS);
      if (r.outcome === 'refused') {
        refused.set(podId(p), r.message);
        next.push(p);
      } else {
        refused.delete(podId(p));
        evidence.evicted.push(podId(p));
        deps.log(`evicted ${podId(p)}${r.outcome === 'gone' ? ' (already gone)' : ''}`);
      }
    }
    pending = next;
    if (pending.length === 0 || deps.now() >= deadline) break;
    await deps.sleep(Math.min(2000, Math.max(1, deadline - deps.now())));
  }
  // evicted pods terminate gracefully: wait until none of them is on the node any more
  const evicted = new Set(evidence.evicted);
  let still: string[] = [];
  if (plan.blocked.length === 0) {
    for (;;) {
      still = (await listPodsOnNode(kube, node, API_TIMEOUT_MS)).map(podSummary).filter((p) => evicted.has(podId(p)) && p.phase !== 'Succeeded' && p.phase !== 'Failed').map(podId);
      if (still.length === 0 || deps.now() >= deadline) break;
      await deps.sleep(Math.min(1000, Math.max(1, deadline - deps.now())));
    }
  }
  evidence.remaining.push(
    ...pending.map((p) => ({ pod: podId(p), reason: `eviction refused: ${refused.get(podId(p)) ?? 'no reason given'}` })),
    ...still.map((pod) => ({ pod, reason: 'evicted but still terminating' })),
  );
  const details = [
    ...evidence.evicted.map((p) => `evicted ${p}`),
    ...evidence.ignored.map((i) => `left ${i.pod}: ${i.reason}`),
    ...evidence.remaining.map((r) => `NOT drained ${r.pod}: ${r.reason}`),
  ];
  return {
    status: 'ok',
    summary: `evicted ${evidence.evicted.length} pod${evidence.evicted.length === 1 ? '' : 's'}, left ${evidence.ignored.length} (DaemonSet/static/finished)`,
    details,
    value: evidence,
  };
}

/** Writes evidence.json + README.md into a new `<date>-rebuild-<node>` folder below root; returns the folder. */
export async function writeRebuildEvidence(root: string, evidence: RebuildEvidence): Promise<string> {
  return writeEvidenceFolder({
    root,
    name: `rebuild-${evidence.node}`,
    date: new Date(evidence.startedAt),
    files: { 'evidence.json': renderEvidenceJson(evidence), 'README.md': renderEvidenceMarkdown(evidence) },
  });
}
