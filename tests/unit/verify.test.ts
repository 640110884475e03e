import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/core/errors.js';
import { baselineFromManifests } from '../../src/core/verify/baseline.js';
import { type CheckResult, type ClusterSnapshot, runChecks, summarize } from '../../src/core/verify/checks.js';
import { unknownNodes } from '../../src/core/node-selection.js';
import { formatDuration, parseDuration } from '../../src/core/verify/duration.js';
import { pollChecks } from '../../src/core/verify/poll.js';
import { renderProgress, renderTable } from '../../src/core/verify/report.js';
import { k3sNode } from '../helpers/kube-api-standin.js';
import { healthySnapshot, verifyInventory } from '../helpers/verify-fixtures.js';

const MANIFESTS = join(import.meta.dirname, '..', '..', 'manifests');
const baseline = baselineFromManifests(
  readdirSync(MANIFESTS).filter((f) => f.endsWith('.yaml')).map((f) => ({ path: `manifests/${f}`, contents: readFileSync(join(MANIFESTS, f), 'utf8') })),
);
const inv = verifyInventory();
const failing = (rs: CheckResult[]) => rs.filter((r) => r.status === 'fail');
const asNode = (o: Record<string, unknown>) => JSON.parse(JSON.stringify(o)) as V1Node;
function withNode(s: ClusterSnapshot, name: string, replace: V1Node | null): ClusterSnapshot {
  const nodes = s.nodes.filter((n) => n.metadata?.name !== name);
  return { ...s, nodes: replace ? [...nodes, replace] : nodes };
}

describe('runChecks', () => {
  it('passes every check on a healthy cluster, with one result per node and check', () => {
    const rs = runChecks(inv, healthySnapshot(inv, baseline), { baseline });
    expect(failing(rs)).toEqual([]);
    expect(summarize(rs).ok).toBe(true);
    for (const n of inv.nodes) {
      expect(rs.filter((r) => r.node === n.hostname).map((r) => r.name)).toEqual(['registered', 'ready', 'role', 'k3s-version', 'arch', 'labels', 'taints']);
    }
    expect(rs.filter((r) => r.name === 'baseline-helmcharts')).toHaveLength(baseline.helmCharts.length);
    expect(rs.find((r) => r.name === 'baseline-namespaces')?.message).toBe(baseline.namespaces.map((n) => n.name).join(', '));
  });

  it('names the node and both versions when the kubelet differs from the pin', () => {
    const s = withNode(healthySnapshot(inv, baseline), 'pi-cluster-3', asNode(k3sNode({ name: 'pi-cluster-3', role: 'agent', ip: '10.0.0.13', kubeletVersion: 'v1.32.1+k3s1', labels: inv.nodes[2]!.labels })));
    expect(failing(runChecks(inv, s, { baseline }))).toEqual([
      { name: 'k3s-version', node: 'pi-cluster-3', status: 'fail', message: 'kubelet reports v1.32.1+k3s1, inventory pins v1.33.5+k3s1' },
    ]);
  });

  it('warns (does not fail) on versions when the inventory only names a channel', () => {
    const channelInv = verifyInventory({ version: undefined, channel: 'stable' });
    const rs = runChecks(channelInv, healthySnapshot(inv, baseline), { baseline });
    expect(rs.filter((r) => r.name === 'k3s-version').every((r) => r.status === 'warn')).toBe(true);
    expect(summarize(rs).ok).toBe(true);
  });

  it('reports NotReady with the kubelet reason, and a missing node as not registered', () => {
    let s = withNode(healthySnapshot(inv, baseline), 'pi-cluster-2', asNode(k3sNode({ name: 'pi-cluster-2', role: 'agent', ip: '10.0.0.12', ready: 'Unknown', labels: inv.nodes[1]!.labels })));
    s = withNode(s, 'pi-cluster-4', null);
    const f = failing(runChecks(inv, s, { baseline }));
    expect(f.map((r) => `${r.node} ${r.name}`)).toEqual(['pi-cluster-2 ready', 'pi-cluster-4 registered']);
    expect(f[0]!.message).toMatch(/^Ready=Unknown .*NodeStatusUnknown: Kubelet stopped posting node status/);
    expect(f[1]!.message).toContain('not registered');
  });

  it('fails the role check for a server without its control-plane label and an agent that joined as a server', () => {
    let s = withNode(healthySnapshot(inv, baseline), 'pi-cluster-1', asNode(k3sNode({ name: 'pi-cluster-1', role: 'server', ip: '10.0.0.11', labels: inv.nodes[0]!.labels, withoutLabels: ['node-role.kubernetes.io/control-plane'] })));
    s = withNode(s, 'pi-cluster-2', asNode(k3sNode({ name: 'pi-cluster-2', role: 'server', ip: '10.0.0.12', labels: inv.nodes[1]!.labels })));
    const f = failing(runChecks(inv, s, { baseline }));
    expect(f.map((r) => `${r.node} ${r.name}`)).toEqual(['pi-cluster-1 role', 'pi-cluster-2 role']);
    expect(f[0]!.message).toContain('node-role.kubernetes.io/control-plane is missing');
    expect(f[1]!.message).toContain('joined as a server');
  });

  it('checks arch, labels and taints against the inventory', () => {
    const n4 = inv.nodes[3]!;
    let s = withNode(healthySnapshot(inv, baseline), 'pi-cluster-3', asNode(k3sNode({ name: 'pi-cluster-3', role: 'agent', ip: '10.0.0.13', arch: 'amd64', labels: { 'pi-image.io/pool': 'gpu' } })));
    s = withNode(s, 'pi-cluster-4', asNode(k3sNode({ name: 'pi-cluster-4', role: 'agent', ip: '10.0.0.14', labels: n4.labels, taints: [{ key: 'dedicated', value: 'storage', effect: 'NoSchedule' }] })));
    const f = failing(runChecks(inv, s, { baseline }));
    expect(f.map((r) => `${r.node} ${r.name}: ${r.message}`)).toEqual([
      'pi-cluster-3 arch: label kubernetes.io/arch=amd64, nodeInfo.architecture=amd64, expected arm64',
      'pi-cluster-3 labels: pi-image.io/pool=gpu, expected general',
      'pi-cluster-4 taints: missing dedicated=storage:PreferNoSchedule; node has dedicated=storage:NoSchedule instead',
    ]);
  });

  it('ignores Kubernetes-managed taints but warns about undeclared ones', () => {
    const s = withNode(healthySnapshot(inv, baseline), 'pi-cluster-2', asNode(k3sNode({ name: 'pi-cluster-2', role: 'agent', ip: '10.0.0.12', labels: inv.nodes[1]!.labels, taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }, { key: 'experiment', effect: 'NoExecute' }] })));
    const taints = runChecks(inv, s).find((r) => r.node === 'pi-cluster-2' && r.name === 'taints')!;
    expect(taints).toMatchObject({ status: 'warn', message: expect.stringContaining('experiment:NoExecute') });
    expect(taints.message).not.toContain('unschedulable');
  });

  it('warns about nodes the inventory does not know, without failing', () => {
    const s = healthySnapshot(inv, baseline);
    s.nodes.push(asNode(k3sNode({ name: 'pi-cluster-9', role: 'agent', ip: '10.0.0.19' })));
    const rs = runChecks(inv, s, { baseline });
    expect(rs.filter((r) => r.name === 'unknown-nodes')).toEqual([expect.objectContaining({ node: 'pi-cluster-9', status: 'warn' })]);
    expect(summarize(rs)).toMatchObject({ ok: true, warn: 1, fail: 0 });
  });

  it('fails the baseline for a missing namespace, a missing or failed HelmChart, a version drift, and a cluster without the CRD', () => {
    const s = healthySnapshot(inv, baseline);
    const [first, second] = baseline.helmCharts;
    s.namespaces = s.namespaces.filter((n) => n.name !== 'logging');
    s.helmCharts = s.helmCharts!.filter((c) => c.name !== first!.name).map((c) => (c.name === second!.name ? { ...c, version: '0.0.1', conditions: [{ type: 'Failed', status: 'True', message: 'Error: timed out waiting for the condition' }] } : c));
    const f = failing(runChecks(inv, s, { baseline }));
    expect(f.map((r) => r.name)).toEqual(['baseline-namespaces', 'baseline-helmcharts', 'baseline-helmcharts']);
    expect(f[0]!.message).toBe('logging missing (declared in manifests/00-namespaces.yaml)');
    expect(f[1]!.message).toContain(`kube-system/${first!.name} missing`);
    expect(f[2]!.message).toContain(`version 0.0.1, manifests/ pins ${second!.version}`);
    expect(f[2]!.message).toContain('helm install failed: Error: timed out');
    const noCrd = failing(runChecks(inv, { ...healthySnapshot(inv, baseline), helmCharts: null }, { baseline }));
    expect(noCrd).toEqual([expect.objectContaining({ name: 'baseline-helmcharts', message: expect.stringContaining('helm.cattle.io/v1') })]);
  });

  it('with --node checks only that node and skips cluster-wide checks', () => {
    const s = withNode(healthySnapshot(inv, baseline), 'pi-cluster-2', null);
    const rs = runChecks(inv, s, { baseline, nodes: ['pi-cluster-3'] });
    expect(new Set(rs.map((r) => r.node))).toEqual(new Set(['pi-cluster-3']));
    expect(summarize(rs).ok).toBe(true);
    expect(unknownNodes(inv, ['pi-cluster-3', 'pi-cluster-7'])).toEqual(['pi-cluster-7']);
  });

  it('finds a node registered under another name through its k3s.io/hostname annotation', () => {
    const s = healthySnapshot(inv, baseline);
    const n = s.nodes.find((x) => x.metadata?.name === 'pi-cluster-3')!;
    n.metadata!.name = 'pi-cluster-3.lan';
    const rs = runChecks(inv, s, { baseline });
    expect(rs.find((r) => r.node === 'pi-cluster-3' && r.name === 'registered')?.message).toBe('registered as pi-cluster-3.lan');
    expect(rs.some((r) => r.name === 'unknown-nodes' && r.status === 'warn')).toBe(false);
  });
});

describe('report rendering', () => {
  it('aligns the table and lists failures in the progress line', () => {
    const rs: CheckResult[] = [
      { name: 'ready', node: 'pi-cluster-3', status: 'fail', message: 'Ready=False' },
      { name: 'unknown-nodes', status: 'pass', message: 'every cluster node is in the inventory' },
    ];
    const lines = renderTable(rs).trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    const col = lines[0]!.indexOf('CHECK');
    expect(lines[1]!.indexOf('ready')).toBe(col);
    expect(lines[2]!.indexOf('unknown-nodes')).toBe(col);
    expect(renderProgress(rs, '9m55s')).toBe('waiting: 1 check failing (pi-cluster-3 ready); 9m55s left\n');
  });
});

describe('durations', () => {
  it.each([['10m', 600_000], ['90s', 90_000], ['1h30m', 5_400_000], ['500ms', 500], ['2', 2000], ['1m5s', 65_000]])('%s = %i ms', (t, ms) => {
    expect(parseDuration(t, '--timeout')).toBe(ms);
  });
  it.each(['', '10x', 'm', '5 m', '-1s'])('rejects %j naming the flag', (t) => {
    expect(() => parseDuration(t, '--interval')).toThrow(InputError);
    expect(() => parseDuration(t, '--interval')).toThrow(/--interval/);
  });
  it('formats remaining time', () => {
    expect(formatDuration(95_000)).toBe('1m35s');
    expect(formatDuration(3_600_000)).toBe('1h0m0s');
    expect(formatDuration(400)).toBe('1s');
  });
});

describe('pollChecks (fake clock)', () => {
  const ok: CheckResult = { name: 'ready', node: 'a', status: 'pass', message: 'Ready' };
  const bad: CheckResult = { name: 'ready', node: 'a', status: 'fail', message: 'Ready=False' };
  function clock() {
    let t = 0;
    return { now: () => t, sleep: async (ms: number) => void (t += ms), advance: (ms: number) => void (t += ms) };
  }

  it('without --wait runs exactly one round', async () => {
    const c = clock();
    const out = await pollChecks({ ...c, snapshot: async () => [bad], isRetryable: () => true, evaluate: (s) => s }, { timeoutMs: 60_000, intervalMs: 5000, wait: false });
    expect(out).toEqual({ results: [bad], rounds: 1, timedOut: false });
  });

  it('with --wait polls until everything passes, retrying a down API', async () => {
    const c = clock();
    const seq: (CheckResult[] | Error)[] = [new Error('down'), [bad], [bad], [ok]];
    const rounds: string[] = [];
    const out = await pollChecks(
      {
        ...c,
        snapshot: async () => {
          const next = seq.shift()!;
          if (next instanceof Error) throw next;
          return next;
        },
        isRetryable: () => true,
        evaluate: (s) => s,
        onRound: (r) => rounds.push(r.error ? 'error' : `fail@${r.remainingMs}`),
      },
      { timeoutMs: 60_000, intervalMs: 5000, wait: true },
    );
    expect(out).toEqual({ results: [ok], rounds: 4, timedOut: false });
    expect(rounds).toEqual(['error', 'fail@55000', 'fail@50000']);
  });

  it('gives up at the deadline with the last results, and never sleeps past it', async () => {
    const c = clock();
    const sleeps: number[] = [];
    const out = await pollChecks(
      { now: c.now, sleep: async (ms) => { sleeps.push(ms); await c.sleep(ms); }, snapshot: async () => [bad], isRetryable: () => true, evaluate: (s) => s },
      { timeoutMs: 12_000, intervalMs: 5000, wait: true },
    );
    expect(out).toMatchObject({ timedOut: true, rounds: 3, results: [bad] });
    expect(sleeps).toEqual([5000, 5000, 2000]);
  });

  it('a round the deadline cuts short after an answered round gives that round\'s results, not an API error', async () => {
    const c = clock();
    const cut = new Error('no answer within the deadline');
    let calls = 0;
    const out = await pollChecks(
      {
        ...c,
        snapshot: async (ms) => {
          calls += 1;
          if (calls === 1) return [bad];
          c.advance(ms); // a loaded machine: the second snapshot runs until the deadline aborts it
          throw cut;
        },
        isRetryable: () => false,
        evaluate: (s) => s,
      },
      { timeoutMs: 8000, intervalMs: 200, wait: true },
    );
    expect(out).toEqual({ results: [bad], rounds: 2, timedOut: true });
    // an API that went down before the deadline is still reported as down
    const down = new Error('ECONNREFUSED');
    const seq: (CheckResult[] | Error)[] = [[bad], down, down, down];
    await expect(
      pollChecks(
        {
          ...clock(),
          snapshot: async () => {
            const next = seq.shift() ?? down;
            if (next instanceof Error) throw next;
            return next;
          },
          isRetryable: () => true,
          evaluate: (s: CheckResult[]) => s,
        },
        { timeoutMs: 3000, intervalMs: 1000, wait: true },
      ),
    ).rejects.toBe(down);
  });

  it('stops at once on an error that is not retryable, and rethrows the last error at the deadline', async () => {
    const c = clock();
    const fatal = new Error('401');
    await expect(pollChecks({ ...c, snapshot: async () => { throw fatal; }, isRetryable: () => false, evaluate: (s: CheckResult[]) => s }, { timeoutMs: 60_000, intervalMs: 1000, wait: true })).rejects.toBe(fatal);
    const down = new Error('ECONNREFUSED');
    await expect(pollChecks({ ...clock(), snapshot: async () => { throw down; }, isRetryable: () => true, evaluate: (s: CheckResult[]) => s }, { timeoutMs: 3000, intervalMs: 1000, wait: true })).rejects.toBe(down);
  });
});
