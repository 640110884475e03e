/**
 * Cluster verification as pure functions: the validated Inventory + a snapshot of what the
 * Kubernetes API reported → a list of named check results. No I/O, no clock: the adapter
 * (src/adapters/kube.ts) takes the snapshot, src/core/verify/poll.ts decides when to stop.
 *
 * Checks (names are stable: scripts and the JSON output rely on them):
 *   registered, ready, role, k3s-version, arch, labels, taints   — one per inventory node
 *   unknown-nodes                                               — one warning per node the inventory lacks
 *   baseline-namespaces, baseline-helmcharts                    — what manifests/ declares is applied
 */
import type { V1Node } from '@kubernetes/client-node';
import type { Inventory, NodeModel, Taint } from '../model.js';

export type CheckStatus = 'pass' | 'fail' | 'warn';

export interface CheckResult {
  name: string;
  /** inventory hostname (per-node checks) or the unknown node's name */
  node?: string;
  status: CheckStatus;
  message: string;
}

/** What the cluster reports about one `helm.cattle.io/v1` HelmChart. */
export interface HelmChartState {
  name: string;
  namespace: string;
  chart?: string;
  version?: string;
  targetNamespace?: string;
  /** status.conditions as reported by k3s's helm-controller (type/status/reason/message) */
  conditions: { type: string; status: string; reason?: string; message?: string }[];
  /** status.jobName: the install job the helm-controller created */
  jobName?: string;
}

export interface NamespaceState {
  name: string;
  /** status.phase: Active | Terminating */
  phase?: string;
}

export interface ClusterSnapshot {
  nodes: V1Node[];
  namespaces: NamespaceState[];
  /** null when the API does not serve helm.cattle.io/v1 (not a k3s cluster, or helm-controller disabled) */
  helmCharts: HelmChartState[] | null;
}

/** A HelmChart that manifests/ declares (see baselineFromManifests). */
export interface ExpectedHelmChart {
  name: string;
  namespace: string;
  chart: string;
  version?: string;
  targetNamespace?: string;
  /** manifest file it came from, for messages */
  source: string;
}

export interface Baseline {
  namespaces: { name: string; source: string }[];
  helmCharts: ExpectedHelmChart[];
}

export interface VerifyOptions {
  /** only these inventory nodes; cluster-wide checks (unknown-nodes, baseline-*) are skipped */
  nodes?: readonly string[];
  /** what manifests/ declares; undefined = baseline not checked (inventory has manifests: false) */
  baseline?: Baseline;
}

export const CONTROL_PLANE_LABEL = 'node-role.kubernetes.io/control-plane';
export const MASTER_LABEL = 'node-role.kubernetes.io/master';
export const ETCD_LABEL = 'node-role.kubernetes.io/etcd';
export const ARCH_LABEL = 'kubernetes.io/arch';
export const EXPECTED_ARCH = 'arm64';

/** Taint keys Kubernetes manages itself (not-ready, unreachable, pressure…): never "unexpected". */
const SYSTEM_TAINT_PREFIXES = ['node.kubernetes.io/', 'node.cloudprovider.kubernetes.io/', 'ToBeDeletedByClusterAutoscaler'];

function nodeName(n: V1Node): string {
  return n.metadata?.name ?? '';
}

/** The host name k3s recorded (annotation `k3s.io/hostname`; also accepted as a label). */
function k3sHostname(n: V1Node): string | undefined {
  return n.metadata?.annotations?.['k3s.io/hostname'] ?? n.metadata?.labels?.['k3s.io/hostname'];
}

/** The cluster node for an inventory hostname: metadata.name, else k3s's recorded hostname (--node-name set). */
function findNode(snapshot: ClusterSnapshot, hostname: string): V1Node | undefined {
  return snapshot.nodes.find((n) => nodeName(n) === hostname) ?? snapshot.nodes.find((n) => k3sHostname(n) === hostname);
}

function result(name: string, node: string | undefined, status: CheckStatus, message: string): CheckResult {
  return node === undefined ? { name, status, message } : { name, node, status, message };
}

function checkReady(inv: NodeModel, node: V1Node): CheckResult {
  const cond = node.status?.conditions?.find((c) => c.type === 'Ready');
  if (!cond) return result('ready', inv.hostname, 'fail', 'node reports no Ready condition yet (kubelet still starting?)');
  if (cond.status === 'True') return result('ready', inv.hostname, 'pass', 'Ready');
  const why = [cond.reason, cond.message].filter((s) => s !== undefined && s !== '').join(': ');
  const since = cond.lastTransitionTime ? ` since ${new Date(cond.lastTransitionTime).toISOString()}` : '';
  const state = cond.status === 'Unknown' ? 'Ready=Unknown (kubelet stopped reporting)' : `Ready=${cond.status}`;
  const unschedulable = node.spec?.unschedulable ? '; node is cordoned' : '';
  return result('ready', inv.hostname, 'fail', `${state}${why ? ` (${why})` : ''}${since}${unschedulable}`);
}

function checkRole(inv: NodeModel, node: V1Node, etcdCluster: boolean): CheckResult {
  const labels = node.metadata?.labels ?? {};
  const problems: string[] = [];
  if (inv.role === 'server') {
    const cp = labels[CONTROL_PLANE_LABEL];
    if (cp !== 'true') {
      problems.push(cp === undefined ? `label ${CONTROL_PLANE_LABEL} is missing` : `label ${CONTROL_PLANE_LABEL}=${cp}, expected true`);
    }
    if (etcdCluster && labels[ETCD_LABEL] !== 'true') {
      problems.push(`label ${ETCD_LABEL}=true is missing (embedded etcd server)`);
    }
    return problems.length === 0
      ? result('role', inv.hostname, 'pass', `server (${CONTROL_PLANE_LABEL}=true${etcdCluster ? `, ${ETCD_LABEL}=true` : ''})`)
      : result('role', inv.hostname, 'fail', `inventory says server but ${problems.join('; ')} — did it join as an agent?`);
  }
  const present = [CONTROL_PLANE_LABEL, MASTER_LABEL, ETCD_LABEL].filter((l) => l in labels);
  return present.length === 0
    ? result('role', inv.hostname, 'pass', 'agent (no control-plane labels)')
    : result('role', inv.hostname, 'fail', `inventory says agent but node carries ${present.join(', ')} — it joined as a server`);
}

function checkVersion(inventory: Inventory, inv: NodeModel, node: V1Node): CheckResult {
  const kubelet = node.status?.nodeInfo?.kubeletVersion;
  const pinned = inventory.cluster.k3s.version;
  if (pinned === undefined) {
    const channel = inventory.cluster.k3s.channel ?? 'stable';
    return result('k3s-version', inv.hostname, 'warn', `inventory follows channel ${channel} (no pinned version); kubelet reports ${kubelet ?? 'nothing'}`);
  }
  if (kubelet === pinned) return result('k3s-version', inv.hostname, 'pass', kubelet);
  return result('k3s-version', inv.hostname, 'fail', `kubelet reports ${kubelet ?? 'no version'}, inventory pins ${pinned}`);
}

function checkArch(inv: NodeModel, node: V1Node): CheckResult {
  const label = node.metadata?.labels?.[ARCH_LABEL];
  const info = node.status?.nodeInfo?.architecture;
  const problems: string[] = [];
  if (label !== EXPECTED_ARCH) problems.push(`label ${ARCH_LABEL}=${label ?? '(missing)'}`);
  if (info !== EXPECTED_ARCH) problems.push(`nodeInfo.architecture=${info ?? '(missing)'}`);
  return problems.length === 0
    ? result('arch', inv.hostname, 'pass', EXPECTED_ARCH)
    : result('arch', inv.hostname, 'fail', `${problems.join(', ')}, expected ${EXPECTED_ARCH}`);
}

function checkLabels(inv: NodeModel, node: V1Node): CheckResult {
  const labels = node.metadata?.labels ?? {};
  const wanted = Object.entries(inv.labels).sort(([a], [b]) => a.localeCompare(b));
  if (wanted.length === 0) return result('labels', inv.hostname, 'pass', 'inventory expects no extra labels');
  const problems = wanted
    .filter(([k, v]) => labels[k] !== v)
    .map(([k, v]) => (labels[k] === undefined ? `${k}=${v} missing` : `${k}=${labels[k]}, expected ${v}`));
  return problems.length === 0
    ? result('labels', inv.hostname, 'pass', wanted.map(([k, v]) => `${k}=${v}`).join(', '))
    : result('labels', inv.hostname, 'fail', problems.join('; '));
}

function taintText(t: { key: string; value?: string; effect: string }): string {
  return `${t.key}${t.value ? `=${t.value}` : ''}:${t.effect}`;
}

function checkTaints(inv: NodeModel, node: V1Node): CheckResult {
  const actual = node.spec?.taints ?? [];
  const same = (w: Taint, a: { key: string; value?: string; effect: string }): boolean =>
    a.key === w.key && (a.value ?? '') === w.value && a.effect === w.effect;
  const missing = inv.taints.filter((w) => !actual.some((a) => same(w, a)));
  const unexpected = actual.filter(
    (a) => !inv.taints.some((w) => same(w, a)) && !SYSTEM_TAINT_PREFIXES.some((p) => a.key.startsWith(p)),
  );
  if (missing.length > 0) {
    const extra = unexpected.length > 0 ? `; node has ${unexpected.map(taintText).join(', ')} instead` : '';
    return result('taints', inv.hostname, 'fail', `missing ${missing.map(taintText).join(', ')}${extra}`);
  }
  if (unexpected.length > 0) {
    return result('taints', inv.hostname, 'warn', `node has taints the inventory does not declare: ${unexpected.map(taintText).join(', ')}`);
  }
  return result('taints', inv.hostname, 'pass', inv.taints.length === 0 ? 'no taints expected, none set' : inv.taints.map(taintText).join(', '));
}

function checkBaselineNamespaces(baseline: Baseline, snapshot: ClusterSnapshot): CheckResult {
  const want = baseline.namespaces;
  if (want.length === 0) return result('baseline-namespaces', undefined, 'pass', 'manifests/ declares no namespaces');
  const problems: string[] = [];
  for (const ns of want) {
    const have = snapshot.namespaces.find((n) => n.name === ns.name);
    if (!have) problems.push(`${ns.name} missing (declared in ${ns.source})`);
    else if (have.phase !== undefined && have.phase !== 'Active') problems.push(`${ns.name} is ${have.phase}`);
  }
  return problems.length === 0
    ? result('baseline-namespaces', undefined, 'pass', want.map((n) => n.name).join(', '))
    : result('baseline-namespaces', undefined, 'fail', problems.join('; '));
}

function checkBaselineCharts(baseline: Baseline, snapshot: ClusterSnapshot): CheckResult[] {
  const charts = snapshot.helmCharts;
  if (charts === null) {
    return [
      result(
        'baseline-helmcharts',
        undefined,
        baseline.helmCharts.length === 0 ? 'warn' : 'fail',
        'the API does not serve helm.cattle.io/v1 HelmCharts: is this k3s with its helm-controller enabled (no --disable-helm-controller)?',
      ),
    ];
  }
  if (baseline.helmCharts.length === 0) return [result('baseline-helmcharts', undefined, 'pass', 'manifests/ declares no HelmCharts')];
  return baseline.helmCharts.map((want) => {
    const id = `${want.namespace}/${want.name}`;
    const have = charts.find((c) => c.name === want.name && c.namespace === want.namespace);
    if (!have) {
      return result('baseline-helmcharts', undefined, 'fail', `${id} missing (declared in ${want.source}; k3s applies /var/lib/rancher/k3s/server/manifests on the servers)`);
    }
    const problems: string[] = [];
    if (have.chart !== undefined && have.chart !== want.chart) problems.push(`chart ${have.chart}, manifests/ says ${want.chart}`);
    if (want.version !== undefined && have.version !== want.version) {
      problems.push(`version ${have.version ?? '(unpinned)'}, manifests/ pins ${want.version}`);
    }
    const failed = have.conditions.find((c) => c.type === 'Failed' && c.status === 'True');
    if (failed) problems.push(`helm install failed${failed.message ? `: ${failed.message}` : ''}${have.jobName ? ` (job ${have.jobName})` : ''}`);
    return problems.length === 0
      ? result('baseline-helmcharts', undefined, 'pass', `${id} ${want.chart}${want.version ? `@${want.version}` : ''}`)
      : result('baseline-helmcharts', undefined, 'fail', `${id}: ${problems.join('; ')}`);
  });
}

/**
 * Runs every check. Throws nothing: an unknown `--node` is the caller's InputError (see
 * assertKnownNodes in src/core/node-selection.ts). Results come in a stable order: per inventory node (inventory order, checks in
 * the order listed above), then unknown nodes (by name), then the baseline.
 */
export function runChecks(inventory: Inventory, snapshot: ClusterSnapshot, opts: VerifyOptions = {}): CheckResult[] {
  const only = opts.nodes && opts.nodes.length > 0 ? new Set(opts.nodes) : undefined;
  const etcdCluster = inventory.nodes.some((n) => n.clusterInit);
  const out: CheckResult[] = [];
  for (const inv of inventory.nodes) {
    if (only && !only.has(inv.hostname)) continue;
    const node = findNode(snapshot, inv.hostname);
    if (!node) {
      out.push(
        result('registered', inv.hostname, 'fail', `not registered with the cluster (no Node ${inv.hostname}): not booted yet, join failing, or wrong hostname; \`pi-image status ${inv.hostname}\` shows what its first boot is doing`),
      );
      continue;
    }
    out.push(result('registered', inv.hostname, 'pass', nodeName(node) === inv.hostname ? 'registered' : `registered as ${nodeName(node)}`));
    out.push(checkReady(inv, node));
    out.push(checkRole(inv, node, etcdCluster));
    out.push(checkVersion(inventory, inv, node));
    out.push(checkArch(inv, node));
    out.push(checkLabels(inv, node));
    out.push(checkTaints(inv, node));
  }
  if (only) return out;

  const known = new Set(inventory.nodes.map((n) => n.hostname));
  const unknown = snapshot.nodes
    .filter((n) => !known.has(nodeName(n)) && !known.has(k3sHostname(n) ?? ''))
    .map(nodeName)
    .sort();
  for (const name of unknown) {
    out.push(result('unknown-nodes', name, 'warn', `node ${name} is in the cluster but not in the inventory (add nodes/${name}.yaml or \`kubectl delete node ${name}\`)`));
  }
  if (unknown.length === 0) out.push(result('unknown-nodes', undefined, 'pass', 'every cluster node is in the inventory'));

  if (opts.baseline) {
    out.push(checkBaselineNamespaces(opts.baseline, snapshot));
    out.push(...checkBaselineCharts(opts.baseline, snapshot));
  }
  return out;
}

export interface CheckSummary {
  pass: number;
  fail: number;
  warn: number;
  /** true when nothing failed (warnings do not fail verify) */
  ok: boolean;
}

export function summarize(results: readonly CheckResult[]): CheckSummary {
  const count = (s: CheckStatus): number => results.filter((r) => r.status === s).length;
  const fail = count('fail');
  return { pass: count('pass'), fail, warn: count('warn'), ok: fail === 0 };
}
