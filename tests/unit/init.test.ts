/**
 * `pi-image init`: scaffolds an inventory that passes `validate`, with the schema modeline in every
 * file; flags without a terminal, questions on one; never overwrites an inventory.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { planScaffold, defaultScaffoldOptions } from '../../src/core/scaffold.js';
import { cli } from '../helpers/run-cli.js';
import { REPO_ROOT } from '../helpers/sample-inventory.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx3mJ3Fq9Dk0qQ4uXo1k8vE2m3WZb7yTt3lYc5s9f2a alice@laptop';
const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));
function tmp(): string {
  const r = mkdtempSync(join(tmpdir(), 'pi-image-init-'));
  roots.push(r);
  return r;
}
function keyFile(root: string, text = `${KEY}\n`): string {
  const f = join(root, 'id_ed25519.pub');
  writeFileSync(f, text);
  return f;
}

describe('pi-image init (flags, no terminal)', () => {
  it('writes cluster.yaml and one file per node that pass validate --strict, each with the schema modeline', async () => {
    const root = tmp();
    const r = await cli(
      ['init', 'site-b', '--cluster-name', 'site-b', '--servers', '3', '--agents', '2', '--cidr', '192.168.50.0/24', '--ssh-key', keyFile(root), '--timezone', 'Europe/Paris'],
      { cwd: root },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const files = readdirSync(join(root, 'site-b')).sort();
    expect(files).toEqual(['cluster.yaml', 'site-b-1.yaml', 'site-b-2.yaml', 'site-b-3.yaml', 'site-b-4.yaml', 'site-b-5.yaml']);
    for (const f of files) {
      const first = readFileSync(join(root, 'site-b', f), 'utf8').split('\n')[0];
      const schema = f === 'cluster.yaml' ? 'cluster.schema.json' : 'node.schema.json';
      // outside the checkout the modeline names the package's schema by absolute path
      expect(first).toBe(`# yaml-language-server: $schema=${join(REPO_ROOT, 'schema', schema)}`);
    }
    const cluster = readFileSync(join(root, 'site-b', 'cluster.yaml'), 'utf8');
    expect(cluster).toContain(KEY);
    expect(cluster).toContain('gateway: 192.168.50.1');
    expect(readFileSync(join(root, 'site-b', 'site-b-1.yaml'), 'utf8')).toMatch(/role: server\nclusterInit: true\n[^]*ip: 192.168.50.11/);
    expect(readFileSync(join(root, 'site-b', 'site-b-4.yaml'), 'utf8')).toMatch(/role: agent\n[^]*ip: 192.168.50.14/);
    expect(r.stdout).toMatch(/site-b-3 +server +192.168.50.13/);

    const v = await cli(['validate', '--strict', '-i', 'site-b', '-o', 'json'], { cwd: root });
    expect(v.code).toBe(0);
    const report = JSON.parse(v.stdout) as { valid: boolean; cluster: string; nodes: { role: string }[] };
    expect(report.valid).toBe(true);
    expect(report.cluster).toBe('site-b');
    expect(report.nodes.filter((n) => n.role === 'server')).toHaveLength(3);
  });

  it('inside the checkout the modeline is relative (nodes/ → ../schema)', () => {
    const s = planScaffold({ ...defaultScaffoldOptions(), sshKeys: [KEY], schemaDir: '../schema' });
    for (const f of s.files) expect(f.text.split('\n')[0]).toMatch(/^# yaml-language-server: \$schema=\.\.\/schema\/(cluster|node)\.schema\.json$/);
  });

  it('without a key uses the placeholder: validate warns, --strict fails, init says what to do', async () => {
    const root = tmp();
    const r = await cli(['init', '--yes'], { cwd: root });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: nodes\/cluster.yaml:\d+:7 admin.sshKeys\[0\]: is a placeholder/);
    expect(r.stdout).toContain('next: put your SSH public key in nodes/cluster.yaml');
    expect((await cli(['validate'], { cwd: root })).code).toBe(0);
    expect((await cli(['validate', '--strict'], { cwd: root })).code).toBe(2);
  });

  it('DHCP needs an endpoint; with one, every node is on dhcp and validate passes', async () => {
    const root = tmp();
    const bad = await cli(['init', 'lab', '--dhcp', '--yes'], { cwd: root });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--dhcp: the first server has no fixed address then; give --endpoint NAME');
    expect(readdirSync(root)).toEqual([]);
    const ok = await cli(['init', 'lab', '--dhcp', '--endpoint', 'k3s.lab.example', '--ssh-key', keyFile(root), '-o', 'json'], { cwd: root });
    expect(ok.code).toBe(0);
    const report = JSON.parse(ok.stdout) as { valid: boolean; nodes: { ip: string }[]; warnings: unknown[] };
    expect(report.valid).toBe(true);
    expect(report.nodes.map((n) => n.ip)).toEqual(['dhcp', 'dhcp', 'dhcp']);
    expect(readFileSync(join(root, 'lab', 'cluster.yaml'), 'utf8')).toContain('endpoint: k3s.lab.example');
  });

  it('reports every bad flag at once and writes nothing', async () => {
    const root = tmp();
    const r = await cli(['init', '--cluster-name', 'Pi_Cluster', '--servers', '2', '--cidr', '10.0.0.0/29', '--agents', '9', '--yes'], { cwd: root });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: cannot scaffold the inventory: 2 problems');
    expect(r.stderr).toContain('--cluster-name Pi_Cluster: use lower-case letters');
    expect(r.stderr).toContain('--servers 2: embedded etcd needs an odd number of servers');
    expect(readdirSync(root)).toEqual([]);
    const small = await cli(['init', '--cidr', '10.0.0.0/29', '--agents', '9', '--yes'], { cwd: root });
    expect(small.code).toBe(2);
    expect(small.stderr).toMatch(/--cidr 10.0.0.0\/29: 10 nodes from .* do not fit/);
  });

  it('refuses a private key file and a missing one', async () => {
    const root = tmp();
    const priv = keyFile(root, '-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn…\n-----END OPENSSH PRIVATE KEY-----\n');
    const r = await cli(['init', '--ssh-key', priv, '--yes'], { cwd: root });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is a private key; give the public half');
    const m = await cli(['init', '--ssh-key', join(root, 'nope.pub'), '--yes'], { cwd: root });
    expect(m.code).toBe(2);
    expect(m.stderr).toContain('nope.pub: no such file');
    expect(readdirSync(root).filter((f) => f !== 'id_ed25519.pub')).toEqual([]);
  });

  it('never overwrites an existing inventory', async () => {
    const root = tmp();
    mkdirSync(join(root, 'nodes'));
    writeFileSync(join(root, 'nodes', 'cluster.yaml'), 'mine\n');
    const r = await cli(['init', '--yes'], { cwd: root });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: nodes already holds an inventory (cluster.yaml); init never overwrites one');
    expect(readdirSync(join(root, 'nodes'))).toEqual(['cluster.yaml']);
    expect(readFileSync(join(root, 'nodes', 'cluster.yaml'), 'utf8')).toBe('mine\n');
  });

  it('fills an existing empty directory', async () => {
    const root = tmp();
    mkdirSync(join(root, 'inv'));
    writeFileSync(join(root, 'inv', 'README'), 'notes\n');
    const r = await cli(['init', '-i', 'inv', '--servers', '1', '--agents', '0', '--ssh-key', keyFile(root)], { cwd: root });
    expect(r.code).toBe(0);
    expect(readdirSync(join(root, 'inv')).sort()).toEqual(['README', 'cluster.yaml', 'pi-cluster-1.yaml']);
  });
});

describe('pi-image init (questions on a terminal)', () => {
  it('asks for what no flag gave, re-asks a bad answer, and takes the defaults on Enter', async () => {
    const root = tmp();
    const key = keyFile(root);
    const answers = ['homelab', '2', '3', '4', '172.16.0.0/24', '', 'pi4', key];
    const asked: string[] = [];
    const r = await cli(['init'], {
      cwd: root,
      env: { ...process.env, HOME: root },
      prompt: async (q) => {
        asked.push(q);
        const a = answers.shift();
        if (a === undefined) throw new Error(`unexpected question: ${q}`);
        return a;
      },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(asked).toEqual([
      'Cluster name [pi-cluster]: ',
      'Servers (control plane: 1, 3 or 5) [1]: ',
      'Servers (control plane: 1, 3 or 5) [1]: ',
      'Agents (workers) [2]: ',
      'Node network (CIDR), or "dhcp" [10.0.0.0/24]: ',
      'Gateway [172.16.0.1]: ',
      'Board (pi4 or pi5) [pi5]: ',
      'SSH public key file for the admin user [none: a placeholder]: ',
    ]);
    expect(r.stderr).toContain('an odd number (etcd quorum), please');
    const dir = join(root, 'nodes');
    expect(readdirSync(dir).sort()).toEqual(['cluster.yaml', ...[1, 2, 3, 4, 5, 6, 7].map((i) => `homelab-${i}.yaml`)]);
    const cluster = readFileSync(join(dir, 'cluster.yaml'), 'utf8');
    expect(cluster).toContain('name: homelab');
    expect(cluster).toContain('gateway: 172.16.0.1');
    expect(cluster).toContain(KEY);
    expect(readFileSync(join(dir, 'homelab-7.yaml'), 'utf8')).toMatch(/role: agent\n[^]*board: pi4/);
    expect((await cli(['validate', '--strict'], { cwd: root })).code).toBe(0);
  });

  it('asks nothing that a flag gave, and nothing at all with --yes', async () => {
    const root = tmp();
    const asked: string[] = [];
    const prompt = async (q: string) => {
      asked.push(q);
      return '';
    };
    const r = await cli(['init', '--cluster-name', 'x', '--servers', '1', '--agents', '1', '--cidr', '10.1.0.0/24', '--board', 'pi4', '--ssh-key', keyFile(root)], { cwd: root, prompt });
    expect(r.code).toBe(0);
    expect(asked).toEqual(['Gateway [10.1.0.1]: ']);
    const again = await cli(['init', 'other', '--yes'], { cwd: root, prompt });
    expect(again.code).toBe(0);
    expect(asked).toHaveLength(1);
  });

  // the real terminal path: a pty from util-linux `script`, answers typed ahead in one go
  it.skipIf(!existsSync('/usr/bin/script'))('on a real terminal, reads answers typed ahead', () => {
    const root = tmp();
    const tsx = join(REPO_ROOT, 'node_modules/.bin/tsx');
    const out = execFileSync('script', ['-qfec', `${tsx} ${join(REPO_ROOT, 'src/cli.ts')} init`, '/dev/null'], {
      cwd: root,
      input: 'lab\n1\n1\n\n\npi4\n\n',
      env: { ...process.env, HOME: root },
      encoding: 'utf8',
    });
    expect(out).toContain('SSH public key file for the admin user [none: a placeholder]:');
    expect(out).toContain('created nodes/ with cluster.yaml, lab-1.yaml, lab-2.yaml');
    expect(readFileSync(join(root, 'nodes', 'lab-2.yaml'), 'utf8')).toMatch(/role: agent\n[^]*board: pi4/);
  });
});
