/**
 * The k3s stand-ins as a cluster on 127.0.0.1: the SERVER stand-in (tests/e2e/fixtures/
 * k3s-server-standin.py, run through k3s-standin.sh exactly as the e2e images bake it) and the
 * sample inventory's agents, as local processes with temp data dirs and the config.yaml, token
 * files and node passwords pi-image renders for them. Not a real k3s: this proves the stand-in
 * speaks and refuses what the cluster tier relies on, through pi-image's own verify command and
 * rebuild adapters, with the admin credential the server writes into its k3s.yaml.
 *
 * The processes stand in for arm64 boards (K3S_STANDIN_ARCH=arm64) and post Ready every 2 s; the
 * server's node grace period is 20 s (k3s: 50 s) so the NotReady case does not take a minute. Every
 * wait polls with limits of minutes: the suite must hold on a loaded machine.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type V1Node } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteNode, deleteSecret, evictPod, listPodsOnNode, readNode, secretExists, setUnschedulable } from '../../src/adapters/kube-drain.js';
import { type KubeTarget, loadKubeConfig, takeSnapshot } from '../../src/adapters/kube.js';
import { loadTemplates } from '../../src/adapters/templates.js';
import { loadInventory } from '../../src/app/inventory.js';
import type { Io } from '../../src/app/io.js';
import { runCli } from '../../src/cli.js';
import type { Inventory } from '../../src/core/model.js';
import { nodeIdentity, rejoinChecks } from '../../src/core/rebuild.js';
import { renderNodeFiles } from '../../src/core/render/node.js';
import { NODE_PATHS } from '../../src/core/render/paths.js';
import type { CheckResult } from '../../src/core/verify/checks.js';
import { k3sStandin } from '../e2e/fixtures/standins.js';
import { BUILD_YEAR, FAKE_SECRETS } from '../helpers/render-fixture.js';
import { REPO_ROOT, SAMPLE_DIR } from '../helpers/sample-inventory.js';

const MINUTES = 60_000;
const SERVER = 'pi-cluster-1';
const AGENTS = ['pi-cluster-2', 'pi-cluster-3', 'pi-cluster-4'];

let work = '';
let k3s = '';
let port = 0;
let inv: Inventory;
let kube: KubeTarget;
const procs = new Map<string, Node>();

/** A stand-in process (the k3s binary of one node) and everything it logged. */
class Node {
  child: ChildProcess;
  log = '';
  exit: number | null | undefined = undefined;
  constructor(
    readonly name: string,
    readonly role: 'server' | 'agent',
    readonly dir: string,
    env: Record<string, string>,
  ) {
    this.child = spawn(k3s, [role], {
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        K3S_CONFIG_FILE: join(dir, 'config.yaml'),
        K3S_STANDIN_REPORT: join(dir, 'report'),
        K3S_STANDIN_NODE_PASSWORD_FILE: join(dir, 'node-password'),
        K3S_STANDIN_ARCH: 'arm64',
        K3S_STANDIN_HEARTBEAT_SECONDS: '2',
        K3S_STANDIN_NODE_GRACE_SECONDS: '20',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const add = (b: Buffer): void => {
      this.log += b.toString('utf8');
    };
    this.child.stdout?.on('data', add);
    this.child.stderr?.on('data', add);
    this.child.on('exit', (code) => {
      this.exit = code;
    });
  }
  /** the log with logrus's quoting of `"` inside msg="…" undone */
  text(): string {
    return this.log.replaceAll('\\"', '"');
  }
  count(text: string): number {
    return this.text().split(text).length - 1;
  }
  async waitFor(what: string | RegExp, times = 1, limitMs = 3 * MINUTES): Promise<void> {
    await until(`${this.name}: ${String(what)} x${times}`, limitMs, () => (typeof what === 'string' ? this.count(what) : (this.text().match(new RegExp(what, 'g')) ?? []).length) >= times, () => this.log);
  }
  async waitExit(limitMs = 3 * MINUTES): Promise<number | null> {
    await until(`${this.name} exits`, limitMs, () => this.exit !== undefined, () => this.log);
    return this.exit ?? null;
  }
  async stop(): Promise<void> {
    if (this.exit !== undefined) return;
    this.child.kill('SIGTERM');
    await this.waitExit();
  }
}

async function until(what: string, limitMs: number, ok: () => boolean | Promise<boolean>, context: () => string = () => ''): Promise<void> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > limitMs) throw new Error(`timed out after ${limitMs / 1000} s waiting for ${what}\n${context().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function start(name: string, role: 'server' | 'agent', env: Record<string, string> = {}, dir = join(work, name)): Node {
  const p = new Node(name, role, dir, env);
  procs.set(`${name}:${p.child.pid}`, p);
  return p;
}

/** A free TCP port on 127.0.0.1. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

/** One HTTPS request to the stand-in, trusting its CA: status and body. */
function call(path: string, o: { auth?: string; method?: string; headers?: Record<string, string>; identity?: string } = {}): Promise<{ status: number; body: string }> {
  const ca = readFileSync(join(work, SERVER, 'data/server/tls/server-ca.crt'));
  // identity: a node's kubelet client certificate (<node>/data/agent/client-kubelet.crt)
  const tlsId = o.identity ? { cert: readFileSync(join(work, o.identity, 'data/agent/client-kubelet.crt')), key: readFileSync(join(work, o.identity, 'data/agent/client-kubelet.key')) } : {};
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: o.method ?? 'GET', ca, auth: o.auth, headers: o.headers, ...tlsId }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function verify(): Promise<{ code: number; report: { ok: boolean; checks: CheckResult[] }; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => void out.push(t), err: (t) => void err.push(t), isTTY: false, env: { HOME: join(work, 'home') }, cwd: REPO_ROOT };
  const code = await runCli(['verify', '-i', SAMPLE_DIR, '--kubeconfig', join(work, 'k3s.yaml'), '--wait', '--timeout', '5m', '--interval', '2s', '-o', 'json'], io);
  return { code, report: JSON.parse(out.join('')) as { ok: boolean; checks: CheckResult[] }, err: err.join('') };
}
const failing = (checks: CheckResult[]): string[] => checks.filter((c) => c.status === 'fail').map((c) => `${c.node ?? '-'} ${c.name}: ${c.message}`);

const ready = (n: V1Node | undefined): string | undefined => n?.status?.conditions?.find((c) => c.type === 'Ready')?.status;

async function nodeWhere(name: string, ok: (n: V1Node | undefined) => boolean, limitMs = 3 * MINUTES): Promise<V1Node | undefined> {
  let last: V1Node | undefined;
  await until(`node ${name}`, limitMs, async () => ok((last = await readNode(kube, name, 30_000))), () => JSON.stringify(last?.status?.conditions ?? null));
  return last;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pi-image-k3s-cluster-'));
  k3s = join(work, 'k3s');
  writeFileSync(k3s, k3sStandin(), { mode: 0o755 });
  port = await freePort();
  inv = await loadInventory(SAMPLE_DIR, { cwd: REPO_ROOT });
  const templates = await loadTemplates();
  // every node's config.yaml, token files and node password as pi-image renders them; only the
  // server address (127.0.0.1 and a free port), file locations and data dirs are changed
  for (const set of renderNodeFiles(inv, FAKE_SECRETS, templates, { buildYear: BUILD_YEAR })) {
    const d = join(work, set.node);
    mkdirSync(join(d, 'data/agent/images'), { recursive: true });
    writeFileSync(join(d, 'data/agent/images/k3s-airgap-images-arm64.tar.zst'), 'x');
    const file = (p: string): string | undefined => set.files.find((f) => f.path === p)?.contents;
    writeFileSync(join(d, 'token'), file(NODE_PATHS.tokenFile)!, { mode: 0o600 });
    if (file(NODE_PATHS.agentTokenFile) !== undefined) writeFileSync(join(d, 'agent-token'), file(NODE_PATHS.agentTokenFile)!, { mode: 0o600 });
    writeFileSync(join(d, 'node-password'), file(NODE_PATHS.nodePassword)!, { mode: 0o600 });
    let config = file(NODE_PATHS.k3sConfig)!
      .replace(inv.cluster.k3s.serverUrl, `https://127.0.0.1:${port}`)
      .replaceAll(NODE_PATHS.agentTokenFile, join(d, 'agent-token'))
      .replaceAll(NODE_PATHS.tokenFile, join(d, 'token'));
    config += `data-dir: ${join(d, 'data')}\n`;
    if (set.node === SERVER) {
      config += `bind-address: 127.0.0.1\nhttps-listen-port: ${port}\nwrite-kubeconfig: ${join(work, 'k3s.yaml')}\n`;
      // the manifests pi-image copies onto a server (the top-level *.yaml of manifests/)
      mkdirSync(join(d, 'data/server/manifests'), { recursive: true });
      for (const m of readdirSync(join(REPO_ROOT, 'manifests')).filter((f) => f.endsWith('.yaml'))) {
        copyFileSync(join(REPO_ROOT, 'manifests', m), join(d, 'data/server/manifests', m));
      }
    }
    writeFileSync(join(d, 'config.yaml'), config);
  }
});

afterAll(async () => {
  for (const p of procs.values()) await p.stop().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

describe('k3s server stand-in and agents on 127.0.0.1', () => {
  it('agents powered on before the server wait for it, then join; verify --wait passes with the inventory\'s roles, labels and taints', async () => {
    for (const a of AGENTS) start(a, 'agent', { K3S_STANDIN_BOOT_ID: randomUUID() });
    for (const a of AGENTS) {
      const p = [...procs.values()].find((x) => x.name === a)!;
      await p.waitFor(new RegExp(`Failed to validate connection to cluster at https://127\\.0\\.0\\.1:${port}: Get "https://127\\.0\\.0\\.1:${port}/cacerts": dial tcp 127\\.0\\.0\\.1:${port}: connect: connection refused`), 2);
      expect(p.exit).toBeUndefined();
    }
    const server = start(SERVER, 'server');
    await server.waitFor('k3s stand-in: server running');
    const sdir = join(work, SERVER, 'data/server');
    // the token file as k3s writes it: K10<sha256 of the /cacerts body>::server:<token>
    const cacerts = await call('/cacerts');
    expect(cacerts.status).toBe(200);
    const hash = createHash('sha256').update(cacerts.body).digest('hex');
    expect(readFileSync(join(sdir, 'token'), 'utf8')).toBe(`K10${hash}::server:${FAKE_SECRETS.clusterToken}\n`);
    expect(readFileSync(join(sdir, 'agent-token'), 'utf8')).toBe(`K10${hash}::node:${FAKE_SECRETS.agentToken}\n`);
    expect(statSync(join(sdir, 'token')).mode & 0o777).toBe(0o600);
    const kubeconfigText = readFileSync(join(work, 'k3s.yaml'), 'utf8');
    expect(statSync(join(work, 'k3s.yaml')).mode & 0o777).toBe(0o600);
    expect(kubeconfigText).toContain(`server: https://127.0.0.1:${port}`);
    expect(kubeconfigText).toMatch(/client-certificate-data: \S+/);
    kube = loadKubeConfig({ path: join(work, 'k3s.yaml'), source: '--kubeconfig' });
    for (const a of AGENTS) await [...procs.values()].find((x) => x.name === a)!.waitFor('k3s stand-in: agent running');

    const r = await verify();
    expect(failing(r.report.checks), r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.report.ok).toBe(true);
    const checks = (node: string, name: string) => r.report.checks.find((c) => c.node === node && c.name === name);
    expect(checks(SERVER, 'role')?.message).toContain('node-role.kubernetes.io/control-plane=true');
    for (const n of inv.nodes.filter((x) => x.taints.length > 0)) {
      expect(checks(n.hostname, 'taints')?.status).toBe('pass');
      for (const t of n.taints) expect(checks(n.hostname, 'taints')?.message).toContain(`${t.key}${t.value ? `=${t.value}` : ''}:${t.effect}`);
    }
    expect(inv.nodes.some((x) => x.taints.length > 0)).toBe(true);
    expect(r.report.checks.filter((c) => c.name === 'ready').map((c) => `${c.node}:${c.status}`).sort()).toEqual([SERVER, ...AGENTS].map((n) => `${n}:pass`));
    const server1 = await readNode(kube, SERVER, 30_000);
    expect(server1?.metadata?.labels?.['node-role.kubernetes.io/master']).toBe('true');
    expect(server1?.metadata?.labels?.['node-role.kubernetes.io/etcd']).toBe('true');
    expect(server1?.status?.nodeInfo?.kubeletVersion).toBe(inv.cluster.k3s.version);
    // what the join script asks on the node: `k3s kubectl --kubeconfig <data-dir>/agent/kubelet.kubeconfig get node NAME`
    const kubectl = spawn(k3s, ['kubectl', '--kubeconfig', join(work, 'pi-cluster-2/data/agent/kubelet.kubeconfig'), 'get', 'node', 'pi-cluster-2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let kout = '';
    kubectl.stdout.on('data', (b: Buffer) => (kout += b.toString()));
    const kcode = await new Promise<number | null>((r2) => kubectl.on('exit', r2));
    expect(kcode).toBe(0);
    expect(kout).toMatch(/^pi-cluster-2 Ready <none> /m);
  });

  it('refuses what k3s refuses: no credentials 403 and a wrong password 401 on the supervisor, anything unauthenticated 401 on the API', async () => {
    expect(await call('/ping')).toEqual({ status: 200, body: 'pong' });
    const none = await call('/v1-k3s/config');
    expect(none.status).toBe(403);
    expect(JSON.parse(none.body)).toMatchObject({ kind: 'Status', message: 'forbidden', code: 403 });
    const wrong = await call('/v1-k3s/config', { auth: 'node:not-the-token' });
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body)).toMatchObject({ kind: 'Status', reason: 'Unauthorized', message: 'not authorized' });
    // server credentials do not open agent routes, agent credentials do not open server routes
    expect((await call('/v1-k3s/config', { auth: `server:${FAKE_SECRETS.clusterToken}` })).status).toBe(403);
    expect((await call('/db/info', { auth: `node:${FAKE_SECRETS.agentToken}` })).status).toBe(403);
    expect((await call('/v1-k3s/config', { auth: `node:${FAKE_SECRETS.agentToken}` })).status).toBe(200);
    // the kubelet certificate routes need the node headers
    const noName = await call('/v1-k3s/client-kubelet.crt', { method: 'POST', auth: `node:${FAKE_SECRETS.agentToken}` });
    expect(noName.status).toBe(400);
    expect(JSON.parse(noName.body).message).toBe('node name not set');
    // a node's own client certificate cannot ask for another node's kubelet certificates
    const other = await call('/v1-k3s/client-kubelet.crt', { method: 'POST', identity: 'pi-cluster-2', headers: { 'K3s-Node-Name': 'pi-cluster-3', 'K3s-Node-Password': 'x' } });
    expect(other.status).toBe(400);
    expect(JSON.parse(other.body).message).toBe('header node name does not match auth node name');
    // with it the node may read nodes, but not change another node, nor read Secrets
    expect((await call('/api/v1/nodes', { identity: 'pi-cluster-2' })).status).toBe(200);
    expect((await call('/api/v1/nodes/pi-cluster-3', { method: 'PATCH', identity: 'pi-cluster-2', headers: { 'Content-Type': 'application/merge-patch+json' } })).status).toBe(403);
    expect((await call('/api/v1/namespaces/kube-system/secrets/pi-cluster-3.node-password.k3s', { identity: 'pi-cluster-2' })).status).toBe(403);
    for (const path of ['/api/v1/nodes', '/version', '/apis/helm.cattle.io/v1/helmcharts']) {
      const r = await call(path);
      expect(r.status, path).toBe(401);
      expect((await call(path, { auth: `node:${FAKE_SECRETS.agentToken}` })).status, path).toBe(401);
    }
  });

  it('an agent with a wrong token gets 401 and keeps retrying as k3s does; with the right token it joins', async () => {
    const d = join(work, 'pi-cluster-9');
    mkdirSync(join(d, 'data/agent/images'), { recursive: true });
    writeFileSync(join(d, 'data/agent/images/k3s-airgap-images-arm64.tar.zst'), 'x');
    writeFileSync(join(d, 'token'), 'stale-agent-token-from-before-a-rotation\n');
    writeFileSync(join(d, 'config.yaml'), `server: https://127.0.0.1:${port}\ntoken-file: ${join(d, 'token')}\nnode-name: pi-cluster-9\ndata-dir: ${join(d, 'data')}\nnode-label:\n  - pi-image.io/pool=spare\n`);
    const stale = start('pi-cluster-9', 'agent');
    await stale.waitFor('Waiting to retrieve agent configuration; server is not ready: failed to retrieve configuration from server: not authorized', 2);
    expect(stale.exit).toBeUndefined();
    expect(await readNode(kube, 'pi-cluster-9', 30_000)).toBeUndefined();
    // no password file yet: the agent made one, as k3s does (16 random bytes, hex)
    expect(readFileSync(join(d, 'node-password'), 'utf8')).toMatch(/^[0-9a-f]{32}\n$/);
    expect(statSync(join(d, 'node-password')).mode & 0o777).toBe(0o600);
    await stale.stop();
    // the full token from the server's agent-token file (CA hash checked)
    copyFileSync(join(work, SERVER, 'data/server/agent-token'), join(d, 'token'));
    const fixed = start('pi-cluster-9', 'agent');
    await fixed.waitFor('k3s stand-in: agent running');
    expect(fixed.log).not.toContain('Cluster CA certificate is not trusted');
    const n = await nodeWhere('pi-cluster-9', (x) => ready(x) === 'True');
    expect(n?.metadata?.labels?.['pi-image.io/pool']).toBe('spare');
  });

  it('the same node name with another password is refused until the Node is deleted', async () => {
    const first = [...procs.values()].find((p) => p.name === 'pi-cluster-9' && p.exit === undefined)!;
    const before = await readNode(kube, 'pi-cluster-9', 30_000);
    expect(await secretExists(kube, 'kube-system', 'pi-cluster-9.node-password.k3s', 30_000)).toBe(true);
    await first.stop();
    // a wiped machine under the same name: another node password
    writeFileSync(join(work, 'pi-cluster-9', 'node-password'), `${'ab'.repeat(16)}\n`, { mode: 0o600 });
    const again = start('pi-cluster-9', 'agent');
    await again.waitFor(
      `Waiting to retrieve agent configuration; server is not ready: ${join(work, 'pi-cluster-9', 'data/agent/serving-kubelet.crt')}: Node password rejected, duplicate hostname or contents of '${join(work, 'pi-cluster-9', 'node-password')}' may not match server node-passwd entry, try enabling a unique node name with the --with-node-id flag`,
      2,
    );
    expect(again.exit).toBeUndefined();
    expect((await readNode(kube, 'pi-cluster-9', 30_000))?.metadata?.uid).toBe(before?.metadata?.uid);
    const server = [...procs.values()].find((p) => p.name === SERVER && p.exit === undefined)!;
    expect(server.log).toContain('unable to verify password for node pi-cluster-9: hash does not match');
    // kubectl delete node: the node-password Secret goes with it, and the agent's next try joins
    expect(await deleteNode(kube, 'pi-cluster-9', 30_000)).toBe(true);
    expect(await secretExists(kube, 'kube-system', 'pi-cluster-9.node-password.k3s', 30_000)).toBe(false);
    await again.waitFor('k3s stand-in: agent running');
    const after = await nodeWhere('pi-cluster-9', (x) => ready(x) === 'True');
    expect(after?.metadata?.uid).not.toBe(before?.metadata?.uid);
    await again.stop();
    expect(await deleteNode(kube, 'pi-cluster-9', 30_000)).toBe(true);
  });

  it('a second server with a member\'s node name is refused (no duplicate etcd member), a wrong server token too; under its own name it joins', async () => {
    const d = join(work, 'second-server');
    mkdirSync(join(d, 'data/agent/images'), { recursive: true });
    writeFileSync(join(d, 'data/agent/images/k3s-airgap-images-arm64.tar.zst'), 'x');
    writeFileSync(join(d, 'token'), `${FAKE_SECRETS.clusterToken}-not\n`);
    writeFileSync(join(d, 'config.yaml'), `server: https://127.0.0.1:${port}\ntoken-file: ${join(d, 'token')}\nnode-name: ${SERVER}\ndata-dir: ${join(d, 'data')}\n`);
    const wrong = start('second-server', 'server', {}, d);
    expect(await wrong.waitExit()).toBe(1);
    expect(wrong.log).toContain('level=fatal msg="starting kubernetes: preparing server: failed to bootstrap cluster data: not authorized"');
    copyFileSync(join(work, SERVER, 'data/server/token'), join(d, 'token'));
    const dup = start('second-server', 'server', {}, d);
    expect(await dup.waitExit()).toBe(1);
    expect(dup.log).toContain('level=fatal msg="etcd cluster join failed: duplicate node name found, please use a unique name for this node"');
    expect((await readNode(kube, SERVER, 30_000))?.metadata?.labels?.['node-role.kubernetes.io/control-plane']).toBe('true');

    // under a name of its own it joins: an etcd member, a Node with the server roles; deleting the Node removes the member
    writeFileSync(join(d, 'config.yaml'), readFileSync(join(d, 'config.yaml'), 'utf8').replace(`node-name: ${SERVER}`, 'node-name: pi-cluster-5'));
    const second = start('second-server', 'server', {}, d);
    await second.waitFor('k3s stand-in: server running');
    const members = async (): Promise<string[]> =>
      (JSON.parse((await call('/db/info', { auth: `server:${FAKE_SECRETS.clusterToken}` })).body) as { members: { name: string }[] }).members.map((m) => m.name);
    expect(await members()).toEqual(expect.arrayContaining([expect.stringMatching(/^pi-cluster-1-[0-9a-f]{8}$/), expect.stringMatching(/^pi-cluster-5-[0-9a-f]{8}$/)]));
    const joined = await nodeWhere('pi-cluster-5', (x) => ready(x) === 'True');
    for (const role of ['control-plane', 'master', 'etcd']) expect(joined?.metadata?.labels?.[`node-role.kubernetes.io/${role}`], role).toBe('true');
    await second.stop();
    expect(await deleteNode(kube, 'pi-cluster-5', 30_000)).toBe(true);
    expect((await members()).some((m) => m.startsWith('pi-cluster-5-'))).toBe(false);
  });

  it('a restarted server keeps its nodes and node passwords; the agents recover by themselves', async () => {
    const uids = new Map<string, string | undefined>();
    for (const n of [SERVER, ...AGENTS]) uids.set(n, (await readNode(kube, n, 30_000))?.metadata?.uid);
    const token = readFileSync(join(work, SERVER, 'data/server/token'), 'utf8');
    const old = [...procs.values()].find((p) => p.name === SERVER && p.exit === undefined)!;
    await old.stop();
    const agent2 = [...procs.values()].find((p) => p.name === 'pi-cluster-2' && p.exit === undefined)!;
    await agent2.waitFor(/Error updating node status, will retry: Patch "https:\/\/127\.0\.0\.1:\d+\/api\/v1\/nodes\/pi-cluster-2\/status": dial tcp 127\.0\.0\.1:\d+: connect: connection refused/);
    const server = start(SERVER, 'server');
    await server.waitFor('k3s stand-in: server running');
    expect(readFileSync(join(work, SERVER, 'data/server/token'), 'utf8')).toBe(token);
    kube = loadKubeConfig({ path: join(work, 'k3s.yaml'), source: '--kubeconfig' });
    for (const n of [SERVER, ...AGENTS]) {
      expect((await readNode(kube, n, 30_000))?.metadata?.uid, n).toBe(uids.get(n));
      expect(await secretExists(kube, 'kube-system', `${n}.node-password.k3s`, 30_000), n).toBe(true);
    }
    const r = await verify();
    expect(failing(r.report.checks), r.err).toEqual([]);
    expect(r.code).toBe(0);
  });

  it('an agent that stops posting goes Ready=Unknown after the grace period, and is Ready again once it is back', async () => {
    const a3 = [...procs.values()].find((p) => p.name === 'pi-cluster-3' && p.exit === undefined)!;
    await a3.stop();
    const gone = await nodeWhere('pi-cluster-3', (x) => ready(x) === 'Unknown');
    expect(gone?.status?.conditions?.find((c) => c.type === 'Ready')?.message).toBe('Kubelet stopped posting node status.');
    expect(gone?.spec?.taints?.map((t) => `${t.key}:${t.effect}`)).toContain('node.kubernetes.io/unreachable:NoSchedule');
    const back = start('pi-cluster-3', 'agent', { K3S_STANDIN_BOOT_ID: randomUUID() });
    await back.waitFor('k3s stand-in: agent running');
    const n = await nodeWhere('pi-cluster-3', (x) => ready(x) === 'True');
    expect(n?.spec?.taints ?? []).toEqual([]);
  });

  it('cordon, drain, reset-node-password, rejoin with a new boot and uncordon, as rebuild does them', async () => {
    const core = kube.kc.makeApiClient(CoreV1Api);
    // a managed workload pod placed on pi-cluster-4
    await core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name: 'web-7d9f8-abcde', labels: { app: 'web' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9f8', uid: randomUUID(), controller: true }] },
        spec: { nodeName: 'pi-cluster-4', containers: [{ name: 'web', image: 'nginx' }] },
      },
    });
    const before = nodeIdentity((await readNode(kube, 'pi-cluster-4', 30_000))!);
    await setUnschedulable(kube, 'pi-cluster-4', true, 30_000);
    const cordoned = await readNode(kube, 'pi-cluster-4', 30_000);
    expect(cordoned?.spec?.unschedulable).toBe(true);
    expect(cordoned?.spec?.taints?.map((t) => `${t.key}:${t.effect}`)).toContain('node.kubernetes.io/unschedulable:NoSchedule');
    const pods = await listPodsOnNode(kube, 'pi-cluster-4', 30_000);
    expect(pods.map((p) => p.metadata?.name)).toContain('web-7d9f8-abcde');
    for (const p of pods) expect(await evictPod(kube, p.metadata!.namespace!, p.metadata!.name!, 30_000)).toEqual({ outcome: 'evicted' });
    await until('the drain to empty pi-cluster-4 and the ReplicaSet to recreate the pod elsewhere', 3 * MINUTES, async () => {
      const all = (await core.listPodForAllNamespaces({})).items;
      return (await listPodsOnNode(kube, 'pi-cluster-4', 30_000)).length === 0 && all.some((p) => p.metadata?.labels?.['app'] === 'web' && p.spec?.nodeName && p.spec.nodeName !== 'pi-cluster-4');
    });
    expect(await evictPod(kube, 'default', 'web-7d9f8-abcde', 30_000)).toEqual({ outcome: 'gone' });

    // the reflash: the node goes down, --reset-node-password deletes its Secret and Node, it boots anew
    await [...procs.values()].find((p) => p.name === 'pi-cluster-4' && p.exit === undefined)!.stop();
    expect(await deleteSecret(kube, 'kube-system', 'pi-cluster-4.node-password.k3s', 30_000)).toBe(true);
    expect(await deleteNode(kube, 'pi-cluster-4', 30_000)).toBe(true);
    const rebuilt = start('pi-cluster-4', 'agent', { K3S_STANDIN_BOOT_ID: randomUUID() });
    await rebuilt.waitFor('k3s stand-in: agent running');
    await until('pi-cluster-4 to pass the rejoin checks', 3 * MINUTES, async () => {
      const s = await takeSnapshot(kube, 30_000, { helmCharts: false });
      return failing(rejoinChecks(inv, s, 'pi-cluster-4', before)).length === 0;
    });
    const fresh = await readNode(kube, 'pi-cluster-4', 30_000);
    expect(fresh?.metadata?.uid).not.toBe(before.uid);
    expect(fresh?.spec?.unschedulable).toBeUndefined();

    // a reboot keeps the Node object and its cordon; uncordon lifts it
    const before2 = nodeIdentity((await readNode(kube, 'pi-cluster-2', 30_000))!);
    await setUnschedulable(kube, 'pi-cluster-2', true, 30_000);
    await [...procs.values()].find((p) => p.name === 'pi-cluster-2' && p.exit === undefined)!.stop();
    const rebooted = start('pi-cluster-2', 'agent', { K3S_STANDIN_BOOT_ID: randomUUID() });
    await rebooted.waitFor('k3s stand-in: agent running');
    await until('pi-cluster-2 to come back with a new boot', 3 * MINUTES, async () => {
      const s = await takeSnapshot(kube, 30_000, { helmCharts: false });
      return failing(rejoinChecks(inv, s, 'pi-cluster-2', before2)).length === 0;
    });
    const back = await readNode(kube, 'pi-cluster-2', 30_000);
    expect(back?.metadata?.uid).toBe(before2.uid);
    expect(back?.spec?.unschedulable).toBe(true);
    await setUnschedulable(kube, 'pi-cluster-2', false, 30_000);
    const un = await readNode(kube, 'pi-cluster-2', 30_000);
    expect(un?.spec?.unschedulable).toBeUndefined();
    expect(un?.spec?.taints ?? []).toEqual([]);

    const r = await verify();
    expect(failing(r.report.checks), r.err).toEqual([]);
    expect(r.code).toBe(0);
  });
});
