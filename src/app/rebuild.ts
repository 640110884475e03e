/**
 * `pi-image rebuild <node>`: the timed rebuild drill, as a list of named phases over one state
 * object (the shape of talosctl's check lists). Each phase says why it is skipped, or runs and says
 * what it did; a phase that throws stops the drill, and the evidence is written in every case
 * (docs/governance/reviews/<date>-rebuild-<node>/evidence.json + README.md).
 *
 *   preflight → cordon → drain → reset-node-password → build → remove-node → flash | netboot → rejoin → uncordon
 *
 * The build, flash and netboot phases call the use cases of `pi-image build`, `pi-image flash` and
 * `pi-image netboot`. Everything outside comes in as RebuildPorts: the clock, the Kubernetes API
 * (DrillKube) and those three use cases (which hold the process runner, image files and block
 * devices); tests run the whole state machine with fakes. The decisions and the evidence text are
 * pure (src/core/rebuild.ts).
 *
 * The cordon: a reflashed k3s agent re-registers under the same Node object (the kubelet keeps an
 * existing object's spec), so the cordon survives the reflash; the drill lifts it once every check
 * passes — only if the drill set it. A node cordoned before the drill stays cordoned; a node that
 * does not come back stays cordoned.
 *
 * A server is different: its etcd member goes with its Node object. k3s removes a server's etcd
 * member only when its Node is deleted (pkg/etcd/member_controller.go, onRemove), and a reflashed
 * server — new etcd member name `<node>-<random>` — is refused while a member of the same node name
 * is still there ("duplicate node name found, please use a unique name for this node",
 * pkg/etcd/etcd.go, join). So for a server the drill deletes the Node (`remove-node`) once the new
 * image is built, right before the card is written or the export replaced; the server registers
 * afresh, schedulable.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import type { EvictionResult } from '../adapters/kube-drain.js';
import { deleteNode, deleteSecret, evictPod, listPodsOnNode, readNode, secretExists, setUnschedulable } from '../adapters/kube-drain.js';
import { isRetryable, type KubeTarget, loadKubeConfig, resolveKubeconfigPath, takeSnapshot } from '../adapters/kube.js';
import { systemClock } from '../adapters/clock.js';
import type { Clock } from '../core/clock.js';
import { ChecksFailedError, ClusterError, InputError, IoError, PiImageError } from '../core/errors.js';
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
import { type CheckResult, type ClusterSnapshot, summarize } from '../core/verify/checks.js';
import { formatDuration } from '../core/verify/duration.js';
import { pollChecks } from '../core/verify/poll.js';
import { recordPath } from '../adapters/build-record.js';
import { writeEvidenceFolder } from '../adapters/evidence.js';
import type { BuildRecord } from '../core/build-record.js';
import { findNode } from '../core/node-selection.js';
import { buildImages } from './build.js';
import { checkFlashTarget, defaultFlashPorts, type FlashOptions, type FlashOutcome, flashFailure, type FlashProgress, runFlash } from './flash.js';
import { displayPath } from './inventory.js';
import { defaultNetbootPorts, type NetbootOptions, type NetbootResult, runNetboot } from './netboot.js';

export type RebuildTarget = { mode: 'device'; device: string; yes: boolean; allowLoop: boolean } | { mode: 'netboot'; root: string; server?: string };

export interface RebuildOptions {
  inventory: Inventory;
  node: string;
  target: RebuildTarget;
  budgetMs: number;
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
  cwd: string;
  /** one progress line (stderr) */
  log(line: string): void;
  /** the flash confirmation; undefined without a terminal */
  prompt?: (question: string) => Promise<string>;
  onBuildProgress?: (phase: string, fraction: number) => void;
  onFlashProgress?: (p: FlashProgress) => void;
}

/** The Kubernetes API as the drill uses it; every call is bounded by the adapter's deadline. */
export interface DrillKube {
  readonly context: string;
  readonly server: string;
  readNode(name: string): Promise<V1Node | undefined>;
  setUnschedulable(name: string, unschedulable: boolean): Promise<void>;
  listPodsOnNode(name: string): Promise<V1Pod[]>;
  evictPod(namespace: string, name: string): Promise<EvictionResult>;
  secretExists(namespace: string, name: string): Promise<boolean>;
  deleteSecret(namespace: string, name: string): Promise<boolean>;
  deleteNode(name: string): Promise<boolean>;
  /** what verify reads (nodes, namespaces), giving up after timeoutMs */
  snapshot(timeoutMs: number): Promise<ClusterSnapshot>;
  /** an API that is not there (yet): worth waiting for */
  isUnreachable(error: unknown): boolean;
}

export interface RebuildPorts {
  clock: Clock;
  kube: DrillKube;
  /** the build use case for one node; resolves to its build record */
  build(o: { node: string; base?: string; buildDir: string; now: Date; onProgress?: (phase: string, fraction: number) => void }): Promise<BuildRecord>;
  /** the flash use case */
  flash(o: FlashOptions): Promise<FlashOutcome>;
  /** the target check and typed confirmation of the flash use case (before anything changes) */
  checkFlashTarget(o: { device: string; allowLoop: boolean; yes: boolean; prompt: RebuildOptions['prompt']; log: (line: string) => void }): Promise<{ device: string; description: string }>;
  /** the netboot use case */
  netboot(o: NetbootOptions): Promise<NetbootResult>;
  /** the NFS server of an earlier export (`nfsroot=<server>:` in its cmdline.txt) */
  previousNetbootServer(root: string, serial: string): Promise<string | undefined>;
  /** writes evidence.json + README.md in a new folder below root; returns the folder */
  writeEvidence(root: string, evidence: RebuildEvidence): Promise<string>;
}

export interface RebuildOutcome {
  evidence: RebuildEvidence;
  /** absolute path of the evidence folder */
  evidenceDir: string;
}

/** Time for one API request outside the rejoin loop. */
export const API_TIMEOUT_MS = 15_000;

/** The real Kubernetes API behind DrillKube. */
export function drillKube(target: KubeTarget, timeoutMs = API_TIMEOUT_MS): DrillKube {
  return {
    context: target.context,
    server: target.server,
    readNode: (name) => readNode(target, name, timeoutMs),
    setUnschedulable: (name, u) => setUnschedulable(target, name, u, timeoutMs),
    listPodsOnNode: (name) => listPodsOnNode(target, name, timeoutMs),
    evictPod: (ns, name) => evictPod(target, ns, name, timeoutMs),
    secretExists: (ns, name) => secretExists(target, ns, name, timeoutMs),
    deleteSecret: (ns, name) => deleteSecret(target, ns, name, timeoutMs),
    deleteNode: (name) => deleteNode(target, name, timeoutMs),
    // at least one real look, even with the budget spent
    snapshot: (ms) => takeSnapshot(target, Math.max(ms, timeoutMs), { helmCharts: false }),
    isUnreachable: isRetryable,
  };
}

/**
 * The ports of a real drill: the wall clock, the cluster of the kubeconfig (--kubeconfig, then
 * $KUBECONFIG, then ~/.kube/config; --context) and the build/flash/netboot use cases.
 */
export function defaultRebuildPorts(o: {
  kubeconfig?: string;
  context?: string;
  inventory: Inventory;
  env: NodeJS.ProcessEnv;
  cwd: string;
  toolVersion: string;
}): RebuildPorts {
  const target = loadKubeConfig(resolveKubeconfigPath({ flag: o.kubeconfig, env: o.env, cwd: o.cwd }), o.context);
  const flashPorts = defaultFlashPorts();
  return {
    clock: systemClock,
    kube: drillKube(target),
    build: async (b) => {
      const result = await buildImages({
        inventory: o.inventory,
        nodes: [b.node],
        ...(b.base === undefined ? {} : { base: b.base }),
        outDir: b.buildDir,
        compress: 'none',
        jobs: 1,
        dryRun: false,
        env: o.env,
        cwd: o.cwd,
        now: b.now,
        toolVersion: o.toolVersion,
        ...(b.onProgress ? { onProgress: (_n: string, p: string, f: number) => b.onProgress?.(p, f) } : {}),
      });
      const r = result.records[0];
      if (!r) throw new IoError(`the build of ${b.node} produced no image`);
      return r;
    },
    flash: (f) => runFlash(f, flashPorts),
    checkFlashTarget: async (c) => {
      const device = await flashPorts.blockDevices.resolve(c.device);
      // the image is not built yet: its size is checked again by the flash itself
      const v = await checkFlashTarget({ device, imageSize: 0, allowLoop: c.allowLoop, yes: c.yes, prompt: c.prompt, log: c.log }, flashPorts);
      return { device: v.device, description: v.description };
    },
    netboot: (n) => runNetboot(n, defaultNetbootPorts()),
    previousNetbootServer: async (root, serial) => {
      try {
        return /\bnfsroot=([0-9.]+):/.exec(await readFile(join(root, 'tftp', serial, 'cmdline.txt'), 'utf8'))?.[1];
      } catch {
        return undefined;
      }
    },
    writeEvidence: writeRebuildEvidence,
  };
}

// ── the drill's state and context ────────────────────────────────────────────────────────────────

/** Everything the phases learn and decide, in one place (the evidence is made from it). */
export interface DrillState {
  /** the API answered at the start */
  reachable: boolean;
  /** the Node before the drill (undefined: not registered or API unreachable) */
  before?: NodeIdentity;
  cordonedByDrill: boolean;
  /** the Node object was deleted (reset-node-password, or remove-node for a server) */
  nodeDeleted: boolean;
  cordonAtEnd: string;
  drain: DrainEvidence | null;
  reset: RebuildEvidence['nodePasswordReset'];
  record?: BuildRecord;
  flash: FlashEvidence | null;
  netboot: NetbootEvidence | null;
  verify: RebuildEvidence['verify'];
  rejoined: boolean;
  /** the Node as last seen while waiting for the rejoin */
  lastNode?: V1Node;
  notes: string[];
}

/** What does not change while the drill runs. */
export interface DrillContext {
  opts: RebuildOptions;
  ports: RebuildPorts;
  hostname: string;
  role: 'server' | 'agent';
  t0: number;
  /** the resolved device (device mode) and its description, confirmed before the drill */
  device?: { path: string; description: string };
  /** the NFS server address (netboot mode) */
  netbootServer?: string;
  log(line: string): void;
}

export interface PhaseResult {
  status: 'ok' | 'failed';
  summary: string;
  details?: string[];
}

/** One named step of the drill. */
export interface DrillPhase {
  name: PhaseName;
  /** why the phase does not run (recorded as skipped); undefined when it runs */
  skip(s: DrillState, c: DrillContext): string | undefined;
  /** does the work; a thrown error stops the drill (recorded as this phase's failure) */
  run(s: DrillState, c: DrillContext): Promise<PhaseResult>;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

// ── the phases ───────────────────────────────────────────────────────────────────────────────────

const preflight: DrillPhase = {
  name: 'preflight',
  skip: () => undefined,
  async run(s, c) {
    try {
      const node = await c.ports.kube.readNode(c.hostname);
      if (node) s.before = nodeIdentity(node);
    } catch (error) {
      if (!c.ports.kube.isUnreachable(error)) throw error;
      s.reachable = false;
      const message = error instanceof Error ? error.message : String(error);
      s.notes.push(`the cluster API was unreachable at the start (${message}): the node was not cordoned or drained; the drill went on without it`);
      s.notes.push('no bootID was recorded at the start: the rejoin could not tell the old boot from the new one (a registered, Ready node counted as back)');
      return { status: 'ok', summary: `cluster API unreachable (${message}): going on without cordon and drain` };
    }
    return {
      status: 'ok',
      summary: s.before
        ? `node ${c.hostname} registered (${s.before.unschedulable ? 'already cordoned' : 'schedulable'})`
        : `node ${c.hostname} is not registered: nothing to cordon or drain`,
    };
  },
};

const cordon: DrillPhase = {
  name: 'cordon',
  skip(s) {
    if (!s.reachable) return 'cluster API unreachable at the start';
    if (!s.before) return 'node not registered';
    if (s.before.unschedulable) {
      s.cordonAtEnd = 'left cordoned: it was cordoned before the drill';
      return 'already cordoned before the drill (stays cordoned afterwards)';
    }
    return undefined;
  },
  async run(s, c) {
    await c.ports.kube.setUnschedulable(c.hostname, true);
    s.cordonedByDrill = true;
    s.cordonAtEnd = 'cordoned by the drill, not lifted';
    return { status: 'ok', summary: `cordoned ${c.hostname} (spec.unschedulable=true)` };
  },
};

const drain: DrillPhase = {
  name: 'drain',
  skip(s, c) {
    if (c.opts.skipDrain) {
      s.notes.push('--skip-drain: the node was not drained');
      return '--skip-drain: pods were not evicted (they stop when the node goes down)';
    }
    if (!s.reachable) return 'cluster API unreachable at the start';
    if (!s.before) return 'node not registered';
    return undefined;
  },
  async run(s, c) {
    const r = await drainNode(c, s.before?.unschedulable === true);
    s.drain = r.evidence;
    const left = r.evidence.remaining;
    if (left.length > 0) {
      throw new ChecksFailedError(`the drain of ${c.hostname} did not finish within ${formatDuration(c.opts.drainTimeoutMs)}: ${plural(left.length, 'pod')} left`, {
        details: left.map((x) => `${x.pod}: ${x.reason}`),
        hint: `nothing was rebuilt and ${c.hostname} stays cordoned; fix the pods (or raise --drain-timeout) and run again, or pass --skip-drain to rebuild anyway (those pods stop when the node goes down)`,
      });
    }
    return r.result;
  },
};

const resetNodePassword: DrillPhase = {
  name: 'reset-node-password',
  skip: (_s, c) => (c.opts.resetNodePassword ? undefined : 'not asked (--reset-node-password)'),
  async run(s, c) {
    const { hostname } = c;
    if (!s.reachable) {
      throw new ClusterError('cannot reset the node password: the cluster API was unreachable at the start', {
        hint: `bring the API back, or delete Secret ${NODE_PASSWORD_NAMESPACE}/${nodePasswordSecretName(hostname)} and Node ${hostname} by hand (kubectl delete)`,
      });
    }
    const secret = `Secret ${NODE_PASSWORD_NAMESPACE}/${nodePasswordSecretName(hostname)}`;
    const done = { deleted: [] as string[], notFound: [] as string[] };
    ((await c.ports.kube.deleteSecret(NODE_PASSWORD_NAMESPACE, nodePasswordSecretName(hostname))) ? done.deleted : done.notFound).push(secret);
    ((await c.ports.kube.deleteNode(hostname)) ? done.deleted : done.notFound).push(`Node ${hostname}`);
    for (const d of done.deleted) c.log(`deleted ${d}`);
    for (const d of done.notFound) c.log(`not found (nothing deleted): ${d}`);
    s.reset = done;
    if (done.deleted.includes(`Node ${hostname}`)) {
      s.nodeDeleted = true;
      s.cordonAtEnd = 'the Node object was deleted; the node registers afresh, schedulable';
    }
    return {
      status: 'ok',
      summary: done.deleted.length > 0 ? `deleted ${done.deleted.join(' and ')}` : 'nothing to delete',
      details: [...done.deleted.map((d) => `deleted ${d}`), ...done.notFound.map((d) => `not found: ${d}`)],
    };
  },
};

const build: DrillPhase = {
  name: 'build',
  skip: () => undefined,
  async run(s, c) {
    c.log(`building the image of ${c.hostname} …`);
    const r = await c.ports.build({
      node: c.hostname,
      ...(c.opts.base === undefined ? {} : { base: c.opts.base }),
      buildDir: c.opts.buildDir,
      now: new Date(c.ports.clock.now()),
      ...(c.opts.onBuildProgress ? { onProgress: c.opts.onBuildProgress } : {}),
    });
    s.record = r;
    return {
      status: 'ok',
      summary: `built ${displayPath(r.image.path, c.opts.cwd)} (${Math.round(r.image.size / 1048576)} MiB, sha256 ${r.image.sha256.slice(0, 16)}…)`,
      details: [`image sha256 ${r.image.sha256}`, `base ${r.base.name} sha256 ${r.base.sha256}`, `instance id ${r.instanceId}`],
    };
  },
};

const removeNode: DrillPhase = {
  name: 'remove-node',
  skip(s, c) {
    if (c.role !== 'server') return 'an agent re-registers under its Node object (only a server\'s Node and etcd member must go)';
    if (s.nodeDeleted) return 'the Node was deleted already (--reset-node-password)';
    if (s.reachable && !s.before) return 'node not registered';
    return undefined;
  },
  async run(s, c) {
    let deleted: boolean;
    try {
      deleted = await c.ports.kube.deleteNode(c.hostname);
    } catch (error) {
      if (error instanceof PiImageError) {
        throw new ClusterError(`cannot delete Node ${c.hostname}: ${error.message}`, {
          hint: `a reflashed server is refused while its old Node (and etcd member) exists; \`kubectl delete node ${c.hostname}\`, then run the drill again`,
          cause: error,
        });
      }
      throw error;
    }
    s.nodeDeleted = deleted;
    if (deleted) {
      s.cordonAtEnd = 'the Node object was deleted (a server: its etcd member with it); the node registers afresh, schedulable';
      c.log(`deleted Node ${c.hostname} (k3s removes its etcd member with it)`);
    }
    return {
      status: 'ok',
      summary: deleted ? `deleted Node ${c.hostname}: k3s removes its etcd member, so the reflashed server can join` : `Node ${c.hostname} was not there (nothing deleted)`,
    };
  },
};

const flash: DrillPhase = {
  name: 'flash',
  skip: (_s, c) => (c.opts.target.mode === 'device' ? undefined : 'netboot export instead'),
  async run(s, c) {
    const built = s.record;
    const t = c.opts.target;
    if (!built || t.mode !== 'device') throw new IoError('nothing to flash: the image was not built');
    const o = await c.ports.flash({
      image: built.image.path,
      buildDir: c.opts.buildDir,
      record: built,
      device: c.device?.path ?? t.device,
      verify: true,
      allowLoop: t.allowLoop,
      // confirmed before the drill started
      yes: true,
      prompt: undefined,
      log: c.log,
      ...(c.opts.onFlashProgress ? { onProgress: c.opts.onFlashProgress } : {}),
    });
    const r = o.result;
    s.flash = {
      result: r.verify.result,
      bytes: r.bytes,
      imageSha256: r.imageSha256,
      ...(r.verify.readbackSha256 === undefined ? {} : { readbackSha256: r.verify.readbackSha256 }),
      ...(r.mapped === undefined ? {} : { mapped: r.mapped }),
      writeMs: Math.round(r.writeMs),
      verifyMs: Math.round(r.verifyMs),
      files: r.verify.files.map((f) => ({ target: f.target, path: f.path, ok: f.ok, ...(f.problem === undefined ? {} : { problem: f.problem }) })),
    };
    const failed = flashFailure(o);
    if (failed) throw failed;
    c.log(`put the card into ${c.hostname} and power it on; waiting for it to rejoin`);
    return {
      status: 'ok',
      summary: `wrote ${Math.round((r.mapped?.bytes ?? r.bytes) / 1048576)} MiB${r.mapped === undefined ? '' : ` (of ${Math.round(r.bytes / 1048576)} MiB: the mapped ranges)`} to ${o.verdict.device} in ${(r.writeMs / 1000).toFixed(1)} s, verified (${plural(r.verify.files.length, 'file')} read back)`,
      details: [
        r.mapped === undefined ? `read back sha256 ${r.verify.readbackSha256 ?? '?'}` : `wrote and read back only the block map's ${r.mapped.ranges} mapped ranges (${Math.round(r.mapped.bytes / 1048576)} MiB), each against its sha256`,
        ...s.flash.files.map((f) => `${f.ok ? 'ok' : 'FAIL'} ${f.target}:${f.path}${f.problem ? ` — ${f.problem}` : ''}`)],
    };
  },
};

const netboot: DrillPhase = {
  name: 'netboot',
  skip: (_s, c) => (c.opts.target.mode === 'netboot' ? undefined : 'flashed a card instead'),
  async run(s, c) {
    const built = s.record;
    const t = c.opts.target;
    if (!built || t.mode !== 'netboot') throw new IoError('nothing to export: the image was not built');
    const r = await c.ports.netboot({
      inventory: c.opts.inventory,
      nodes: [c.hostname],
      root: t.root,
      server: c.netbootServer ?? '',
      buildDir: c.opts.buildDir,
      images: { [c.hostname]: built.image.path },
      sharedFiles: 'if-missing',
      log: c.log,
    });
    const n = r.nodes[0];
    if (!n) throw new InputError(`${c.hostname} cannot be netbooted`);
    const shared = r.shared === 'kept' ? 'kept (a rebuild changes neither the serial nor the paths)' : 'written (there were none)';
    if (r.shared === 'written') {
      s.notes.push(`${join(r.root, 'exports')} did not exist: the shared netboot files were written for ${c.hostname} only; run \`pi-image netboot --all\` for the other nodes`);
    }
    s.netboot = { tftpDir: n.tftpDir, nfsDir: n.nfsDir, bootFiles: n.bootFiles, rootfsEntries: n.rootfs.entries, sharedFiles: shared };
    c.log(`power-cycle ${c.hostname} (it netboots the new export); waiting for it to rejoin`);
    return { status: 'ok', summary: `exported tftp ${n.tftpDir}/ (${plural(n.bootFiles, 'file')}) and nfs ${n.nfsDir}/ (${n.rootfs.entries} entries); shared files ${shared}` };
  },
};

const rejoin: DrillPhase = {
  name: 'rejoin',
  skip: () => undefined,
  async run(s, c) {
    const { hostname, ports } = c;
    const { clock, kube } = ports;
    let last: CheckResult[] = [];
    let pollError: string | undefined;
    let rounds = 0;
    let timedOut: boolean;
    const start = clock.now();
    const left = budgetAccount(c.opts.budgetMs, c.t0, start).remainingMs;
    try {
      const outcome = await pollChecks(
        {
          now: clock.now,
          sleep: clock.sleep,
          snapshot: (ms) => kube.snapshot(ms),
          isRetryable: (e) => kube.isUnreachable(e),
          evaluate: (snap) => {
            s.lastNode = findClusterNode(snap.nodes, hostname);
            return rejoinChecks(c.opts.inventory, snap, hostname, s.before);
          },
          onRound: ({ results, error, remainingMs }) => {
            const failing = (results ?? []).filter((r) => r.status === 'fail').map((r) => r.name);
            c.log(`waiting for ${hostname}: ${results ? `failing ${failing.join(', ')}` : error instanceof Error ? error.message : String(error)}; ${formatDuration(remainingMs)} of the budget left`);
          },
        },
        { timeoutMs: Math.max(1, left), intervalMs: c.opts.intervalMs, wait: true },
      );
      last = outcome.results;
      rounds = outcome.rounds;
      timedOut = outcome.timedOut;
      s.rejoined = summarize(last).ok;
    } catch (error) {
      pollError = error instanceof Error ? error.message : String(error);
      timedOut = true;
    }
    s.verify = { rounds, timedOut, checks: last, ...(pollError === undefined ? {} : { error: pollError }) };
    const end = clock.now();
    if (!s.rejoined) {
      const passwordSecret: SecretPresence = await kube.secretExists(NODE_PASSWORD_NAMESPACE, nodePasswordSecretName(hostname)).then(
        (present): SecretPresence => (present ? 'present' : 'absent'),
        (): SecretPresence => 'unknown',
      );
      const hints = notRejoinedHints({
        node: hostname,
        results: last,
        passwordSecret,
        resetDone: s.reset !== null && s.reset.deleted.length > 0,
        ...(pollError === undefined ? {} : { error: pollError }),
      });
      s.notes.push(...hints);
      for (const h of hints) c.log(`hint: ${h}`);
      if (s.cordonedByDrill && !s.nodeDeleted) s.cordonAtEnd = `left cordoned: the node did not come back (\`kubectl uncordon ${hostname}\` once it has)`;
    }
    return {
      status: s.rejoined ? 'ok' : 'failed',
      summary: s.rejoined
        ? `${hostname} back and passing ${last.length} checks after ${formatDuration(end - start)} (${plural(rounds, 'round')})`
        : `${hostname} not back within ${formatDuration(Math.max(left, end - start))}: ${pollError ?? `failing ${last.filter((r) => r.status === 'fail').map((r) => r.name).join(', ') || 'nothing?'}`}`,
      details: last.filter((r) => r.status !== 'pass').map((r) => `${r.status} ${r.name}: ${r.message}`),
    };
  },
};

const uncordon: DrillPhase = {
  name: 'uncordon',
  skip(s) {
    if (!s.rejoined) return 'the node is not back: left as it is';
    if (s.lastNode?.spec?.unschedulable !== true) {
      if (s.cordonedByDrill || s.nodeDeleted) s.cordonAtEnd = 'schedulable (registered afresh)';
      return 'the node came back schedulable';
    }
    if (!s.cordonedByDrill) {
      if (!s.before?.unschedulable) s.cordonAtEnd = 'left cordoned: the drill did not set that cordon';
      return s.cordonAtEnd;
    }
    return undefined;
  },
  async run(s, c) {
    await c.ports.kube.setUnschedulable(c.hostname, false);
    s.cordonAtEnd = 'uncordoned by the drill after every check passed (the cordon survived the reflash)';
    return { status: 'ok', summary: `uncordoned ${c.hostname}` };
  },
};

/** The drill, in order. */
export const DRILL_PHASES: readonly DrillPhase[] = [preflight, cordon, drain, resetNodePassword, build, removeNode, flash, netboot, rejoin, uncordon];

// ── running it ───────────────────────────────────────────────────────────────────────────────────

/** Checks that need no cluster and change nothing (and the flash confirmation); throws InputError before the drill starts. */
async function prepare(opts: RebuildOptions, ports: RebuildPorts): Promise<{ role: 'server' | 'agent'; device?: { path: string; description: string }; netbootServer?: string }> {
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
  const role = node.role === 'server' ? 'server' : 'agent';
  if (opts.target.mode === 'device') {
    const t = opts.target;
    const v = await ports.checkFlashTarget({ device: t.device, allowLoop: t.allowLoop, yes: t.yes, prompt: opts.prompt, log: opts.log });
    return { role, device: { path: v.device, description: v.description } };
  }
  // the same plan `pi-image netboot` makes (throws for a node without serial / dataDisk)
  const probe = planNetboot(inv, { root: opts.target.root, server: opts.target.server ?? '0.0.0.0', only: [opts.node] });
  const planned = probe.nodes[0];
  if (!planned) {
    throw new InputError(`${opts.node} cannot be netbooted: ${probe.skipped.find((s) => s.node === opts.node)?.reason ?? 'not exported'}`, {
      hint: `give ${node.source} \`boot: netboot\`, a \`serial:\` and a \`dataDisk:\` (docs/runbooks/netboot.md), or rebuild onto a card with --device`,
    });
  }
  const server = opts.target.server ?? (await ports.previousNetbootServer(probe.root, planned.serial));
  if (server === undefined) {
    throw new InputError(`--server is needed: ${join(probe.root, 'tftp', planned.serial, 'cmdline.txt')} (an earlier export) does not say which NFS server ${opts.node} boots from`, {
      hint: 'pass --server <IPv4 address the Pis reach this host on>, as for `pi-image netboot`',
    });
  }
  return { role, netbootServer: server };
}

export async function runRebuildDrill(opts: RebuildOptions, ports: RebuildPorts): Promise<RebuildOutcome> {
  const prepared = await prepare(opts, ports);
  const { clock } = ports;
  const t0 = clock.now();
  const at = (ms: number): string => `${((ms - t0) / 1000).toFixed(1)}s`;
  const ctx: DrillContext = {
    opts,
    ports,
    hostname: opts.node,
    role: prepared.role,
    t0,
    ...(prepared.device ? { device: prepared.device } : {}),
    ...(prepared.netbootServer === undefined ? {} : { netbootServer: prepared.netbootServer }),
    log: opts.log,
  };
  const state: DrillState = {
    reachable: true,
    cordonedByDrill: false,
    nodeDeleted: false,
    cordonAtEnd: 'not cordoned by the drill',
    drain: null,
    reset: null,
    flash: null,
    netboot: null,
    verify: null,
    rejoined: false,
    notes: [],
  };
  const phases: PhaseRecord[] = [];
  let aborted: { phase: PhaseName; message: string } | undefined;
  let failure: unknown;

  for (const phase of DRILL_PHASES) {
    const why = phase.skip(state, ctx);
    if (why !== undefined) {
      const now = clock.now();
      phases.push(phaseRecord(phase.name, now, now, 'skipped', why));
      opts.log(`[${at(now)}] ${phase.name}: skipped — ${why}`);
      continue;
    }
    const start = clock.now();
    opts.log(`[${at(start)}] ${phase.name} …`);
    try {
      const r = await phase.run(state, ctx);
      const end = clock.now();
      phases.push(phaseRecord(phase.name, start, end, r.status, r.summary, r.details));
      opts.log(`[${at(end)}] ${phase.name}: ${r.status} — ${r.summary}`);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const details = error instanceof PiImageError ? [...error.details, ...(error.hint ? [`hint: ${error.hint}`] : [])] : [];
      phases.push(phaseRecord(phase.name, start, clock.now(), 'failed', message, details));
      aborted = { phase: phase.name, message };
      failure = error;
      if (state.cordonedByDrill && !state.nodeDeleted) state.cordonAtEnd = `left cordoned: the drill stopped (\`kubectl uncordon ${opts.node}\` to undo)`;
      state.notes.push(`the drill stopped in phase ${phase.name}: ${message}`);
      break;
    }
  }

  const t1 = clock.now();
  const budget = budgetAccount(opts.budgetMs, t0, t1);
  const v = drillVerdict({ budget, rejoined: state.rejoined, ...(aborted ? { aborted } : {}) });
  const built = state.record;
  const evidence: RebuildEvidence = {
    schema: EVIDENCE_SCHEMA,
    drill: 'rebuild',
    cluster: opts.inventory.cluster.name,
    node: opts.node,
    role: prepared.role,
    operator: opts.operator,
    tool: { name: 'pi-image', version: opts.toolVersion },
    target:
      opts.target.mode === 'device'
        ? { mode: 'device', device: prepared.device?.path ?? opts.target.device, ...(prepared.device ? { description: prepared.device.description } : {}) }
        : { mode: 'netboot', root: opts.target.root, server: prepared.netbootServer ?? '' },
    kube: { context: ports.kube.context, server: ports.kube.server, reachableAtStart: state.reachable },
    startedAt: new Date(t0).toISOString(),
    endedAt: new Date(t1).toISOString(),
    durationMs: t1 - t0,
    budget,
    verdict: v.verdict,
    ok: v.ok,
    reason: v.reason,
    phases,
    image: built
      ? { sha256: built.image.sha256, size: built.image.size, instanceId: built.instanceId, builtAt: built.builtAt, buildRecord: displayPath(recordPath(opts.buildDir, opts.node), opts.cwd) }
      : null,
    base: built ? { name: built.base.name, sha256: built.base.sha256 } : null,
    flash: state.flash,
    netboot: state.netboot,
    drain: state.drain,
    nodePasswordReset: state.reset,
    verify: state.verify,
    cordonAtEnd: state.cordonAtEnd,
    notes: state.notes,
  };
  const evidenceDir = await ports.writeEvidence(opts.evidenceRoot, evidence);
  opts.log(`evidence: ${displayPath(evidenceDir, opts.cwd)}/`);
  if (failure !== undefined) throw failure;
  return { evidence, evidenceDir };
}

/**
 * Cordoned already; evicts what `kubectl drain --ignore-daemonsets` would, retrying refused
 * evictions (PodDisruptionBudget) and waiting for the pods to be gone, all within the drain
 * timeout. Pods it could not get off the node are in `remaining` (the drain phase stops the drill then).
 */
async function drainNode(c: DrillContext, alreadyCordoned: boolean): Promise<{ result: PhaseResult; evidence: DrainEvidence }> {
  const { kube, clock } = c.ports;
  const node = c.hostname;
  const deadline = clock.now() + c.opts.drainTimeoutMs;
  const plan = planDrain((await kube.listPodsOnNode(node)).map(podSummary));
  const evidence: DrainEvidence = { cordoned: true, alreadyCordoned, evicted: [], ignored: plan.ignored, remaining: [...plan.blocked] };
  const refused = new Map<string, string>();
  let pending = plan.blocked.length > 0 ? [] : plan.evict;
  while (pending.length > 0) {
    const next: typeof pending = [];
    for (const p of pending) {
      const r = await kube.evictPod(p.namespace, p.name);
      if (r.outcome === 'refused') {
        refused.set(podId(p), r.message);
        next.push(p);
      } else {
        refused.delete(podId(p));
        evidence.evicted.push(podId(p));
        c.log(`evicted ${podId(p)}${r.outcome === 'gone' ? ' (already gone)' : ''}`);
      }
    }
    pending = next;
    if (pending.length === 0 || clock.now() >= deadline) break;
    await clock.sleep(Math.min(2000, Math.max(1, deadline - clock.now())));
  }
  // evicted pods terminate gracefully: wait until none of them is on the node any more
  const evicted = new Set(evidence.evicted);
  let still: string[] = [];
  if (plan.blocked.length === 0) {
    for (;;) {
      still = (await kube.listPodsOnNode(node)).map(podSummary).filter((p) => evicted.has(podId(p)) && p.phase !== 'Succeeded' && p.phase !== 'Failed').map(podId);
      if (still.length === 0 || clock.now() >= deadline) break;
      await clock.sleep(Math.min(1000, Math.max(1, deadline - clock.now())));
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
    result: { status: 'ok', summary: `evicted ${plural(evidence.evicted.length, 'pod')}, left ${evidence.ignored.length} (DaemonSet/static/finished)`, details },
    evidence,
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
