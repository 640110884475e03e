/**
 * The Kubernetes API stand-in (kube-api-standin.ts) extended for the rebuild drill: what
 * `kubectl cordon/drain` and k3s's node-password check do, on top of the GET routes verify uses.
 *   GET/PATCH/DELETE /api/v1/nodes/{name}                       read, cordon/uncordon (merge patch), delete
 *   GET /api/v1/pods?fieldSelector=spec.nodeName=X              pods on a node
 *   POST /api/v1/namespaces/{ns}/pods/{name}/eviction           201, pod gone after evictionDelayMs; 429 for `pdbBlocked`
 *   GET/DELETE /api/v1/namespaces/{ns}/secrets/{name}           e.g. kube-system/<node>.node-password.k3s
 * `down` drops every connection (an API that is not there). `simulateReflash` plays the node being
 * reflashed: once `trigger()` is true the node vanishes; `rejoinAfterMs` later it registers again
 * with a new bootID — unless k3s would reject it: its node-password Secret exists and the reflashed
 * node's password does not match (`passwordMatches: false`); then the old Node object comes back
 * as Ready=Unknown with the old boot, and stays so until the Secret is deleted.
 *
 * A server (a Node with the node-role.kubernetes.io/etcd label) is refused the same way while its
 * old Node object exists: k3s removes a server's etcd member only when its Node is deleted
 * (k3s-io/k3s pkg/etcd/member_controller.go, onRemove), and the reflashed server, whose etcd name
 * is `<node>-<new random suffix>`, is refused while a member of the same node name is there
 * (pkg/etcd/etcd.go, join: "duplicate node name found, please use a unique name for this node").
 */
import { randomUUID } from 'node:crypto';
import type { KubeApiStandin, StandinRoute } from './kube-api-standin.js';

type Obj = Record<string, unknown>;

const status = (code: number, reason: string, message: string): { status: number; body: unknown } => ({
  status: code,
  body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: code < 300 ? 'Success' : 'Failure', message, reason, code },
});

const meta = (o: Obj): { name?: string; namespace?: string; uid?: string } => (o['metadata'] ?? {}) as { name?: string; namespace?: string };

/** A pod on `node`, owned by a controller of kind `owner` (null: a bare pod), as the API lists it. */
export function pod(o: { name: string; namespace?: string; node: string; owner?: string | null; mirror?: boolean; phase?: string }): Obj {
  const owner = o.owner === undefined ? 'ReplicaSet' : o.owner;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: o.name,
      namespace: o.namespace ?? 'default',
      uid: randomUUID(),
      ...(owner === null ? {} : { ownerReferences: [{ apiVersion: owner === 'Node' ? 'v1' : 'apps/v1', kind: owner, name: `${o.name.replace(/-[a-z0-9]+$/, '')}`, uid: randomUUID(), controller: true, blockOwnerDeletion: true }] }),
      ...(o.mirror ? { annotations: { 'kubernetes.io/config.mirror': 'f1e2d3c4b5a69788', 'kubernetes.io/config.source': 'file' } } : {}),
    },
    spec: { nodeName: o.node, containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10' }] },
    status: { phase: o.phase ?? 'Running' },
  };
}

/** The Secret k3s keeps per node (its `hash` is a fake value here, for "never printed" checks). */
export function nodePasswordSecret(node: string, hash: string): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'k3s.cattle.io/node-password',
    metadata: { name: `${node}.node-password.k3s`, namespace: 'kube-system', labels: { 'node.kubernetes.io/name': node } },
    immutable: true,
    data: { hash: Buffer.from(hash).toString('base64') },
  };
}

export interface ReflashSimulation {
  node: string;
  /** true once the node has been reflashed / re-exported (checked every 50 ms and on every request) */
  trigger: () => boolean;
  /** how long after the trigger the reflashed node registers (Infinity: never) */
  rejoinAfterMs: number;
  /** does the reflashed node present the password the node-password Secret holds? (default true) */
  passwordMatches?: boolean;
  /** the Node object of a fresh registration (after the Node was deleted) */
  fresh: () => Obj;
}

export class RebuildStandin {
  pods: Obj[] = [];
  secrets: Obj[] = [];
  /** drop every connection */
  down = false;
  /** `ns/name` of pods whose eviction a PodDisruptionBudget refuses */
  readonly pdbBlocked = new Set<string>();
  evictionDelayMs = 150;
  /** what happened, in order: `cordon pi-cluster-3`, `evict default/web-1`, `node gone …`, … */
  readonly events: string[] = [];
  private timers: NodeJS.Timeout[] = [];

  constructor(readonly api: KubeApiStandin) {
    api.routes.push(this.route);
  }

  node(name: string): Obj | undefined {
    return this.api.nodes.find((n) => meta(n).name === name);
  }

  private secret(ns: string, name: string): Obj | undefined {
    return this.secrets.find((s) => meta(s).namespace === ns && meta(s).name === name);
  }

  private readonly route: StandinRoute = ({ method, path, query, body, authorized }) => {
    if (this.down) return 'drop';
    if (!authorized) return undefined;
    let m = /^\/api\/v1\/nodes\/([^/]+)$/.exec(path);
    if (m) {
      const name = decodeURIComponent(m[1] ?? '');
      const node = this.node(name);
      if (!node) return status(404, 'NotFound', `nodes "${name}" not found`);
      if (method === 'GET') return { status: 200, body: node };
      if (method === 'PATCH') {
        const spec = (node['spec'] ??= {}) as Obj;
        const want = (body as { spec?: { unschedulable?: boolean } } | undefined)?.spec?.unschedulable;
        if (typeof want !== 'boolean') return status(422, 'Invalid', 'the stand-in only patches spec.unschedulable');
        if (want) spec['unschedulable'] = true;
        else delete spec['unschedulable'];
        this.events.push(`${want ? 'cordon' : 'uncordon'} ${name}`);
        return { status: 200, body: node };
      }
      if (method === 'DELETE') {
        this.api.nodes = this.api.nodes.filter((n) => n !== node);
        this.deletedNodes.add(name);
        this.events.push(`delete node ${name}`);
        return status(200, 'Success', `node ${name} deleted`);
      }
    }
    if (path === '/api/v1/pods' && method === 'GET') {
      const sel = /^spec\.nodeName=(.+)$/.exec(query.get('fieldSelector') ?? '');
      const items = this.pods.filter((p) => !sel || (p['spec'] as { nodeName?: string }).nodeName === sel[1]);
      return { status: 200, body: { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '48300' }, items } };
    }
    m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/eviction$/.exec(path);
    if (m && method === 'POST') {
      const id = `${m[1]}/${m[2]}`;
      const p = this.pods.find((x) => `${meta(x).namespace}/${meta(x).name}` === id);
      if (!p) return status(404, 'NotFound', `pods "${m[2]}" not found`);
      if (this.pdbBlocked.has(id)) return status(429, 'TooManyRequests', "Cannot evict pod as it would violate the pod's disruption budget.");
      this.events.push(`evict ${id}`);
      (p['metadata'] as Obj)['deletionTimestamp'] = new Date().toISOString();
      this.later(this.evictionDelayMs, () => {
        this.pods = this.pods.filter((x) => x !== p);
      });
      return status(201, 'Success', 'evicted');
    }
    m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/.exec(path);
    if (m) {
      const [ns, name] = [m[1] ?? '', m[2] ?? ''];
      const s = this.secret(ns, name);
      if (!s) return status(404, 'NotFound', `secrets "${name}" not found`);
      if (method === 'GET') return { status: 200, body: s };
      if (method === 'DELETE') {
        this.secrets = this.secrets.filter((x) => x !== s);
        this.events.push(`delete secret ${ns}/${name}`);
        return status(200, 'Success', `secret ${name} deleted`);
      }
    }
    return undefined;
  };

  private readonly deletedNodes = new Set<string>();

  private later(ms: number, fn: () => void): void {
    this.timers.push(setTimeout(fn, ms));
  }

  /** Plays the reflash of `sim.node` (see the file comment). */
  simulateReflash(sim: ReflashSimulation): void {
    let stash: Obj | undefined;
    let triggeredAt: number | undefined;
    let done = false;
    const tick = (): void => {
      if (done) return;
      if (triggeredAt === undefined) {
        if (!sim.trigger()) return;
        triggeredAt = Date.now();
        stash = this.node(sim.node);
        this.api.nodes = this.api.nodes.filter((n) => n !== stash);
        this.events.push(`node gone ${sim.node}`);
      }
      if (Date.now() - triggeredAt < sim.rejoinAfterMs) return;
      // k3s pkg/etcd/etcd.go join(): the old etcd member of this node name is still there
      const isServer = (stash?.['metadata'] as { labels?: Record<string, string> } | undefined)?.labels?.['node-role.kubernetes.io/etcd'] === 'true';
      if (stash && isServer && !this.deletedNodes.has(sim.node)) {
        if (!this.node(sim.node)) {
          this.api.nodes.push(staleUnknown(stash));
          this.events.push(`etcd join refused ${sim.node}: duplicate node name found, please use a unique name for this node`);
        }
        return;
      }
      const secretName = `${sim.node}.node-password.k3s`;
      if (this.secret('kube-system', secretName) && sim.passwordMatches === false) {
        // k3s: "Node password rejected, duplicate hostname or contents of '/etc/rancher/node/password' may not match server node-passwd entry"
        if (stash && !this.deletedNodes.has(sim.node) && !this.node(sim.node)) {
          this.api.nodes.push(staleUnknown(stash));
          this.events.push(`node password rejected ${sim.node}`);
        }
        return;
      }
      done = true;
      const old = this.node(sim.node) ?? (this.deletedNodes.has(sim.node) ? undefined : stash);
      this.api.nodes = this.api.nodes.filter((n) => meta(n).name !== sim.node);
      this.api.nodes.push(old ? rebooted(old, sim.fresh()) : registeredAnew(sim.fresh()));
      if (!this.secret('kube-system', secretName)) this.secrets.push(nodePasswordSecret(sim.node, `$1:${randomUUID()}`));
      this.events.push(`node back ${sim.node}`);
    };
    const timer = setInterval(tick, 50);
    this.timers.push(timer);
    this.api.routes.unshift(() => {
      tick();
      return undefined;
    });
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }
}

/** The kept Node object after a new boot: same object (uid, spec — so a cordon stays), new bootID, Ready. */
function rebooted(old: Obj, fresh: Obj): Obj {
  const copy = JSON.parse(JSON.stringify(old)) as Obj;
  copy['status'] = JSON.parse(JSON.stringify(fresh['status'])) as Obj;
  ((copy['status'] as Obj)['nodeInfo'] as Obj)['bootID'] = randomUUID();
  return copy;
}

/** A new Node object (the old one was deleted): new uid, new boot, no cordon. */
function registeredAnew(fresh: Obj): Obj {
  const copy = JSON.parse(JSON.stringify(fresh)) as Obj;
  (copy['metadata'] as Obj)['uid'] = randomUUID();
  ((copy['status'] as Obj)['nodeInfo'] as Obj)['bootID'] = randomUUID();
  return copy;
}

/** The kept Node object while the kubelet cannot register: Ready=Unknown, the old boot. */
function staleUnknown(old: Obj): Obj {
  const copy = JSON.parse(JSON.stringify(old)) as Obj;
  const conditions = ((copy['status'] as Obj)['conditions'] ?? []) as Obj[];
  for (const c of conditions) {
    if (c['type'] === 'Ready') Object.assign(c, { status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.' });
  }
  return copy;
}
