/**
 * `pi-image rebuild` end to end against a stand-in target: a real Pi-OS-layout base image is built
 * into the node's image, re-exported for netboot (or flashed onto a loop device), while a
 * Kubernetes API stand-in on 127.0.0.1 (tests/helpers/rebuild-standin.ts) takes the cordon PATCH,
 * lists pods, takes evictions, and plays the reflash: the node vanishes once the export/flash is
 * there and registers again (new boot) after a delay. Checked: phases, evidence.json + README.md,
 * exit codes, over budget, never back, API down at the start, the node-password reset, a drain that
 * cannot finish, and that no secret value reaches the output or the evidence.
 * Needs root (the netboot export chowns, loop devices), mtools, e2fsprogs, fdisk, dosfstools, openssl.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../src/app/inventory.js';
import type { Inventory } from '../../src/core/model.js';
import { nodePassword } from '../../src/core/render/k3s.js';
import { EVIDENCE_SCHEMA, PHASES, type RebuildEvidence } from '../../src/core/rebuild.js';
import { attachLoop, canUseLoop, detachLoop } from '../helpers/flash-image.js';
import { KubeApiStandin, makeSelfSignedCert, type TlsMaterial, writeKubeconfig } from '../helpers/kube-api-standin.js';
import { makePiOsImage, type PiOsImage } from '../helpers/pi-os-image.js';
import { nodePasswordSecret, pod, RebuildStandin } from '../helpers/rebuild-standin.js';
import { cli, type CliResult } from '../helpers/run-cli.js';
import { REPO_ROOT, sampleFiles, writeInventory } from '../helpers/sample-inventory.js';
import { healthyNodes } from '../helpers/verify-fixtures.js';

const NODE = 'pi-cluster-3';
const SERIAL = '4e1c0013';
const TOKEN = 'standin-token-5f0c1d2e3b4a';
const SECRET_HASH = '$1:9a8b7c6d5e4f3a2b:15:8:1:c0ffeec0ffeec0ffeec0ffeec0ffee';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let base: PiOsImage;
let inv: ReturnType<typeof writeInventory>;
let inventory: Inventory;
let env: NodeJS.ProcessEnv;
let tls: TlsMaterial;
let secretValues: string[];
const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

beforeAll(async () => {
  base = await makePiOsImage({ bootMiB: 64, rootMiB: 32 });
  const files = sampleFiles();
  files[`${NODE}.yaml`] = `${files[`${NODE}.yaml`]!.replace(/^boot: .*$/m, 'boot: netboot')}dataDisk:\n  device: /dev/disk/by-label/rancher\n`;
  inv = writeInventory(files);
  env = { ...process.env, XDG_CONFIG_HOME: join(inv.root, 'config'), PI_IMAGE_CACHE: join(inv.root, 'cache'), PI_IMAGE_OPERATOR: 'drill-tester', PI_IMAGE_ALLOW_LOOP: '' };
  const init = await cli(['secrets', 'init'], { cwd: inv.root, env });
  expect(init.code, init.stderr).toBe(0);
  inventory = await loadInventory(inv.dir);
  tls = makeSelfSignedCert();
  // the secret values this inventory holds (revealed through the CLI, for leak checks only)
  secretValues = [];
  for (const name of ['cluster-token', 'agent-token', 'node-password-seed']) {
    const r = await cli(['secrets', 'show', '--reveal', name], { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(0);
    secretValues.push(r.stdout.trim().split('\n').pop()!.trim());
  }
  secretValues.push(nodePassword(secretValues[2]!, NODE), TOKEN, SECRET_HASH, Buffer.from(SECRET_HASH).toString('base64'));
  expect(secretValues.every((v) => v.length >= 16)).toBe(true);
}, 120_000);

afterAll(async () => {
  await base?.cleanup();
  inv?.cleanup();
});

interface Setup {
  api: KubeApiStandin;
  sim: RebuildStandin;
  kubeconfig: string;
  work: string;
  netboot: string;
}
let current: Setup | undefined;

/** A fresh stand-in cluster (healthy inventory nodes, pods on NODE) and a fresh netboot root. */
async function setup(): Promise<Setup> {
  const work = await mkdtemp(join(tmpdir(), 'pi-image-rebuild-'));
  const api = new KubeApiStandin(TOKEN, tls);
  const server = await api.start();
  api.nodes = healthyNodes(inventory);
  api.namespaces = [];
  const sim = new RebuildStandin(api);
  sim.pods = [
    pod({ name: 'web-7d4b9c-x2x9k', namespace: 'apps', node: NODE }),
    pod({ name: 'db-0', namespace: 'apps', node: NODE, owner: 'StatefulSet' }),
    pod({ name: 'svclb-traefik-abcde', namespace: 'kube-system', node: NODE, owner: 'DaemonSet' }),
    pod({ name: `kube-vip-${NODE}`, namespace: 'kube-system', node: NODE, owner: 'Node', mirror: true }),
    pod({ name: 'web-7d4b9c-q8r2m', namespace: 'apps', node: 'pi-cluster-2' }),
  ];
  sim.secrets = [nodePasswordSecret(NODE, SECRET_HASH)];
  const netboot = join(work, 'srv');
  current = { api, sim, kubeconfig: writeKubeconfig(work, { server, caPem: tls.certPem, token: TOKEN }), work, netboot };
  return current;
}

afterEach(async () => {
  if (!current) return;
  current.sim.stop();
  await current.api.stop();
  await rm(current.work, { recursive: true, force: true });
  current = undefined;
});

/** The reflash is "done" once the node's NFS root is exported. */
const exported = (s: Setup) => (): boolean => existsSync(join(s.netboot, 'nfs', NODE, 'etc', 'fstab'));
const fresh = () => healthyNodes(inventory).find((n) => (n['metadata'] as { name: string }).name === NODE)!;

function rebuild(s: Setup, extra: string[]): Promise<CliResult> {
  return cli(['rebuild', NODE, '--kubeconfig', s.kubeconfig, '--base', base.path, '--interval', '250ms', ...extra], { cwd: inv.root, env });
}

function netbootArgs(s: Setup): string[] {
  return ['--netboot', s.netboot, '--server', '10.0.0.2'];
}

/** The evidence folder a run named on stderr, parsed. */
function evidenceOf(r: CliResult, root = inv.root): { dir: string; json: RebuildEvidence; readme: string } {
  const m = /^evidence: (.+)\/$/m.exec(r.stderr);
  expect(m, r.stderr).not.toBeNull();
  const dir = join(root, m![1]!);
  const json = JSON.parse(readFileSync(join(dir, 'evidence.json'), 'utf8')) as RebuildEvidence;
  return { dir, json, readme: readFileSync(join(dir, 'README.md'), 'utf8') };
}

function expectNoSecrets(r: CliResult, ev: { dir: string }): void {
  const text = [r.stdout, r.stderr, readFileSync(join(ev.dir, 'evidence.json'), 'utf8'), readFileSync(join(ev.dir, 'README.md'), 'utf8')].join('\n');
  for (const v of secretValues) expect(text.includes(v), 'a secret value is in the output or the evidence').toBe(false);
}

/** Shape checks every evidence.json must pass. */
function expectWellFormed(e: RebuildEvidence): void {
  expect(e.schema).toBe(EVIDENCE_SCHEMA);
  expect(e).toMatchObject({ drill: 'rebuild', node: NODE, role: 'agent', cluster: inventory.cluster.name, operator: 'drill-tester', tool: { name: 'pi-image', version } });
  expect(Date.parse(e.endedAt) - Date.parse(e.startedAt)).toBe(e.durationMs);
  const order = e.phases.map((p) => PHASES.indexOf(p.name));
  expect(order.every((i) => i >= 0)).toBe(true);
  expect([...order].sort((a, b) => a - b)).toEqual(order);
  for (const p of e.phases) {
    expect(p.durationMs).toBeGreaterThanOrEqual(0);
    expect(Date.parse(p.endedAt) - Date.parse(p.startedAt)).toBe(p.durationMs);
    expect(Date.parse(p.startedAt)).toBeGreaterThanOrEqual(Date.parse(e.startedAt));
    expect(Date.parse(p.endedAt)).toBeLessThanOrEqual(Date.parse(e.endedAt));
  }
  expect(e.phases.reduce((a, p) => a + p.durationMs, 0)).toBeLessThanOrEqual(e.durationMs);
  expect(e.budget.usedMs).toBe(e.durationMs);
  expect(e.budget.exceeded).toBe(e.durationMs > e.budget.budgetMs);
  expect(e.ok).toBe(e.verdict === 'pass');
  expect(JSON.stringify(e.kube)).not.toContain(TOKEN);
}

const phase = (e: RebuildEvidence, name: string) => e.phases.find((p) => p.name === name);

describe.skipIf(!canUseLoop)('pi-image rebuild (stand-in cluster)', () => {
  it('runs the whole drill for a netboot node: cordon, drain, build, export, rejoin, uncordon — evidence within budget', async () => {
    const s = await setup();
    s.sim.simulateReflash({ node: NODE, trigger: exported(s), rejoinAfterMs: 1500, fresh });
    const r = await rebuild(s, [...netbootArgs(s), '--budget', '5m']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`rebuild drill ${NODE}: PASS`);
    const ev = evidenceOf(r);
    const e = ev.json;
    expectWellFormed(e);
    expect(ev.dir).toBe(join(inv.root, 'docs', 'governance', 'reviews', `${e.startedAt.slice(0, 10)}-rebuild-${NODE}`));
    expect(e.verdict).toBe('pass');
    expect(e.budget.exceeded).toBe(false);
    expect(e.phases.map((p) => [p.name, p.status])).toEqual([
      ['preflight', 'ok'],
      ['cordon', 'ok'],
      ['drain', 'ok'],
      ['reset-node-password', 'skipped'],
      ['build', 'ok'],
      ['remove-node', 'skipped'],
      ['flash', 'skipped'],
      ['netboot', 'ok'],
      ['rejoin', 'ok'],
      ['uncordon', 'ok'],
    ]);
    // the image and base hashes are those of the real files
    const img = readFileSync(join(inv.root, 'build', 'images', `${NODE}.img`));
    expect(e.image?.sha256).toBe(sha(img));
    expect(e.base?.sha256).toBe(sha(readFileSync(base.path)));
    const record = JSON.parse(readFileSync(join(inv.root, 'build', 'images', `${NODE}.json`), 'utf8')) as { instanceId: string };
    expect(e.image?.instanceId).toBe(record.instanceId);
    // the export is there and netboots the new image
    expect(e.netboot?.tftpDir).toBe(join(s.netboot, 'tftp', SERIAL));
    expect(readFileSync(join(s.netboot, 'tftp', SERIAL, 'cmdline.txt'), 'utf8')).toContain(`nfsroot=10.0.0.2:${join(s.netboot, 'nfs', NODE)}`);
    // drain: controller pods evicted, DaemonSet and static pods left, other nodes' pods untouched
    expect(e.drain?.evicted.sort()).toEqual(['apps/db-0', 'apps/web-7d4b9c-x2x9k']);
    expect(e.drain?.ignored.map((i) => i.pod).sort()).toEqual([`kube-system/kube-vip-${NODE}`, 'kube-system/svclb-traefik-abcde']);
    expect(s.sim.pods.map((p) => (p['metadata'] as { name: string }).name).sort()).toEqual([`kube-vip-${NODE}`, 'svclb-traefik-abcde', 'web-7d4b9c-q8r2m']);
    // order of what the cluster saw: cordon, evictions, the node gone and back, then uncordon
    const ev0 = s.sim.events;
    expect(ev0[0]).toBe(`cordon ${NODE}`);
    expect(ev0.indexOf(`node back ${NODE}`)).toBeGreaterThan(ev0.indexOf(`node gone ${NODE}`));
    expect(ev0.indexOf(`node gone ${NODE}`)).toBeGreaterThan(ev0.lastIndexOf('evict apps/db-0'));
    expect(ev0[ev0.length - 1]).toBe(`uncordon ${NODE}`);
    expect((s.sim.node(NODE)!['spec'] as { unschedulable?: boolean }).unschedulable).toBeUndefined();
    expect(e.cordonAtEnd).toMatch(/uncordoned/);
    // every rejoin check passed, including the new boot
    const names = e.verify!.checks.map((c) => c.name);
    expect(names).toEqual(['registered', 'ready', 'role', 'k3s-version', 'arch', 'labels', 'taints', 'rebooted']);
    expect(e.verify!.checks.every((c) => c.status === 'pass' && c.node === NODE)).toBe(true);
    expect(e.verify!.rounds).toBeGreaterThan(1);
    // README.md: verdict, hashes, every phase, every check
    expect(ev.readme).toContain(`# Rebuild drill: ${NODE}`);
    expect(ev.readme).toContain('**Verdict: PASS**');
    expect(ev.readme).toContain(e.image!.sha256);
    expect(ev.readme).toContain(e.base!.sha256);
    expect(ev.readme).toContain('drill-tester');
    for (const p of e.phases) expect(ev.readme).toContain(`| ${p.name} | ${p.status} |`);
    for (const c of e.verify!.checks) expect(ev.readme).toContain(`| ${c.name} | pass |`);
    expectNoSecrets(r, ev);

    // -o json prints the same evidence; a second drill the same day gets its own folder
    s.sim.stop();
    const s2 = await setup();
    s2.sim.simulateReflash({ node: NODE, trigger: exported(s2), rejoinAfterMs: 300, fresh });
    const j = await rebuild(s2, [...netbootArgs(s2), '-o', 'json']);
    expect(j.code, j.stderr).toBe(0);
    const { evidenceDir, ...printed } = JSON.parse(j.stdout) as RebuildEvidence & { evidenceDir: string };
    expect(evidenceDir).toBe(`${ev.dir}-2`);
    expect(JSON.parse(readFileSync(join(evidenceDir, 'evidence.json'), 'utf8'))).toEqual(printed);
    expect(printed.verdict).toBe('pass');
  }, 120_000);

  it('fails over budget (exit 1) and still writes the evidence', async () => {
    const s = await setup();
    s.sim.simulateReflash({ node: NODE, trigger: exported(s), rejoinAfterMs: 3000, fresh });
    const r = await rebuild(s, [...netbootArgs(s), '--budget', '2s']);
    expect(r.code, r.stderr).toBe(1);
    const { json: e, readme } = evidenceOf(r);
    expectWellFormed(e);
    expect(e.budget.exceeded).toBe(true);
    expect(e.ok).toBe(false);
    expect(['over-budget', 'not-rejoined']).toContain(e.verdict);
    expect(e.reason).toContain('over budget');
    expect(readme).toMatch(/Verdict: FAIL/);
    expect(readme).toContain('EXCEEDED');
    expect(r.stdout).toContain('FAIL');
  }, 120_000);

  it('fails (exit 1) when the node never comes back, leaves it cordoned and says where to look', async () => {
    const s = await setup();
    s.sim.secrets = [];
    s.sim.simulateReflash({ node: NODE, trigger: exported(s), rejoinAfterMs: Number.POSITIVE_INFINITY, fresh });
    const r = await rebuild(s, [...netbootArgs(s), '--budget', '8s']);
    expect(r.code, r.stderr).toBe(1);
    const { json: e, readme } = evidenceOf(r);
    expectWellFormed(e);
    expect(e.verdict).toBe('not-rejoined');
    expect(phase(e, 'rejoin')?.status).toBe('failed');
    expect(phase(e, 'uncordon')?.status).toBe('skipped');
    expect(e.verify!.checks.find((c) => c.name === 'registered')?.status).toBe('fail');
    expect(e.verify!.timedOut).toBe(true);
    expect(e.cordonAtEnd).toMatch(/left cordoned/);
    expect(s.sim.events).not.toContain(`uncordon ${NODE}`);
    expect(e.notes.join('\n')).toContain('/var/lib/pi-image/status.json');
    // no node-password Secret: no password hint
    expect(e.notes.join('\n')).not.toContain('--reset-node-password');
    expect(readme).toContain('FAIL — node did not come back');
  }, 120_000);

  it('goes on without cordon and drain when the API is down at the start, and says so', async () => {
    const s = await setup();
    s.sim.down = true;
    const back = exported(s);
    s.sim.simulateReflash({
      node: NODE,
      trigger: () => {
        if (back()) s.sim.down = false;
        return back();
      },
      rejoinAfterMs: 500,
      fresh,
    });
    const r = await rebuild(s, [...netbootArgs(s), '--budget', '5m']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/cluster API unreachable/);
    const { json: e } = evidenceOf(r);
    expectWellFormed(e);
    expect(e.kube.reachableAtStart).toBe(false);
    expect(phase(e, 'cordon')?.status).toBe('skipped');
    expect(phase(e, 'drain')?.status).toBe('skipped');
    expect(e.drain).toBeNull();
    expect(e.notes.join('\n')).toMatch(/unreachable at the start.*not cordoned or drained/);
    expect(s.api.requests.filter((q) => q.method !== 'GET')).toEqual([]);
    expect(e.verdict).toBe('pass');
  }, 120_000);

  it('detects a node k3s rejects for its password, and --reset-node-password deletes the Secret and the Node (printing both)', async () => {
    const s = await setup();
    s.sim.simulateReflash({ node: NODE, trigger: exported(s), rejoinAfterMs: 200, passwordMatches: false, fresh });
    const r = await rebuild(s, [...netbootArgs(s), '--budget', '8s']);
    expect(r.code, r.stderr).toBe(1);
    const { json: e } = evidenceOf(r);
    expect(e.verdict).toBe('not-rejoined');
    expect(s.sim.events).toContain(`node password rejected ${NODE}`);
    expect(e.verify!.checks.find((c) => c.name === 'rebooted')?.status).toBe('fail');
    const hint = e.notes.find((n) => n.includes('--reset-node-password'));
    expect(hint).toContain(`kube-system/${NODE}.node-password.k3s`);
    expect(hint).toContain('Node password rejected');
    expect(r.stderr).toContain('--reset-node-password');
    expectNoSecrets(r, evidenceOf(r));

    // the same cluster state, this time with the reset
    s.sim.stop();
    const s2 = await setup();
    s2.sim.simulateReflash({ node: NODE, trigger: exported(s2), rejoinAfterMs: 200, passwordMatches: false, fresh });
    const r2 = await rebuild(s2, [...netbootArgs(s2), '--budget', '5m', '--reset-node-password']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stderr).toContain(`deleted Secret kube-system/${NODE}.node-password.k3s`);
    expect(r2.stderr).toContain(`deleted Node ${NODE}`);
    const { json: e2 } = evidenceOf(r2);
    expectWellFormed(e2);
    expect(e2.nodePasswordReset).toEqual({ deleted: [`Secret kube-system/${NODE}.node-password.k3s`, `Node ${NODE}`], notFound: [] });
    expect(phase(e2, 'reset-node-password')?.status).toBe('ok');
    const ev = s2.sim.events;
    expect(ev.indexOf(`delete node ${NODE}`)).toBeLessThan(ev.indexOf(`node gone ${NODE}`));
    expect(ev).not.toContain(`node password rejected ${NODE}`);
    // registered afresh: schedulable without an uncordon
    expect(ev).not.toContain(`uncordon ${NODE}`);
    expect(phase(e2, 'uncordon')?.status).toBe('skipped');
    expect(e2.verify!.checks.find((c) => c.name === 'rebooted')?.message).toContain('registered anew');
    expect(e2.verdict).toBe('pass');
  }, 120_000);

  it('stops before rebuilding when the drain cannot finish (exit 1), and --skip-drain goes on', async () => {
    const s = await setup();
    s.sim.pdbBlocked.add('apps/db-0');
    s.sim.simulateReflash({ node: NODE, trigger: exported(s), rejoinAfterMs: 200, fresh });
    const r = await rebuild(s, [...netbootArgs(s), '--drain-timeout', '1s']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('--skip-drain');
    const { json: e } = evidenceOf(r);
    expectWellFormed(e);
    expect(e.verdict).toBe('aborted');
    expect(phase(e, 'drain')?.status).toBe('failed');
    expect(phase(e, 'drain')?.details.join('\n')).toContain("apps/db-0: eviction refused: Cannot evict pod as it would violate the pod's disruption budget.");
    expect(phase(e, 'build')).toBeUndefined();
    expect(existsSync(join(s.netboot, 'nfs'))).toBe(false);
    expect(e.cordonAtEnd).toMatch(/left cordoned/);
    expect((s.sim.node(NODE)!['spec'] as { unschedulable?: boolean }).unschedulable).toBe(true);

    const r2 = await rebuild(s, [...netbootArgs(s), '--skip-drain']);
    expect(r2.code, r2.stderr).toBe(0);
    const { json: e2 } = evidenceOf(r2);
    expect(phase(e2, 'drain')?.status).toBe('skipped');
    // it was cordoned before this drill (by the stopped one): it stays cordoned
    expect(phase(e2, 'cordon')?.status).toBe('skipped');
    expect(e2.cordonAtEnd).toMatch(/cordoned before the drill/);
    expect((s.sim.node(NODE)!['spec'] as { unschedulable?: boolean }).unschedulable).toBe(true);
  }, 120_000);

  it('flashes a card (loop device) with verification and records the read-back', async () => {
    const s = await setup();
    let dev: string | undefined;
    try {
      dev = await attachLoop(join(s.work, 'card.bin'), 160 * 1024 * 1024);
      // without --yes the drill asks for the device name first, as `pi-image flash` does: a wrong answer stops it before it starts
      const asked: string[] = [];
      const wrong = await cli(['rebuild', NODE, '--kubeconfig', s.kubeconfig, '--base', base.path, '--device', dev, '--allow-loop'], {
        cwd: inv.root,
        env,
        prompt: async (q) => {
          asked.push(q);
          return 'sdz';
        },
      });
      expect(wrong.code, wrong.stderr).toBe(2);
      expect(asked[0]).toContain(`Type the device name (${dev.replace('/dev/', '')})`);
      expect(wrong.stderr).toContain('does not match');
      // the card is confirmed before the drill starts: nothing in the cluster changed, nothing was built
      expect(wrong.stderr).not.toMatch(/^evidence: /m);
      expect(s.sim.events).toEqual([]);
      expect((s.sim.node(NODE)!['spec'] as { unschedulable?: boolean }).unschedulable).toBeUndefined();
      expect(existsSync(join(inv.root, 'build', 'images', `${NODE}.img.tmp-${process.pid}`))).toBe(false);

      const listed = () => s.api.requests.some((q) => q.method === 'GET' && q.path === '/api/v1/nodes');
      s.sim.simulateReflash({ node: NODE, trigger: listed, rejoinAfterMs: 500, fresh });
      const r = await rebuild(s, ['--device', dev, '--yes', '--allow-loop', '--budget', '5m']);
      expect(r.code, r.stderr).toBe(0);
      const { json: e, readme } = evidenceOf(r);
      expectWellFormed(e);
      expect(phase(e, 'flash')?.status).toBe('ok');
      expect(phase(e, 'netboot')?.status).toBe('skipped');
      expect(e.target).toMatchObject({ mode: 'device', device: dev });
      expect(e.flash?.result).toBe('ok');
      // the build wrote a block map: only its ranges were written and read back, each against its sha256
      expect(e.flash?.mapped?.bytes).toBeGreaterThan(0);
      expect(e.flash?.mapped!.bytes).toBeLessThan(e.flash!.bytes);
      expect(e.flash?.readbackSha256).toBeUndefined();
      expect(e.flash?.files.length).toBeGreaterThan(0);
      expect(e.flash?.files.every((f) => f.ok)).toBe(true);
      expect(readme).toContain(`ok (read back the ${e.flash!.mapped!.ranges} mapped ranges of the block map, ${e.flash!.mapped!.bytes} bytes, each against its sha256)`);
      expect(e.verdict).toBe('pass');
    } finally {
      await detachLoop(dev);
    }
  }, 120_000);

  it('rebuilds a server: deletes its old Node (and so its etcd member) before the export, so k3s lets the reflashed server join', async () => {
    // a second server (joins pi-cluster-1's embedded etcd), netbooted
    const files = sampleFiles();
    files[`${NODE}.yaml`] = `${files[`${NODE}.yaml`]!.replace(/^role: agent$/m, 'role: server').replace(/^boot: .*$/m, 'boot: netboot')}dataDisk:\n  device: /dev/disk/by-label/rancher\n`;
    // three servers: embedded etcd keeps quorum while one is rebuilt
    files['pi-cluster-2.yaml'] = files['pi-cluster-2.yaml']!.replace(/^role: agent$/m, 'role: server');
    const sinv = writeInventory(files);
    try {
      const senv = { ...env, XDG_CONFIG_HOME: join(sinv.root, 'config') };
      const init = await cli(['secrets', 'init'], { cwd: sinv.root, env: senv });
      expect(init.code, init.stderr).toBe(0);
      const sinventory = await loadInventory(sinv.dir);
      const s = await setup();
      s.api.nodes = healthyNodes(sinventory);
      const serverNode = () => healthyNodes(sinventory).find((n) => (n['metadata'] as { name: string }).name === NODE)!;
      expect((s.sim.node(NODE)!['metadata'] as { labels: Record<string, string> }).labels['node-role.kubernetes.io/etcd']).toBe('true');
      s.sim.simulateReflash({ node: NODE, trigger: exported(s), rejoinAfterMs: 300, fresh: serverNode });
      const r = await cli(['rebuild', NODE, '--kubeconfig', s.kubeconfig, '--base', base.path, '--interval', '250ms', ...netbootArgs(s), '--budget', '5m'], { cwd: sinv.root, env: senv });
      expect(r.code, r.stderr).toBe(0);
      const ev = evidenceOf(r, sinv.root);
      expect(ev.json.role).toBe('server');
      expect(ev.json.verdict).toBe('pass');
      expect(phase(ev.json, 'remove-node')?.status).toBe('ok');
      const events = s.sim.events;
      expect(events.filter((e) => e.startsWith('etcd join refused'))).toEqual([]);
      // the Node went after the evictions and before the export made the node reboot
      expect(events.indexOf(`delete node ${NODE}`)).toBeGreaterThan(events.lastIndexOf('evict apps/db-0'));
      expect(events.indexOf(`delete node ${NODE}`)).toBeLessThan(events.indexOf(`node gone ${NODE}`));
      expect(events.indexOf(`node back ${NODE}`)).toBeGreaterThan(events.indexOf(`node gone ${NODE}`));
      expect(ev.json.verify!.checks.find((c) => c.name === 'rebooted')?.message).toMatch(/registered anew/);
      expect(ev.json.cordonAtEnd).toBe('schedulable (registered afresh)');
    } finally {
      sinv.cleanup();
    }
  }, 120_000);

  it('the stand-in refuses a reflashed server whose old Node was not deleted ("duplicate node name found")', async () => {
    const files = sampleFiles();
    files[`${NODE}.yaml`] = `${files[`${NODE}.yaml`]!.replace(/^role: agent$/m, 'role: server')}`;
    files['pi-cluster-2.yaml'] = files['pi-cluster-2.yaml']!.replace(/^role: agent$/m, 'role: server');
    const sinventory = await (async () => {
      const w = writeInventory(files);
      try {
        return await loadInventory(w.dir);
      } finally {
        w.cleanup();
      }
    })();
    const s = await setup();
    s.api.nodes = healthyNodes(sinventory);
    let reflashed = false;
    s.sim.simulateReflash({ node: NODE, trigger: () => reflashed, rejoinAfterMs: 0, fresh: () => healthyNodes(sinventory).find((n) => (n['metadata'] as { name: string }).name === NODE)! });
    reflashed = true;
    await new Promise((res) => setTimeout(res, 300));
    expect(s.sim.events).toContain(`etcd join refused ${NODE}: duplicate node name found, please use a unique name for this node`);
    expect(s.sim.events).not.toContain(`node back ${NODE}`);
    const stale = s.sim.node(NODE)!;
    expect(((stale['status'] as { conditions: { type: string; status: string }[] }).conditions.find((c) => c.type === 'Ready'))?.status).toBe('Unknown');
  });

  it('refuses the cluster-init server before touching anything', async () => {
    const s = await setup();
    const r = await cli(['rebuild', 'pi-cluster-1', '--kubeconfig', s.kubeconfig, ...netbootArgs(s)], { cwd: inv.root, env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('pi-cluster-1 is the cluster-init server');
    expect(r.stderr).toContain('etcd-snapshot');
    const neither = await cli(['rebuild', NODE, '--kubeconfig', s.kubeconfig], { cwd: inv.root, env });
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain('give either --device /dev/X or --netboot DIR');
    expect(s.api.requests).toEqual([]);
    expect(existsSync(join(inv.root, 'docs', 'governance', 'reviews', `${new Date().toISOString().slice(0, 10)}-rebuild-pi-cluster-1`))).toBe(false);
  });
});
