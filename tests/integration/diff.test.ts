/**
 * `pi-image diff` on real images: the sample inventory is built with `pi-image build --base
 * <makePiOsImage()>` (sfdisk + mkfs.vfat + mkfs.ext4, no root), then edited, rotated or left alone,
 * and the diff reads the seed back from the built image's FAT partition. Plus the review evidence
 * folder and `--cluster` against a STAND-IN kubectl (a shell script on PATH that records its
 * arguments and prints canned output), after pi-image's own API check against a Kubernetes API
 * stand-in (tests/helpers/kube-api-standin.ts).
 */
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fatReadText } from '../../src/adapters/fat.js';
import { makePiOsImage, type PiOsImage } from '../helpers/pi-os-image.js';
import { cli, type CliResult } from '../helpers/run-cli.js';
import { REPO_ROOT, sampleFiles, writeInventory } from '../helpers/sample-inventory.js';
import { KubeApiStandin, makeSelfSignedCert, namespace, type TlsMaterial, writeKubeconfig } from '../helpers/kube-api-standin.js';
import { freePort } from '../helpers/sshd.js';

const TOKEN = 'K10diff-standin-token-0c1d2e';
const readServer = (path: string): string => /server: (\S+)/.exec(readFileSync(path, 'utf8'))![1]!;

let base: PiOsImage;
let inv: ReturnType<typeof writeInventory>;
let env: NodeJS.ProcessEnv;
let buildDir: string;

const run = (args: string[], cwd = inv.root) => cli(args, { cwd, env });
const today = () => new Date().toISOString().slice(0, 10);

/** The secret values an inventory holds now (revealed through the CLI, for leak checks only). */
async function secretValues(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of ['cluster-token', 'agent-token', 'node-password-seed']) {
    const r = await cli(['secrets', 'show', '--reveal', name], { cwd: root, env });
    expect(r.code, r.stderr).toBe(0);
    const v = r.stdout.trim().split('\n').pop()!.trim();
    expect(v.length).toBeGreaterThanOrEqual(32);
    out.push(v);
  }
  return out;
}

function expectNoLeak(r: CliResult | string, values: readonly string[]): void {
  const text = typeof r === 'string' ? r : `${r.stdout}\n${r.stderr}`;
  for (const v of values) expect(text.includes(v), 'a secret value is in the output').toBe(false);
}

beforeAll(async () => {
  base = await makePiOsImage();
  inv = writeInventory(sampleFiles());
  env = { ...process.env, XDG_CONFIG_HOME: join(inv.root, 'config'), PI_IMAGE_CACHE: join(inv.root, 'cache') };
  const init = await run(['secrets', 'init']);
  expect(init.code, init.stderr).toBe(0);
  // server + one agent; pi-cluster-3 and -4 stay unbuilt
  const b = await run(['build', 'pi-cluster-1', 'pi-cluster-2', '--base', base.path]);
  expect(b.code, b.stderr).toBe(0);
  buildDir = join(inv.root, 'build', 'images');
}, 240_000);

afterAll(async () => {
  await base?.cleanup();
  inv?.cleanup();
});

describe('pi-image diff <node>', () => {
  it('exits 0 and shows no hunk for a node whose image matches the inventory', async () => {
    const r = await run(['diff', 'pi-cluster-2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('pi-cluster-2 (agent): unchanged');
    expect(r.stdout).toContain('secret agent-token: unchanged');
    expect(r.stdout).not.toContain('@@');
    expect(r.stdout).toMatch(/no changes/);
    const server = await run(['diff', 'pi-cluster-1', '-o', 'json']);
    expect(server.code, server.stderr).toBe(0);
    const j = JSON.parse(server.stdout);
    expect(j.nodes[0].source).toBe('image');
    // the manifests in the server's rootfs are read back and compared too
    expect(j.nodes[0].files.some((f: { target: string; status: string }) => f.target === 'root' && f.status === 'unchanged')).toBe(true);
  });

  it('shows the k3s config hunk in user-data after a label change, and the new instance id (exit 1)', async () => {
    const file = join(inv.dir, 'pi-cluster-2.yaml');
    const original = readFileSync(file, 'utf8');
    writeFileSync(file, original.replace('pi-image.io/rack: shelf-a', 'pi-image.io/rack: shelf-b'));
    try {
      const values = await secretValues(inv.root);
      const r = await run(['diff', 'pi-cluster-2']);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).toContain('--- built/pi-cluster-2/user-data\n+++ rendered/pi-cluster-2/user-data\n@@ ');
      expect(r.stdout).toContain('-        - pi-image.io/rack=shelf-a\n+        - pi-image.io/rack=shelf-b\n');
      expect(r.stdout).toMatch(/instance-id pi-cluster-2-\w+ → pi-cluster-2-\w+ \(a reflash re-runs cloud-init/);
      expect(r.stdout).toContain('--- built/pi-cluster-2/meta-data');
      expect(r.stdout).toContain('ds=nocloud;i=');
      expectNoLeak(r, values);

      const j = JSON.parse((await run(['diff', 'pi-cluster-2', '-o', 'json'])).stdout);
      const ud = j.nodes[0].files.find((f: { path: string }) => f.path === 'user-data');
      expect(ud).toMatchObject({ status: 'changed', basis: 'content', secret: true });
      expect(ud.hunks[0].lines).toContain('+        - pi-image.io/rack=shelf-b');
      expect(j.summary).toEqual({ changed: 1, unchanged: 0, neverBuilt: 0 });
    } finally {
      writeFileSync(file, original);
    }
  });

  it('says "never built" for a node without a build record (exit 1)', async () => {
    const r = await run(['diff', 'pi-cluster-3']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('pi-cluster-3 (agent): never built');
    expect(r.stdout).toContain('pi-image build pi-cluster-3');
  });

  it('refuses an unknown node and a missing mode with exit 2', async () => {
    expect((await run(['diff', 'pi-cluster-9'])).code).toBe(2);
    const none = await run(['diff']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/node, --all or --cluster/);
  });
});

describe('pi-image diff after rotating the agent token', () => {
  let rot: ReturnType<typeof writeInventory>;
  let oldValues: string[];

  beforeAll(async () => {
    // a copy of the inventory with the same key and store, so the other tests keep their secrets
    rot = writeInventory(sampleFiles());
    for (const f of ['secrets.age', 'secrets.recipients']) cpSync(join(inv.dir, f), join(rot.dir, f));
    oldValues = await secretValues(inv.root);
    const r = await cli(['secrets', 'rotate', 'agent-token'], { cwd: rot.root, env });
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(() => rot?.cleanup());

  it('reports "secret agent-token: changed" read back from the image, with no token value anywhere', async () => {
    const newValues = await secretValues(rot.root);
    expect(newValues[1]).not.toBe(oldValues[1]);
    // the old value really is in the built image
    const layoutOffset = base.bootOffset;
    expect(await fatReadText({ image: join(buildDir, 'pi-cluster-2.img'), offset: layoutOffset }, '/user-data')).toContain(oldValues[1]!);

    for (const node of ['pi-cluster-2', 'pi-cluster-1']) {
      const r = await cli(['diff', node, '--build-dir', buildDir], { cwd: rot.root, env });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).toContain('secret agent-token: changed');
      expect(r.stdout).toContain('secret node-password-seed: unchanged');
      expect(r.stdout).toContain('-      <secret:agent-token:old>\n+      <secret:agent-token:new>');
      expectNoLeak(r, [...oldValues, ...newValues]);
      const j = await cli(['diff', node, '--build-dir', buildDir, '-o', 'json'], { cwd: rot.root, env });
      expect(j.code).toBe(1);
      expectNoLeak(j, [...oldValues, ...newValues]);
      expect(JSON.parse(j.stdout).nodes[0].secrets).toContainEqual({ name: 'agent-token', status: 'changed', basis: 'image' });
    }
    const server = await cli(['diff', 'pi-cluster-1', '--build-dir', buildDir], { cwd: rot.root, env });
    expect(server.stdout).toContain('secret cluster-token: unchanged');
  });

  it('falls back to the build record when the image is gone: "changed" by hash, no content', async () => {
    const img = join(buildDir, 'pi-cluster-2.img');
    const away = `${img}.away`;
    renameSync(img, away);
    try {
      const r = await cli(['diff', 'pi-cluster-2', '--build-dir', buildDir], { cwd: rot.root, env });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).toContain('compared by hash from the build record');
      expect(r.stdout).toMatch(/changed {3}user-data \(secret\) \(by hash, no content\)/);
      expect(r.stdout).toContain('secret agent-token: changed');
      expect(r.stdout).toContain('secret node-password-seed: unchanged');
      expect(r.stdout).not.toContain('@@');
      // the unrotated inventory still matches its record by hash
      const same = await run(['diff', 'pi-cluster-2']);
      expect(same.code, same.stdout).toBe(0);
      expect(same.stdout).toContain('secret agent-token: unchanged');
    } finally {
      renameSync(away, img);
    }
  });
});

describe('pi-image diff --evidence', () => {
  it('stores diff.patch, summary.md and summary.json under <dir>/<date>-diff-all[-N]/ without secrets', async () => {
    const file = join(inv.dir, 'pi-cluster-1.yaml');
    const original = readFileSync(file, 'utf8');
    writeFileSync(file, `${original.trimEnd()}\n  pi-image.io/evidence: test\n`);
    try {
      const dir = join(inv.root, 'reviews');
      const first = await run(['diff', '--all', '--evidence', dir]);
      expect(first.code, first.stderr).toBe(1);
      const second = await run(['diff', '--all', '--evidence', dir]);
      expect(second.code).toBe(1);
      expect(readdirSync(dir).sort()).toEqual([`${today()}-diff-all`, `${today()}-diff-all-2`]);
      expect(second.stdout).toContain(`evidence: reviews/${today()}-diff-all-2/`);

      const folder = join(dir, `${today()}-diff-all`);
      expect(readdirSync(folder).sort()).toEqual(['diff.patch', 'summary.json', 'summary.md']);
      const patch = readFileSync(join(folder, 'diff.patch'), 'utf8');
      expect(patch).toContain('+++ rendered/pi-cluster-1/user-data');
      expect(patch).toContain('pi-image.io/evidence=test');
      const md = readFileSync(join(folder, 'summary.md'), 'utf8');
      expect(md).toContain('`pi-image diff --all`');
      expect(md).toMatch(/\*\*Inventory sha256:\*\* `[0-9a-f]{64}`/);
      expect(md).toMatch(/\*\*Tool:\*\* pi-image \d+\.\d+\.\d+/);
      expect(md).toContain('| pi-cluster-1 | changed | changes |');
      expect(md).toContain('| pi-cluster-3 | never-built |');
      expect(md).toMatch(/^- \[ \] /m);
      const json = JSON.parse(readFileSync(join(folder, 'summary.json'), 'utf8'));
      expect(json.name).toBe('diff-all');
      expect(json.nodes.map((n: { node: string }) => n.node)).toEqual(['pi-cluster-1', 'pi-cluster-2', 'pi-cluster-3', 'pi-cluster-4']);
      const values = await secretValues(inv.root);
      for (const f of readdirSync(folder)) expectNoLeak(readFileSync(join(folder, f), 'utf8'), values);
    } finally {
      writeFileSync(file, original);
    }
  });

  it('defaults to docs/governance/reviews/ under the working directory', async () => {
    const r = await run(['diff', 'pi-cluster-2', '--evidence']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(inv.root, 'docs', 'governance', 'reviews', `${today()}-diff-pi-cluster-2`, 'summary.md'))).toBe(true);
  });
});

describe('pi-image diff --cluster (stand-in kubectl, Kubernetes API stand-in)', () => {
  let fake: string;
  let argsFile: string;
  let api: KubeApiStandin;
  let tls: TlsMaterial;
  let kubeconfig: string;

  beforeAll(async () => {
    // the API check before kubectl runs goes to a Kubernetes API stand-in (tests/helpers/kube-api-standin.ts)
    tls = makeSelfSignedCert();
    api = new KubeApiStandin(TOKEN, tls);
    api.namespaces = [namespace('kube-system')];
    kubeconfig = writeKubeconfig(inv.root, { server: await api.start(), caPem: tls.certPem, token: TOKEN });
    renameSync(kubeconfig, join(inv.root, 'kube.yaml'));
    kubeconfig = join(inv.root, 'kube.yaml');
    fake = mkdtempSync(join(tmpdir(), 'pi-image-fake-kubectl-'));
    argsFile = join(fake, 'args');
    // STAND-IN for kubectl: records its arguments, then behaves as FAKE_KUBECTL says.
    writeFileSync(
      join(fake, 'kubectl'),
      `#!/bin/sh
printf '%s\\n' "$@" > "${argsFile}"
case "$FAKE_KUBECTL" in
  diff)
    echo 'diff -u -N /tmp/LIVE-42/v1.Namespace..ops /tmp/MERGED-42/v1.Namespace..ops'
    echo '--- /tmp/LIVE-42/v1.Namespace..ops	2025-06-01 10:00:00'
    echo '+++ /tmp/MERGED-42/v1.Namespace..ops	2025-06-01 10:00:00'
    echo '@@ -5,3 +5,4 @@'
    echo '   labels:'
    echo '+    pi-image.io/owner: ops'
    exit 1 ;;
  none) exit 0 ;;
  *) echo 'error: You must be logged in to the server (Unauthorized)' >&2; exit 2 ;;
esac
`,
    );
    chmodSync(join(fake, 'kubectl'), 0o755);
  });
  afterAll(async () => {
    rmSync(fake, { recursive: true, force: true });
    await api?.stop();
  });

  const runCluster = (mode: string, args: string[] = [], path = `${fake}:${process.env.PATH}`, extraEnv: NodeJS.ProcessEnv = { KUBECONFIG: kubeconfig }) =>
    cli(['diff', '--cluster', ...args], { cwd: inv.root, env: { ...env, PATH: path, FAKE_KUBECTL: mode, ...extraEnv } });

  it('differences: exit 1, the objects and the diff, kubectl called as `kubectl diff -f <manifests> --kubeconfig F`', async () => {
    const r = await runCluster('diff', ['--kubeconfig', 'kube.yaml']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toContain('cluster: 1 object(s) differ');
    expect(r.stdout).toContain('v1.Namespace..ops');
    expect(r.stdout).toContain('+    pi-image.io/owner: ops');
    expect(readFileSync(argsFile, 'utf8').split('\n').filter(Boolean)).toEqual([
      'diff',
      '-f',
      join(REPO_ROOT, 'manifests'),
      '--kubeconfig',
      join(inv.root, 'kube.yaml'),
      '--context',
      'pi-cluster',
    ]);
    const j = await runCluster('diff', ['-o', 'json']);
    expect(JSON.parse(j.stdout).cluster).toMatchObject({ status: 'changed', objects: ['v1.Namespace..ops'], kubectl: { exitCode: 1 } });
  });

  it('no differences: exit 0', async () => {
    const r = await runCluster('none');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('cluster: no changes');
  });

  it('kubectl error (exit > 1): cluster error, exit 5, with kubectl\'s message in one line', async () => {
    const r = await runCluster('error');
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/^error: `kubectl diff` against https:\/\/127\.0\.0\.1:\d+ \(context pi-cluster\) failed with exit code 2: You must be logged in to the server \(Unauthorized\)$/m);
  });

  it('kubeconfig and API problems: the same errors and exit codes as verify, before kubectl runs', async () => {
    const cases: { args: string[]; env: NodeJS.ProcessEnv; code: number; message: RegExp }[] = [
      { args: [], env: { KUBECONFIG: '', HOME: join(inv.root, 'no-home') }, code: 3, message: /no kubeconfig at .*no-home\/\.kube\/config/ },
      { args: ['--kubeconfig', 'nope.yaml'], env: {}, code: 2, message: /no kubeconfig at .*nope\.yaml \(from --kubeconfig\)/ },
      { args: ['--context', 'elsewhere'], env: { KUBECONFIG: kubeconfig }, code: 2, message: /--context elsewhere: no such context/ },
    ];
    const wrongToken = writeKubeconfig(inv.root, { server: readServer(kubeconfig), caPem: tls.certPem, token: 'wrong-token-1234', context: 'wrong-token' });
    cases.push({ args: ['--kubeconfig', wrongToken], env: {}, code: 5, message: /rejected the credentials while checking that the API answers \(401 Unauthorized\)/ });
    const down = writeKubeconfig(inv.root, { server: `https://127.0.0.1:${await freePort()}`, caPem: tls.certPem, token: TOKEN, context: 'down' });
    cases.push({ args: ['--kubeconfig', down], env: {}, code: 5, message: /cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:\d+ \(context down\) .*\(ECONNREFUSED\)/ });
    for (const c of cases) {
      writeFileSync(argsFile, '');
      const r = await runCluster('diff', c.args, `${fake}:${process.env.PATH}`, c.env);
      expect(r.code, `${c.args.join(' ')}: ${r.stderr}`).toBe(c.code);
      expect(r.stderr).toMatch(c.message);
      expect(r.stderr.match(/^error:/gm)).toHaveLength(1);
      expect(r.stderr).not.toContain('wrong-token-1234');
      expect(readFileSync(argsFile, 'utf8'), 'kubectl must not run').toBe('');
    }
  });

  it('missing kubectl: environment error (exit 3) with the install hint', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'pi-image-empty-path-'));
    try {
      const r = await runCluster('none', [], empty);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain('`kubectl` is not installed');
      expect(r.stderr).toContain('apt-get install kubectl');
      expect(r.stderr).toContain('k3s kubectl');
    } finally {
      rmSync(empty, { recursive: true });
    }
  });

  it('stores cluster evidence as <date>-diff-cluster', async () => {
    const dir = join(inv.root, 'cluster-reviews');
    mkdirSync(dir);
    const r = await runCluster('diff', ['--evidence', dir]);
    expect(r.code).toBe(1);
    const folder = join(dir, `${today()}-diff-cluster`);
    expect(readFileSync(join(folder, 'diff.patch'), 'utf8')).toContain('pi-image.io/owner: ops');
    expect(readFileSync(join(folder, 'summary.md'), 'utf8')).toContain('| v1.Namespace..ops |');
    expect(JSON.parse(readFileSync(join(folder, 'summary.json'), 'utf8')).cluster.status).toBe('changed');
  });
});
