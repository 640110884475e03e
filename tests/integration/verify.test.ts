/**
 * `pi-image verify` end to end, in-process (runCli), against a Kubernetes API STAND-IN
 * (tests/helpers/kube-api-standin.ts: HTTPS on 127.0.0.1 with real-shaped k3s objects, bearer token
 * checked) — not a real cluster. Inventory: the sample nodes/ via the real loader.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadInventory } from '../../src/app/inventory.js';
import type { Io } from '../../src/app/io.js';
import { runCli } from '../../src/cli.js';
import type { Inventory } from '../../src/core/model.js';
import { baselineFromManifests } from '../../src/core/verify/baseline.js';
import type { Baseline, CheckResult } from '../../src/core/verify/checks.js';
import { k3sNode, KubeApiStandin, makeSelfSignedCert, type TlsMaterial, writeKubeconfig } from '../helpers/kube-api-standin.js';
import { makeHealthy } from '../helpers/verify-fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const NODES = join(ROOT, 'nodes');
const TOKEN = 'K10standin-bearer-token-5f0c2d1e9a';

function capture(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => void out.push(t), err: (t) => void err.push(t), isTTY: false, env: { HOME: '/nonexistent-home', ...env }, cwd: ROOT };
  return { io, stdout: () => out.join(''), stderr: () => err.join('') };
}

interface JsonReport {
  ok: boolean;
  timedOut: boolean;
  error?: { category: string; exitCode: number; message: string; hint?: string };
  checks: CheckResult[];
  summary: { pass: number; fail: number; warn: number };
  rounds: number;
}

let tls: TlsMaterial;
let inv: Inventory;
let baseline: Baseline;
let dir: string;
let api: KubeApiStandin;
let kubeconfig: string;

beforeAll(async () => {
  tls = makeSelfSignedCert();
  inv = await loadInventory(NODES, { cwd: ROOT });
  const mdir = join(ROOT, 'manifests');
  baseline = baselineFromManifests(readdirSync(mdir).filter((f) => f.endsWith('.yaml')).map((f) => ({ path: f, contents: readFileSync(join(mdir, f), 'utf8') })));
  dir = mkdtempSync(join(tmpdir(), 'pi-image-verify-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeEach(async () => {
  api = new KubeApiStandin(TOKEN, tls);
  makeHealthy(api, inv, baseline);
  const url = await api.start();
  kubeconfig = writeKubeconfig(dir, { server: url, caPem: tls.certPem, token: TOKEN });
});
afterEach(async () => api.stop());

async function verify(args: string[], env?: NodeJS.ProcessEnv) {
  const c = capture(env);
  const code = await runCli(['verify', '-i', NODES, ...args], c.io);
  return { code, out: c.stdout(), err: c.stderr() };
}
async function verifyJson(args: string[] = []) {
  const r = await verify(['--kubeconfig', kubeconfig, '-o', 'json', ...args]);
  return { ...r, report: JSON.parse(r.out) as JsonReport };
}
const failing = (r: JsonReport) => r.checks.filter((c) => c.status === 'fail').map((c) => `${c.node ?? '-'} ${c.name}: ${c.message}`);
function replaceNode(name: string, over: Partial<Parameters<typeof k3sNode>[0]>): void {
  const n = inv.nodes.find((x) => x.hostname === name)!;
  const ip = n.address.mode === 'static' ? n.address.address : '10.0.0.200';
  api.nodes = api.nodes.map((o) =>
    (o['metadata'] as { name: string }).name === name ? k3sNode({ name, role: n.role, ip, labels: n.labels, taints: n.taints, ...over }) : o,
  );
}

describe('pi-image verify against the Kubernetes API stand-in', () => {
  it('healthy cluster: exit 0, table lists every node, token sent, no secret printed', async () => {
    const r = await verify(['--kubeconfig', kubeconfig]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    for (const n of inv.nodes) expect(r.out).toMatch(new RegExp(`ok\\s+${n.hostname}\\s+k3s-version\\s+${inv.cluster.k3s.version!.replace(/[.+]/g, '\\$&')}`));
    expect(r.out).toMatch(/^PASS: \d+ checks/m);
    expect(r.out).not.toContain(TOKEN);
    expect(api.requests.length).toBeGreaterThanOrEqual(3);
    expect(api.requests.every((q) => q.authorized)).toBe(true);
    expect(new Set(api.requests.map((q) => q.path))).toEqual(new Set(['/api/v1/nodes', '/api/v1/namespaces', '/apis/helm.cattle.io/v1/helmcharts']));
  });

  it('-v traces each API request and its status on stderr (the token never), stdout unchanged', async () => {
    const quiet = await verify(['--kubeconfig', kubeconfig]);
    const r = await verify(['--kubeconfig', kubeconfig, '-v']);
    expect(r.code).toBe(0);
    expect(r.out).toBe(quiet.out);
    expect(r.err).toMatch(/^\+ kube: GET https:\/\/127\.0\.0\.1:\d+\/api\/v1\/nodes$/m);
    expect(r.err).toMatch(/^\+ kube: ← 200$/m);
    expect(r.err).toMatch(/^\+ kube: .* on https:\/\/127\.0\.0\.1:\d+: ok, [\d.]+ s$/m);
    expect(r.err).not.toContain(TOKEN);
  });

  it('JSON output carries every check and a summary', async () => {
    const { code, report } = await verifyJson();
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.summary.fail).toBe(0);
    expect(report.summary.pass).toBe(report.checks.length);
    expect(report.checks.filter((c) => c.name === 'baseline-helmcharts')).toHaveLength(baseline.helmCharts.length);
  });

  it('a NotReady node fails with exit 1 and the kubelet’s reason', async () => {
    replaceNode('pi-cluster-3', { ready: 'False' });
    const r = await verify(['--kubeconfig', kubeconfig]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/FAIL\s+pi-cluster-3\s+ready\s+Ready=False \(KubeletNotReady: container runtime network not ready/);
    expect(r.out).toMatch(/^FAIL: /m);
  });

  it('a missing node fails as not registered', async () => {
    api.nodes = api.nodes.filter((o) => (o['metadata'] as { name: string }).name !== 'pi-cluster-4');
    const { code, report } = await verifyJson();
    expect(code).toBe(1);
    expect(failing(report)).toEqual([expect.stringMatching(/^pi-cluster-4 registered: not registered with the cluster/)]);
  });

  it('a wrong kubelet version names node and both versions', async () => {
    replaceNode('pi-cluster-3', { kubeletVersion: 'v1.32.1+k3s1' });
    const r = await verify(['--kubeconfig', kubeconfig]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(new RegExp(`^FAIL\\s+pi-cluster-3\\s+k3s-version\\s+kubelet reports v1\\.32\\.1\\+k3s1, inventory pins ${inv.cluster.k3s.version!.replace(/[.+]/g, '\\$&')}$`, 'm'));
  });

  it('a server without its control-plane label fails the role check', async () => {
    replaceNode('pi-cluster-1', { withoutLabels: ['node-role.kubernetes.io/control-plane'] });
    const { code, report } = await verifyJson();
    expect(code).toBe(1);
    expect(failing(report)).toEqual([expect.stringMatching(/^pi-cluster-1 role: inventory says server but label node-role\.kubernetes\.io\/control-plane is missing/)]);
  });

  it('an extra node is a warning: exit 0', async () => {
    api.nodes.push(k3sNode({ name: 'pi-cluster-9', role: 'agent', ip: '10.0.0.19' }));
    const { code, report } = await verifyJson();
    expect(code).toBe(0);
    expect(report.summary.warn).toBe(1);
    expect(report.checks.find((c) => c.status === 'warn')).toMatchObject({ name: 'unknown-nodes', node: 'pi-cluster-9' });
  });

  it('--node checks just that node', async () => {
    replaceNode('pi-cluster-2', { ready: 'Unknown' });
    const { code, report } = await verifyJson(['--node', 'pi-cluster-3']);
    expect(code).toBe(0);
    expect(new Set(report.checks.map((c) => c.node))).toEqual(new Set(['pi-cluster-3']));
    const bad = await verifyJson(['--node', 'pi-cluster-2']);
    expect(bad.code).toBe(1);
    expect(failing(bad.report)).toEqual([expect.stringMatching(/^pi-cluster-2 ready: Ready=Unknown/)]);
    const unknown = await verify(['--kubeconfig', kubeconfig, '--node', 'pi-cluster-7']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('pi-cluster-7 is not in the inventory');
  });

  it('--wait turns green when the stand-in flips a node to Ready', async () => {
    replaceNode('pi-cluster-3', { ready: 'False' });
    setTimeout(() => replaceNode('pi-cluster-3', { ready: 'True' }), 700);
    const started = Date.now();
    const r = await verify(['--kubeconfig', kubeconfig, '--wait', '--interval', '200ms', '--timeout', '20s']);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^waiting: 1 check failing \(pi-cluster-3 ready\); \d+s left$/m);
    expect(r.out).toMatch(/^PASS: /m);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(api.requests.filter((q) => q.path === '/api/v1/nodes').length).toBeGreaterThanOrEqual(2);
  });

  it('--wait gives up at --timeout with exit 1', async () => {
    replaceNode('pi-cluster-3', { ready: 'False' });
    // a deadline a loaded machine can meet: the first snapshot alone may take seconds there (a
    // later round the deadline cuts short reports the last answered round, see core/verify/poll)
    const { code, report } = await verifyJson(['--wait', '--interval', '200ms', '--timeout', '20s']);
    expect(code).toBe(1);
    expect(report.rounds).toBeGreaterThanOrEqual(2);
    expect(report.timedOut).toBe(true);
    expect(report.error).toBeUndefined();
    expect(failing(report)).toEqual([expect.stringMatching(/^pi-cluster-3 ready:/)]);
  });

  it('--wait -o json with the API down the whole time still prints a report, the error inside (exit 5)', async () => {
    await api.stop();
    const r = await verify(['--kubeconfig', kubeconfig, '-o', 'json', '--wait', '--interval', '200ms', '--timeout', '3s']);
    expect(r.code).toBe(5);
    const report = JSON.parse(r.out) as JsonReport;
    expect(report).toMatchObject({ ok: false, timedOut: true, checks: [], error: { category: 'cluster', exitCode: 5 } });
    expect(report.rounds).toBeGreaterThanOrEqual(2);
    expect(report.error!.message).toMatch(/cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:\d+ .*\(ECONNREFUSED\)/);
    expect(report.error!.hint).toMatch(/is k3s running/);
    expect(r.err).toMatch(/^error: cannot reach/m);
  });

  it('a wrong token: 401 → exit 5 with a hint, token not printed', async () => {
    const bad = writeKubeconfig(dir, { server: `https://127.0.0.1:${new URL(readKubeServer(kubeconfig)).port}`, caPem: tls.certPem, token: 'wrong-token-abc123', context: 'bad' });
    const r = await verify(['--kubeconfig', bad]);
    expect(r.code).toBe(5);
    expect(r.err).toMatch(/rejected the credentials while listing .* \(401 Unauthorized\)/);
    expect(r.err).toMatch(/^hint: .*pi-image kubeconfig/m);
    expect(r.err + r.out).not.toContain('wrong-token-abc123');
    expect(api.requests.some((q) => !q.authorized)).toBe(true);
  });

  it('API down → exit 5 with a hint (and --wait keeps trying until the deadline)', async () => {
    await api.stop();
    const r = await verify(['--kubeconfig', kubeconfig]);
    expect(r.code).toBe(5);
    expect(r.err).toMatch(/cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:\d+ .*\(ECONNREFUSED\)/);
    expect(r.err).toMatch(/^hint: is k3s running/m);
    const w = await verify(['--kubeconfig', kubeconfig, '--wait', '--interval', '200ms', '--timeout', '4s']);
    expect(w.code).toBe(5);
    expect(w.err.match(/^waiting: cannot reach/gm)?.length ?? 0).toBeGreaterThanOrEqual(2);
  });

  it('a server certificate that does not match the kubeconfig CA → exit 5 TLS error', async () => {
    const other = makeSelfSignedCert('someone-else');
    const kc = writeKubeconfig(dir, { server: readKubeServer(kubeconfig), caPem: other.certPem, token: TOKEN, context: 'wrong-ca' });
    const r = await verify(['--kubeconfig', kc]);
    expect(r.code).toBe(5);
    expect(r.err).toMatch(/TLS verification of https:\/\/127\.0\.0\.1:\d+ failed/);
  });

  it('finds the kubeconfig through $KUBECONFIG; a missing one is a clear error', async () => {
    const ok = await verify([], { KUBECONFIG: `${join(dir, 'nope.yaml')}:${kubeconfig}` });
    expect(ok.code).toBe(0);
    const none = await verify([]);
    expect(none.code).toBe(3);
    expect(none.err).toContain('no kubeconfig at /nonexistent-home/.kube/config');
    const ctx = await verify(['--kubeconfig', kubeconfig, '--context', 'elsewhere']);
    expect(ctx.code).toBe(2);
    expect(ctx.err).toContain('known contexts: pi-cluster');
  });
});

/** A peer on 127.0.0.1 that accepts TCP and then never answers, or answers with bytes that are not TLS. */
async function rawPeer(behaviour: 'silent' | 'garbage'): Promise<{ url: string; close: () => Promise<void>; accepted: () => number }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((s) => {
    accepted += 1;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    if (behaviour === 'garbage') s.write('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    accepted: () => accepted,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('verify against peers that are not a working API', () => {
  it('a silent peer (accepts TCP, never answers) ends at --timeout with a clear error; -o json says so', async () => {
    const peer = await rawPeer('silent');
    try {
      const kc = writeKubeconfig(dir, { server: peer.url, caPem: tls.certPem, token: TOKEN, context: 'silent' });
      const started = Date.now();
      const r = await verify(['--kubeconfig', kc, '-o', 'json', '--timeout', '4s']);
      expect(Date.now() - started).toBeLessThan(60_000);
      expect(peer.accepted()).toBeGreaterThanOrEqual(1);
      expect(r.code).toBe(5);
      const report = JSON.parse(r.out) as JsonReport;
      expect(report).toMatchObject({ ok: false, checks: [], error: { category: 'cluster', exitCode: 5 } });
      expect(report.error!.message).toMatch(/^the Kubernetes API at https:\/\/127\.0\.0\.1:\d+ \(context silent\) did not answer within 4 s while /);
      expect(r.err).toMatch(/^error: .*did not answer within 4 s/m);
    } finally {
      await peer.close();
    }
  });

  it('the process itself exits at the deadline: no socket is left holding it (--wait, silent peer)', async () => {
    const peer = await rawPeer('silent');
    try {
      const kc = writeKubeconfig(dir, { server: peer.url, caPem: tls.certPem, token: TOKEN, context: 'silent-proc' });
      const tsx = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
      const started = Date.now();
      const child = spawnSync(
        process.execPath,
        ['--import', tsx, join(ROOT, 'src/cli.ts'), 'verify', '-i', NODES, '--kubeconfig', kc, '--wait', '--interval', '500ms', '--timeout', '5s', '-o', 'json'],
        { cwd: ROOT, env: { ...process.env, HOME: '/nonexistent-home' }, encoding: 'utf8', timeout: 120_000 },
      );
      const elapsed = Date.now() - started;
      expect(child.signal, 'killed by the test\'s own 120 s guard: verify hung').toBeNull();
      expect(elapsed).toBeLessThan(60_000);
      expect(child.status).toBe(5);
      const report = JSON.parse(child.stdout) as JsonReport;
      expect(report).toMatchObject({ ok: false, timedOut: true, error: { exitCode: 5 } });
      expect(report.error!.message).toMatch(/did not answer within/);
    } finally {
      await peer.close();
    }
  });

  it('garbage on the API port is told apart from a CA mismatch', async () => {
    const peer = await rawPeer('garbage');
    try {
      const kc = writeKubeconfig(dir, { server: peer.url, caPem: tls.certPem, token: TOKEN, context: 'garbage' });
      const r = await verify(['--kubeconfig', kc, '--timeout', '30s']);
      expect(r.code).toBe(5);
      expect(r.err).toMatch(/^error: https:\/\/127\.0\.0\.1:\d+ did not answer with TLS while .*: whatever listens there is not the Kubernetes API$/m);
      expect(r.err).not.toMatch(/certificate-authority-data/);
      expect(r.err).toMatch(/^hint: check the address and port/m);
    } finally {
      await peer.close();
    }
  });
});

function readKubeServer(path: string): string {
  return /server: (\S+)/.exec(readFileSync(path, 'utf8'))![1]!;
}
