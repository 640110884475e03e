/**
 * The rebuild drill's state machine (src/app/rebuild.ts) with fakes for every port: a clock that
 * moves only when the drill sleeps or a fake use case takes time, a Kubernetes API kept in memory,
 * and build/flash/netboot use cases that record their calls. No root, no network, no images.
 * The fake API plays k3s's rule for servers: a reflashed server is refused while its old Node (and
 * with it its etcd member) exists — k3s-io/k3s pkg/etcd/etcd.go join(): "duplicate node name
 * found, please use a unique name for this node"; the member goes when the Node is deleted
 * (pkg/etcd/member_controller.go onRemove).
 */
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { EvictionResult } from '../../src/adapters/kube-drain.js';
import type { FlashOutcome } from '../../src/app/flash.js';
import type { NetbootResult } from '../../src/app/netboot.js';
import { DRILL_PHASES, type DrillKube, type RebuildOptions, type RebuildPorts, runRebuildDrill } from '../../src/app/rebuild.js';
import type { BuildRecord } from '../../src/core/build-record.js';
import { ClusterError } from '../../src/core/errors.js';
import type { Inventory } from '../../src/core/model.js';
import { PHASES, type RebuildEvidence } from '../../src/core/rebuild.js';
import { pod } from '../helpers/rebuild-standin.js';
import { healthyNodes, verifyInventory } from '../helpers/verify-fixtures.js';

const AGENT = 'pi-cluster-3';
const SERVER = 'pi-cluster-5';
const MIN = 60_000;

/** The verify inventory plus a second server (joins pi-cluster-1's embedded etcd). */
function inventory(): Inventory {
  const inv = verifyInventory();
  const first = inv.nodes[0]!;
  inv.nodes.push({ ...first, hostname: SERVER, clusterInit: false, address: { mode: 'static', address: '10.0.0.15', prefix: 24 }, labels: {}, source: `nodes/${SERVER}.yaml` });
  // both can be netbooted too
  const dataDisk = { device: '/dev/disk/by-label/rancher', mountPoint: '/var/lib/rancher', fsType: 'ext4' };
  for (const n of inv.nodes.filter((x) => x.hostname === AGENT || x.hostname === SERVER)) Object.assign(n, { serial: n.hostname === AGENT ? '4e1c0013' : '4e1c0015', dataDisk });
  return inv;
}

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

class FakeClock {
  t = Date.parse('2026-12-01T09:00:00Z');
  readonly now = (): number => this.t;
  readonly sleep = async (ms: number): Promise<void> => {
    this.t += ms;
    await Promise.resolve();
  };
}

class Unreachable extends Error {}

/** The cluster in memory, with the reflash played out on the fake clock. */
class FakeKube implements DrillKube {
  readonly context = 'pi-cluster';
  readonly server = 'https://10.0.0.11:6443';
  nodes: V1Node[];
  pods: V1Pod[] = [];
  secrets = new Set<string>();
  /** etcd members by node name (k3s: a server's member lives as long as its Node object) */
  etcdMembers = new Set<string>();
  readonly calls: string[] = [];
  unreachable = false;
  cordonFails = false;
  /** pods a PodDisruptionBudget never lets go */
  readonly pdbBlocked = new Set<string>();
  /** when (clock time) the reflashed node boots; undefined: not reflashed yet */
  bootsAt: number | undefined;
  /** the reflashed node comes back with the boot from before (the API still reports the old node) */
  staleBoot = false;
  /** why a registration was refused */
  refused: string | undefined;
  private readonly bootNo = { n: 0 };

  constructor(
    private readonly clock: FakeClock,
    inv: Inventory,
  ) {
    this.nodes = healthyNodes(inv).map((n) => clone(n) as V1Node);
    for (const n of this.nodes) this.templates.set(n.metadata?.name ?? '', clone(n));
    for (const n of this.nodes) if (n.metadata?.labels?.['node-role.kubernetes.io/etcd'] === 'true') this.etcdMembers.add(n.metadata.name ?? '');
  }

  private node(name: string): V1Node | undefined {
    return this.nodes.find((n) => n.metadata?.name === name);
  }

  private guard(call: string): void {
    this.calls.push(call);
    if (this.unreachable) throw new Unreachable('connect ECONNREFUSED 10.0.0.11:6443');
  }

  /** The reflashed node registers (once it has booted), as k3s would let it. */
  private settle(): void {
    if (this.bootsAt === undefined || this.clock.now() < this.bootsAt) return;
    const name = this.reflashed ?? '';
    this.bootsAt = undefined;
    const old = this.node(name);
    const role = this.template?.metadata?.labels?.['node-role.kubernetes.io/etcd'] === 'true' ? 'server' : 'agent';
    if (role === 'server' && this.etcdMembers.has(name)) {
      // k3s pkg/etcd/etcd.go join(): the old member of this node name is still there
      this.refused = 'duplicate node name found, please use a unique name for this node';
      return;
    }
    if (this.staleBoot) return;
    this.bootNo.n += 1;
    if (old) {
      old.status!.nodeInfo!.bootID = `boot-${this.bootNo.n}`;
    } else {
      const fresh = clone(this.template!);
      fresh.metadata!.uid = `uid-new-${this.bootNo.n}`;
      fresh.status!.nodeInfo!.bootID = `boot-${this.bootNo.n}`;
      delete fresh.spec!.unschedulable;
      this.nodes.push(fresh);
    }
    if (role === 'server') this.etcdMembers.add(name);
  }

  private reflashed: string | undefined;
  private template: V1Node | undefined;
  /** each node as first registered: what a fresh registration looks like */
  private readonly templates = new Map<string, V1Node>();

  /** The card is in / the export is there: the node boots `afterMs` later. */
  reflash(name: string, afterMs: number): void {
    this.reflashed = name;
    this.template = clone(this.templates.get(name));
    this.bootsAt = this.clock.now() + afterMs;
  }

  readNode = async (name: string): Promise<V1Node | undefined> => {
    this.guard(`read ${name}`);
    return clone(this.node(name));
  };

  setUnschedulable = async (name: string, u: boolean): Promise<void> => {
    this.guard(`${u ? 'cordon' : 'uncordon'} ${name}`);
    if (this.cordonFails) throw new ClusterError(`cordoning node ${name}: nodes "${name}" is forbidden: User "drill" cannot patch resource "nodes"`);
    const n = this.node(name);
    if (!n) throw new ClusterError(`nodes "${name}" not found`);
    if (u) n.spec = { ...n.spec, unschedulable: true };
    else delete n.spec?.unschedulable;
  };

  listPodsOnNode = async (name: string): Promise<V1Pod[]> => {
    this.guard(`pods ${name}`);
    return clone(this.pods.filter((p) => p.spec?.nodeName === name));
  };

  evictPod = async (ns: string, name: string): Promise<EvictionResult> => {
    this.guard(`evict ${ns}/${name}`);
    if (this.pdbBlocked.has(`${ns}/${name}`)) return { outcome: 'refused', message: "Cannot evict pod as it would violate the pod's disruption budget." };
    const before = this.pods.length;
    this.pods = this.pods.filter((p) => !(p.metadata?.namespace === ns && p.metadata?.name === name));
    return this.pods.length < before ? { outcome: 'evicted' } : { outcome: 'gone' };
  };

  secretExists = async (ns: string, name: string): Promise<boolean> => {
    this.guard(`secret? ${ns}/${name}`);
    return this.secrets.has(`${ns}/${name}`);
  };

  deleteSecret = async (ns: string, name: string): Promise<boolean> => {
    this.guard(`delete secret ${ns}/${name}`);
    return this.secrets.delete(`${ns}/${name}`);
  };

  deleteNode = async (name: string): Promise<boolean> => {
    this.guard(`delete node ${name}`);
    const n = this.node(name);
    if (!n) return false;
    // k3s pkg/etcd/member_controller.go onRemove: an etcd node's member goes with its Node
    if (n.metadata?.labels?.['node-role.kubernetes.io/etcd'] === 'true') this.etcdMembers.delete(name);
    this.nodes = this.nodes.filter((x) => x !== n);
    return true;
  };

  snapshot = async (): Promise<{ nodes: V1Node[]; namespaces: []; helmCharts: [] }> => {
    this.guard('snapshot');
    this.settle();
    return { nodes: clone(this.nodes), namespaces: [], helmCharts: [] };
  };

  isUnreachable = (e: unknown): boolean => e instanceof Unreachable;
}

function record(node: string, role: 'server' | 'agent'): BuildRecord {
  return {
    version: 1,
    node,
    role,
    instanceId: `${node}-0f1e2d3c`,
    tool: { name: 'pi-image', version: '0.1.0' },
    builtAt: '2026-12-01T09:00:00.000Z',
    base: { name: 'raspios-lite-arm64', path: '/cache/base.img', sha256: 'b'.repeat(64), size: 1 << 30 },
    inputs: { inventorySha256: 'c'.repeat(64), templatesSha256: 'd'.repeat(64), secretsVersion: 1, secretsDigest: 'e'.repeat(12) },
    image: { path: `/build/${node}.img`, sha256: 'a'.repeat(64), size: 1 << 30, compress: 'none', rawSha256: 'a'.repeat(64) },
    files: [{ target: 'boot', path: 'meta-data', mode: '0644', bytes: 60, secret: false, sha256: 'f'.repeat(64), digest: 'ffffffffffff' }],
  };
}

interface World {
  clock: FakeClock;
  kube: FakeKube;
  ports: RebuildPorts;
  log: string[];
  evidence: RebuildEvidence[];
  /** use-case calls in order: build, flash, netboot */
  steps: string[];
}

function world(inv: Inventory, o: { buildMs?: number; bootMs?: number } = {}): World {
  const clock = new FakeClock();
  const kube = new FakeKube(clock, inv);
  const log: string[] = [];
  const evidence: RebuildEvidence[] = [];
  const steps: string[] = [];
  const ports: RebuildPorts = {
    clock,
    kube,
    build: async (b) => {
      steps.push(`build ${b.node}`);
      clock.t += o.buildMs ?? 3 * MIN;
      return record(b.node, inv.nodes.find((n) => n.hostname === b.node)?.role === 'server' ? 'server' : 'agent');
    },
    flash: async (f): Promise<FlashOutcome> => {
      steps.push(`flash ${f.device} yes=${f.yes}`);
      clock.t += 2 * MIN;
      kube.reflash(f.record?.node ?? '', o.bootMs ?? 4 * MIN);
      return {
        image: f.image ?? '',
        verdict: { ok: true, device: f.device, description: `${f.device} 32 GB SD card`, warnings: [], refusals: [] } as unknown as FlashOutcome['verdict'],
        result: {
          device: f.device,
          image: f.image ?? '',
          bytes: 1 << 30,
          imageSha256: 'a'.repeat(64),
          writeMs: 90_000,
          verifyMs: 30_000,
          writeBytesPerSecond: 12e6,
          verify: { result: 'ok', readbackSha256: 'a'.repeat(64), files: [{ target: 'boot', path: 'meta-data', ok: true }] },
        },
      };
    },
    checkFlashTarget: async (c) => {
      steps.push(`confirm ${c.device} yes=${c.yes}`);
      return { device: c.device, description: `${c.device} 32 GB SD card` };
    },
    netboot: async (n): Promise<NetbootResult> => {
      steps.push(`netboot ${n.nodes?.join(',')}`);
      const node = n.nodes?.[0] ?? '';
      kube.reflash(node, o.bootMs ?? 4 * MIN);
      return {
        root: n.root,
        server: n.server ?? '',
        nodes: [{ node, serial: '4e1c0013', image: `/build/${node}.img`, tftpDir: `${n.root}/tftp/4e1c0013`, nfsDir: `${n.root}/nfs/${node}`, bootFiles: 12, rootfs: { entries: 100, files: 80, dirs: 15, symlinks: 5, hardlinks: 0, specials: 0, ms: 10 } }],
        skipped: [],
        files: [],
        shared: 'kept',
        removedStaging: [],
      };
    },
    previousNetbootServer: async () => '10.0.0.2',
    writeEvidence: async (_root, e) => {
      evidence.push(clone(e));
      return `/evidence/2026-12-01-rebuild-${e.node}`;
    },
  };
  return { clock, kube, ports, log, evidence, steps };
}

function options(inv: Inventory, w: World, node: string, over: Partial<RebuildOptions> = {}): RebuildOptions {
  return {
    inventory: inv,
    node,
    target: { mode: 'device', device: '/dev/sdz', yes: false, allowLoop: false },
    budgetMs: 60 * MIN,
    skipDrain: false,
    drainTimeoutMs: 5 * MIN,
    resetNodePassword: false,
    intervalMs: 5_000,
    buildDir: '/build',
    evidenceRoot: '/evidence',
    operator: 'tester',
    toolVersion: '0.1.0',
    cwd: '/',
    log: (l) => w.log.push(l),
    prompt: async () => '',
    ...over,
  };
}

const phaseStatus = (e: RebuildEvidence): Record<string, string> => Object.fromEntries(e.phases.map((p) => [p.name, p.status]));

describe('the drill as a list of named phases', () => {
  it('lists every phase of the evidence schema, in its order', () => {
    expect(DRILL_PHASES.map((p) => p.name)).toEqual(PHASES);
  });
});

describe('rebuild drill state machine (fake ports, no root)', () => {
  it('agent: cordon, drain, build, flash, rejoin on a new boot, uncordon — within budget', async () => {
    const inv = inventory();
    const w = world(inv);
    w.kube.pods = [pod({ name: 'web-1', namespace: 'apps', node: AGENT }) as V1Pod, pod({ name: 'svclb-1', namespace: 'kube-system', node: AGENT, owner: 'DaemonSet' }) as V1Pod];
    const { evidence } = await runRebuildDrill(options(inv, w, AGENT), w.ports);
    expect(evidence.verdict).toBe('pass');
    expect(phaseStatus(evidence)).toEqual({
      preflight: 'ok', cordon: 'ok', drain: 'ok', 'reset-node-password': 'skipped', build: 'ok', 'remove-node': 'skipped', flash: 'ok', netboot: 'skipped', rejoin: 'ok', uncordon: 'ok',
    });
    // confirmed once before anything changed; the flash itself does not ask again
    expect(w.steps).toEqual(['confirm /dev/sdz yes=false', `build ${AGENT}`, 'flash /dev/sdz yes=true']);
    expect(w.kube.calls.filter((c) => !c.startsWith('snapshot'))).toEqual([`read ${AGENT}`, `cordon ${AGENT}`, `pods ${AGENT}`, `evict apps/web-1`, `pods ${AGENT}`, `uncordon ${AGENT}`]);
    expect(evidence.drain?.evicted).toEqual(['apps/web-1']);
    expect(evidence.cordonAtEnd).toMatch(/^uncordoned by the drill/);
    expect(evidence.verify?.checks.find((c) => c.name === 'rebooted')?.status).toBe('pass');
    expect(w.kube.calls).not.toContain(`delete node ${AGENT}`);
    expect(w.evidence).toHaveLength(1);
  });

  it('server: deletes the old Node (and so its etcd member) after the build, before the card is written; the server registers afresh', async () => {
    const inv = inventory();
    const w = world(inv);
    expect(w.kube.etcdMembers.has(SERVER)).toBe(true);
    const { evidence } = await runRebuildDrill(options(inv, w, SERVER), w.ports);
    expect(w.kube.refused).toBeUndefined();
    expect(evidence.verdict).toBe('pass');
    expect(evidence.role).toBe('server');
    expect(phaseStatus(evidence)['remove-node']).toBe('ok');
    const order = w.kube.calls.filter((c) => /^(cordon|delete node|uncordon)/.test(c));
    expect(order).toEqual([`cordon ${SERVER}`, `delete node ${SERVER}`]);
    // the Node was deleted after the build and before the flash
    const removed = evidence.phases.find((p) => p.name === 'remove-node')!;
    const built = evidence.phases.find((p) => p.name === 'build')!;
    const flashed = evidence.phases.find((p) => p.name === 'flash')!;
    expect(Date.parse(removed.startedAt)).toBeGreaterThanOrEqual(Date.parse(built.endedAt));
    expect(Date.parse(removed.endedAt)).toBeLessThanOrEqual(Date.parse(flashed.startedAt));
    expect(evidence.verify?.checks.find((c) => c.name === 'rebooted')?.message).toMatch(/registered anew/);
    expect(phaseStatus(evidence).uncordon).toBe('skipped');
    expect(evidence.cordonAtEnd).toBe('schedulable (registered afresh)');
  });

  it('server: without the Node deletion the fake k3s refuses the rejoin ("duplicate node name found"), so the rule is what makes it pass', async () => {
    const inv = inventory();
    const w = world(inv);
    const realDelete = w.kube.deleteNode;
    w.kube.deleteNode = async (name) => {
      w.kube.calls.push(`delete node ${name} (ignored)`);
      return true;
    };
    const { evidence } = await runRebuildDrill(options(inv, w, SERVER, { budgetMs: 15 * MIN }), w.ports);
    expect(w.kube.refused).toMatch(/duplicate node name found/);
    expect(evidence.verdict).toBe('not-rejoined');
    w.kube.deleteNode = realDelete;
  });

  it('agent vs server on netboot: only the server\'s Node is deleted, before the export', async () => {
    const inv = inventory();
    for (const [node, deletes] of [[AGENT, false], [SERVER, true]] as const) {
      const w = world(inv);
      const { evidence } = await runRebuildDrill(options(inv, w, node, { target: { mode: 'netboot', root: '/srv/netboot' } }), w.ports);
      expect(evidence.verdict, node).toBe('pass');
      expect(phaseStatus(evidence).flash).toBe('skipped');
      expect(phaseStatus(evidence).netboot).toBe('ok');
      expect(w.kube.calls.includes(`delete node ${node}`), node).toBe(deletes);
      expect(w.steps).toEqual([`build ${node}`, `netboot ${node}`]);
    }
  });

  it('cordon failed: stops before building, writes the evidence, and throws the API error', async () => {
    const inv = inventory();
    const w = world(inv);
    w.kube.cordonFails = true;
    await expect(runRebuildDrill(options(inv, w, AGENT), w.ports)).rejects.toThrow(/forbidden/);
    const e = w.evidence[0]!;
    expect(e.verdict).toBe('aborted');
    expect(e.phases.map((p) => `${p.name}:${p.status}`)).toEqual(['preflight:ok', 'cordon:failed']);
    expect(w.steps).toEqual(['confirm /dev/sdz yes=false']);
    expect(e.cordonAtEnd).toBe('not cordoned by the drill');
    expect(e.reason).toMatch(/stopped in phase cordon/);
  });

  it('drain timeout: a PodDisruptionBudget that never allows the eviction stops the drill at the drain timeout, node left cordoned', async () => {
    const inv = inventory();
    const w = world(inv);
    w.kube.pods = [pod({ name: 'db-0', namespace: 'apps', node: AGENT, owner: 'StatefulSet' }) as V1Pod];
    w.kube.pdbBlocked.add('apps/db-0');
    const t0 = w.clock.t;
    await expect(runRebuildDrill(options(inv, w, AGENT, { drainTimeoutMs: 2 * MIN }), w.ports)).rejects.toThrow(/did not finish within 2m/);
    const e = w.evidence[0]!;
    expect(w.clock.t - t0).toBeGreaterThanOrEqual(2 * MIN);
    expect(e.phases.at(-1)).toMatchObject({ name: 'drain', status: 'failed' });
    expect(e.drain?.remaining).toEqual([{ pod: 'apps/db-0', reason: expect.stringMatching(/^eviction refused: Cannot evict pod/) }]);
    expect(w.steps).not.toContain(`build ${AGENT}`);
    expect(e.cordonAtEnd).toMatch(/^left cordoned: the drill stopped/);
  });

  it('over budget: the node comes back, but after the budget — verdict over-budget, no exception', async () => {
    const inv = inventory();
    // the build and the flash alone use up the budget; the node is back at the first look after it
    const w = world(inv, { buildMs: 58 * MIN, bootMs: 0 });
    const { evidence } = await runRebuildDrill(options(inv, w, AGENT, { budgetMs: 55 * MIN }), w.ports);
    expect(evidence.budget.exceeded).toBe(true);
    expect(evidence.verdict).toBe('over-budget');
    expect(evidence.ok).toBe(false);
  });

  it('rejoin with a stale boot id: the API keeps reporting the boot from before, so the drill does not pass; the node stays cordoned', async () => {
    const inv = inventory();
    const w = world(inv);
    w.kube.staleBoot = true;
    const { evidence } = await runRebuildDrill(options(inv, w, AGENT, { budgetMs: 20 * MIN }), w.ports);
    expect(evidence.verdict).toBe('not-rejoined');
    const rebooted = evidence.verify?.checks.find((c) => c.name === 'rebooted');
    expect(rebooted?.status).toBe('fail');
    expect(rebooted?.message).toMatch(/still the boot from before the rebuild/);
    expect(evidence.verify?.timedOut).toBe(true);
    expect(phaseStatus(evidence)).toMatchObject({ rejoin: 'failed', uncordon: 'skipped' });
    expect(evidence.cordonAtEnd).toMatch(/^left cordoned: the node did not come back/);
    expect(w.kube.calls).not.toContain(`uncordon ${AGENT}`);
  });

  it('API unreachable at the start: no cordon or drain, and says so; the build and flash still run', async () => {
    const inv = inventory();
    const w = world(inv);
    w.kube.unreachable = true;
    const run = runRebuildDrill(options(inv, w, AGENT, { budgetMs: 12 * MIN }), w.ports);
    const { evidence } = await run;
    expect(evidence.kube.reachableAtStart).toBe(false);
    expect(phaseStatus(evidence)).toMatchObject({ preflight: 'ok', cordon: 'skipped', drain: 'skipped', build: 'ok', flash: 'ok', rejoin: 'failed' });
    expect(evidence.notes.join('\n')).toMatch(/unreachable at the start/);
  });
});
