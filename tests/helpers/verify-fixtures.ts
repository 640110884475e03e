/**
 * Fixtures for the verify tests: an Inventory built directly (shaped like nodes/), and helpers that
 * dress a KubeApiStandin up as the healthy cluster that inventory describes.
 */
import type { V1Node } from '@kubernetes/client-node';
import type { Inventory, NodeModel } from '../../src/core/model.js';
import { clusterModel } from './cluster-model.js';
import type { Baseline, ClusterSnapshot } from '../../src/core/verify/checks.js';
import { helmChart, k3sNode, type KubeApiStandin, namespace } from './kube-api-standin.js';

function node(hostname: string, role: 'server' | 'agent', ip: string, extra: Partial<NodeModel> = {}): NodeModel {
  return {
    hostname,
    role,
    clusterInit: role === 'server',
    board: role === 'server' ? 'pi5' : 'pi4',
    boot: 'sd',
    address: { mode: 'static', address: ip, prefix: 24 },
    labels: role === 'agent' ? { 'pi-image.io/pool': 'general' } : {},
    taints: [],
    k3sExtra: {},
    source: `nodes/${hostname}.yaml`,
    ...extra,
  };
}

export function verifyInventory(over: { version?: string | undefined; channel?: string } = {}): Inventory {
  const k3s: Inventory['cluster']['k3s'] = { serverUrl: 'https://10.0.0.11:6443' };
  const version = 'version' in over ? over.version : 'v1.33.5+k3s1';
  if (version !== undefined) k3s.version = version;
  if (over.channel !== undefined) k3s.channel = over.channel;
  return {
    dir: 'nodes',
    cluster: clusterModel({ k3s }),
    nodes: [
      node('pi-cluster-1', 'server', '10.0.0.11', { labels: { 'pi-image.io/rack': 'shelf-a' } }),
      node('pi-cluster-2', 'agent', '10.0.0.12'),
      node('pi-cluster-3', 'agent', '10.0.0.13'),
      node('pi-cluster-4', 'agent', '10.0.0.14', { taints: [{ key: 'dedicated', value: 'storage', effect: 'PreferNoSchedule' }] }),
    ],
  };
}

/** k3s-shaped Node objects for every inventory node, as a healthy cluster reports them. */
export function healthyNodes(inv: Inventory): Record<string, unknown>[] {
  return inv.nodes.map((n) =>
    k3sNode({
      name: n.hostname,
      role: n.role,
      ip: n.address.mode === 'static' ? n.address.address : '10.0.0.200',
      etcd: inv.nodes.some((x) => x.clusterInit),
      kubeletVersion: inv.cluster.k3s.version ?? 'v1.33.5+k3s1',
      labels: n.labels,
      taints: n.taints,
    }),
  );
}

export function baselineObjects(baseline: Baseline): { namespaces: Record<string, unknown>[]; helmCharts: Record<string, unknown>[] } {
  const system = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];
  return {
    namespaces: [...system, ...baseline.namespaces.map((n) => n.name)].map((n) => namespace(n)),
    helmCharts: [
      helmChart({ name: 'traefik', chart: 'https://%{KUBERNETES_API}%/static/charts/traefik-34.2.1+up34.2.0.tgz' }),
      ...baseline.helmCharts.map((c) => helmChart({ name: c.name, namespace: c.namespace, chart: c.chart, ...(c.version ? { version: c.version } : {}), ...(c.targetNamespace ? { targetNamespace: c.targetNamespace } : {}) })),
    ],
  };
}

/** Fills the stand-in with the healthy cluster the inventory + baseline describe. */
export function makeHealthy(api: KubeApiStandin, inv: Inventory, baseline: Baseline): void {
  api.nodes = healthyNodes(inv);
  const b = baselineObjects(baseline);
  api.namespaces = b.namespaces;
  api.helmCharts = b.helmCharts;
}

/** The same as a ClusterSnapshot (for the pure checks; JSON round trip like the API client). */
export function healthySnapshot(inv: Inventory, baseline: Baseline): ClusterSnapshot {
  const b = baselineObjects(baseline);
  return {
    nodes: JSON.parse(JSON.stringify(healthyNodes(inv))) as V1Node[],
    namespaces: b.namespaces.map((n) => ({ name: (n['metadata'] as { name: string }).name, phase: 'Active' })),
    helmCharts: b.helmCharts.map((c) => {
      const m = c['metadata'] as { name: string; namespace: string };
      const s = c['spec'] as { chart: string; version?: string; targetNamespace?: string };
      return { name: m.name, namespace: m.namespace, chart: s.chart, ...(s.version ? { version: s.version } : {}), ...(s.targetNamespace ? { targetNamespace: s.targetNamespace } : {}), conditions: [] };
    }),
  };
}
