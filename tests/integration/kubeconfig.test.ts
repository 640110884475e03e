/**
 * `pi-image kubeconfig` against a REAL OpenSSH server (Debian openssh-server) started by this test
 * on 127.0.0.1 with its own host key, authorized_keys and config; a fake k3s.yaml in a temp dir is
 * served via --remote-path. Logs in as root (the test runs as root), so no sudo is needed.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadInventory } from '../../src/app/inventory.js';
import type { Io } from '../../src/app/io.js';
import { runCli } from '../../src/cli.js';
import type { Inventory } from '../../src/core/model.js';

const ROOT = join(import.meta.dirname, '..', '..');
const NODES = join(ROOT, 'nodes');
const isRoot = process.getuid?.() === 0;
const CLIENT_KEY_DATA = Buffer.from('-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIstandin-not-a-real-key-0123456789\n-----END EC PRIVATE KEY-----\n').toString('base64');
const FAKE_K3S_YAML = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${Buffer.from('-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhrM3Mtc2VydmVy\n-----END CERTIFICATE-----\n').toString('base64')}
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: ${Buffer.from('-----BEGIN CERTIFICATE-----\nMIIBkTCCATegAwIBAgIIclient\n-----END CERTIFICATE-----\n').toString('base64')}
    client-key-data: ${CLIENT_KEY_DATA}
`;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function keygen(path: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'pi-image-test', '-f', path], { stdio: 'pipe' });
}

describe.skipIf(!isRoot)('pi-image kubeconfig against a real sshd on 127.0.0.1', () => {
  let dir: string;
  let home: string;
  let sshd: ChildProcess | undefined;
  let sshdLog = '';
  let port: number;
  let inv: Inventory;
  let fake: string;
  let identity: string;
  let knownHosts: string;

  beforeAll(async () => {
    inv = await loadInventory(NODES, { cwd: ROOT });
    dir = mkdtempSync(join(tmpdir(), 'pi-image-ssh-'));
    home = join(dir, 'home');
    mkdirSync(home);
    keygen(join(dir, 'host_ed25519'));
    identity = join(dir, 'id_ed25519');
    keygen(identity);
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${identity}.pub`));
    fake = join(dir, 'k3s.yaml');
    writeFileSync(fake, FAKE_K3S_YAML, { mode: 0o600 });
    knownHosts = join(home, '.config', 'pi-image', 'known_hosts');
    port = await freePort();
    writeFileSync(
      join(dir, 'sshd_config'),
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host_ed25519')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        'StrictModes no',
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
    );
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation dir sshd insists on
    sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'pipe', 'pipe'] });
    sshd.stdout?.on('data', (c: Buffer) => (sshdLog += c.toString()));
    sshd.stderr?.on('data', (c: Buffer) => (sshdLog += c.toString()));
    const deadline = Date.now() + 10_000;
    for (;;) {
      const up = await new Promise<boolean>((r) => {
        const s = connect(port, '127.0.0.1', () => (s.end(), r(true)));
        s.on('error', () => r(false));
      });
      if (up) break;
      if (Date.now() > deadline || sshd.exitCode !== null) throw new Error(`sshd did not start:\n${sshdLog}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(async () => {
    if (sshd && sshd.exitCode === null) {
      const exited = new Promise((r) => sshd!.once('exit', r));
      sshd.kill('SIGTERM');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function kubeconfig(extra: string[], env: NodeJS.ProcessEnv = {}) {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (t) => void out.push(t), err: (t) => void err.push(t), isTTY: false, env: { HOME: home, ...env }, cwd: dir };
    const code = await runCli(
      ['kubeconfig', '-i', NODES, '--host', '127.0.0.1', '--ssh-port', String(port), '--user', 'root', '--identity', identity, '--known-hosts', knownHosts, '--remote-path', fake, '--timeout', '15s', ...extra],
      io,
    );
    const stdout = out.join('');
    const stderr = err.join('');
    expect(stdout + stderr, 'the client key must never be printed').not.toContain(CLIENT_KEY_DATA);
    return { code, stdout, stderr };
  }

  const hostFingerprint = () => execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'host_ed25519.pub')]).toString().split(' ')[1]!;

  it('first contact: records the host key (TOFU), rewrites server and names, writes 0600', async () => {
    const outFile = join(dir, 'out', 'pi.yaml');
    const r = await kubeconfig(['--out', outFile]);
    expect(r.stderr).not.toMatch(/^error/m);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${inv.cluster.name}\n`);
    expect(r.stderr).toContain(`first contact with 127.0.0.1: recorded its ssh-ed25519 host key ${hostFingerprint()}`);
    const kh = readFileSync(knownHosts, 'utf8');
    const hostPub = readFileSync(join(dir, 'host_ed25519.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
    expect(kh).toBe(`[127.0.0.1]:${port} ${hostPub}\n`);
    expect(statSync(outFile).mode & 0o777).toBe(0o600);
    const doc = parse(readFileSync(outFile, 'utf8')) as Record<string, unknown>;
    const original = parse(FAKE_K3S_YAML) as { clusters: { cluster: Record<string, string> }[]; users: { user: Record<string, string> }[] };
    expect(doc).toMatchObject({
      kind: 'Config',
      'current-context': inv.cluster.name,
      clusters: [{ name: inv.cluster.name, cluster: { server: inv.cluster.k3s.serverUrl, 'certificate-authority-data': original.clusters[0]!.cluster['certificate-authority-data'] } }],
      users: [{ name: inv.cluster.name, user: original.users[0]!.user }],
      contexts: [{ name: inv.cluster.name, context: { cluster: inv.cluster.name, user: inv.cluster.name } }],
    });
  });

  it('-v traces the SSH login, the remote command and the file written', async () => {
    const outFile = join(dir, 'out', 'traced.yaml');
    const r = await kubeconfig(['--out', outFile, '-v']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^\\+ ssh root@\\[127\\.0\\.0\\.1\\]:${port}: connecting \\(key `, 'm'));
    expect(r.stderr).toMatch(/^\+ ssh .*: logged in with .*; host key ssh-ed25519 SHA256:\S+; running: /m);
    expect(r.stderr).toMatch(/^\+ ssh .*: exit 0, \d+ bytes out, [\d.]+ s$/m);
    expect(r.stderr).toContain(`+ wrote ${outFile}`);
  });

  it('second contact: key is known, nothing new recorded; -o json reports it', async () => {
    const before = readFileSync(knownHosts, 'utf8');
    const r = await kubeconfig(['--out', join(dir, 'out', 'again.yaml'), '-o', 'json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ context: inv.cluster.name, merged: false, hostKey: { status: 'known', type: 'ssh-ed25519', fingerprint: hostFingerprint() } });
    expect(r.stderr).not.toContain('first contact');
    expect(readFileSync(knownHosts, 'utf8')).toBe(before);
  });

  it('--merge keeps other entries, replaces the same-named ones and switches context', async () => {
    const kubeDir = join(home, '.kube');
    mkdirSync(kubeDir, { recursive: true });
    const existing = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'work', cluster: { server: 'https://k8s.example.invalid:6443' } },
        { name: 'pi-lab', cluster: { server: 'https://stale.invalid:6443' } },
      ],
      users: [{ name: 'work', user: { token: 'work-token' } }, { name: 'pi-lab', user: { token: 'stale' } }],
      contexts: [
        { name: 'work', context: { cluster: 'work', user: 'work', namespace: 'apps' } },
        { name: 'pi-lab', context: { cluster: 'pi-lab', user: 'pi-lab' } },
      ],
      'current-context': 'work',
    };
    writeFileSync(join(kubeDir, 'config'), stringify(existing), { mode: 0o644 });
    const original = readFileSync(join(kubeDir, 'config'), 'utf8');
    // pi-lab points at another server: refused without --force, nothing written
    const refused = await kubeconfig(['--merge', '--context', 'pi-lab']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`error: ${join(kubeDir, 'config')}: context "pi-lab" already points at another cluster (https://stale.invalid:6443) — refusing to overwrite it`);
    expect(refused.stderr).toMatch(/^hint: .*--context NAME.*--force/m);
    expect(readFileSync(join(kubeDir, 'config'), 'utf8')).toBe(original);
    expect(existsSync(join(kubeDir, 'config.bak'))).toBe(false);
    const r = await kubeconfig(['--merge', '--context', 'pi-lab', '--force']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`the previous file is in ${join(kubeDir, 'config.bak')}`);
    expect(readFileSync(join(kubeDir, 'config.bak'), 'utf8')).toBe(original);
    expect(statSync(join(kubeDir, 'config.bak')).mode & 0o777).toBe(0o600);
    expect(r.stdout).toBe('pi-lab\n');
    const merged = parse(readFileSync(join(kubeDir, 'config'), 'utf8')) as typeof existing;
    expect(statSync(join(kubeDir, 'config')).mode & 0o777).toBe(0o600);
    expect(merged['current-context']).toBe('pi-lab');
    expect(merged.clusters.map((c) => c.name)).toEqual(['work', 'pi-lab']);
    expect(merged.clusters[0]).toEqual(existing.clusters[0]);
    expect(merged.clusters[1]!.cluster.server).toBe(inv.cluster.k3s.serverUrl);
    expect(merged.users[0]).toEqual(existing.users[0]);
    expect(merged.contexts).toEqual([existing.contexts[0], { name: 'pi-lab', context: { cluster: 'pi-lab', user: 'pi-lab' } }]);
  });

  it('--merge targets the first file of $KUBECONFIG and --no-switch keeps the current context', async () => {
    const first = join(dir, 'kc-first.yaml');
    writeFileSync(first, stringify({ apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [{ name: 'home', context: { cluster: 'h', user: 'h' } }], 'current-context': 'home' }));
    const r = await kubeconfig(['--merge', '--no-switch'], { KUBECONFIG: `${first}:${join(dir, 'kc-second.yaml')}` });
    expect(r.code).toBe(0);
    const merged = parse(readFileSync(first, 'utf8')) as { 'current-context': string; contexts: { name: string }[] };
    expect(merged['current-context']).toBe('home');
    expect(merged.contexts.map((c) => c.name)).toEqual(['home', inv.cluster.name]);
    expect(existsSync(join(dir, 'kc-second.yaml'))).toBe(false);
  });

  it('a changed host key is refused with ClusterError (exit 5) and nothing is written', async () => {
    const otherKey = join(dir, 'other_host');
    keygen(otherKey);
    const pinned = join(dir, 'known_hosts_other');
    writeFileSync(pinned, `# pinned earlier\n[127.0.0.1]:${port} ${readFileSync(`${otherKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
    const outFile = join(dir, 'out', 'refused.yaml');
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(
      ['kubeconfig', '-i', NODES, '--host', '127.0.0.1', '--ssh-port', String(port), '--user', 'root', '--identity', identity, '--known-hosts', pinned, '--remote-path', fake, '--out', outFile],
      { out: (t) => void out.push(t), err: (t) => void err.push(t), isTTY: false, env: { HOME: home }, cwd: dir },
    );
    expect(code).toBe(5);
    expect(err.join('')).toContain(`the host key of [127.0.0.1]:${port} CHANGED: it presented ssh-ed25519 ${hostFingerprint()}`);
    expect(err.join('')).toMatch(/^hint: .*reflashed.*delete line 2 of /m);
    expect(existsSync(outFile)).toBe(false);
    expect(readFileSync(pinned, 'utf8').split('\n').filter(Boolean)).toHaveLength(2);
  });

  it('a missing k3s.yaml is a clear ClusterError', async () => {
    const r = await kubeconfig(['--remote-path', join(dir, 'no-such', 'k3s.yaml'), '--out', join(dir, 'out', 'missing.yaml')]);
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/could not read root@127\.0\.0\.1:.*no-such\/k3s\.yaml \(exit 1: cat: .*No such file or directory\)/);
    expect(r.stderr).toMatch(/^hint: is k3s installed and started/m);
    expect(existsSync(join(dir, 'out', 'missing.yaml'))).toBe(false);
  });

  it('a key the server does not accept, and a missing key file, are told apart', async () => {
    const stranger = join(dir, 'stranger');
    keygen(stranger);
    const refused = await kubeconfig(['--identity', stranger, '--out', join(dir, 'out', 'x.yaml')]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain(`error: ssh root@[127.0.0.1]:${port}: the server refused ${stranger} (authentication failed)`);
    expect(refused.stderr.match(/^error:/gm)).toHaveLength(1);
    expect(refused.stderr).not.toMatch(/^\s+at /m);
    const none = await kubeconfig(['--identity', join(dir, 'nope'), '--out', join(dir, 'out', 'x.yaml')]);
    expect(none.code).toBe(3);
    expect(none.stderr).toContain(`no SSH private key at ${join(dir, 'nope')} (--identity: ENOENT)`);
  });

  it('a silent peer on the SSH port (accepts TCP, never answers) ends at --timeout with one clear line', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const silent = createServer((c) => void sockets.add(c.on('error', () => undefined)));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      const started = Date.now();
      const out: string[] = [];
      const err: string[] = [];
      const code = await runCli(
        ['kubeconfig', '-i', NODES, '--host', '127.0.0.1', '--ssh-port', String((silent.address() as AddressInfo).port), '--user', 'root', '--identity', identity, '--known-hosts', knownHosts, '--timeout', '3s', '--out', join(dir, 'out', 'silent.yaml')],
        { out: (t) => void out.push(t), err: (t) => void err.push(t), isTTY: false, env: { HOME: home }, cwd: dir },
      );
      expect(Date.now() - started).toBeLessThan(60_000);
      expect(code).toBe(5);
      expect(err.join('')).toMatch(/^error: ssh root@\[127\.0\.0\.1\]:\d+: no answer within 3 s \(--timeout\)$/m);
      expect(existsSync(join(dir, 'out', 'silent.yaml'))).toBe(false);
    } finally {
      for (const c of sockets) c.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  /** One error line (plus its hint), no stack trace. */
  function oneClearError(stderr: string): void {
    expect(stderr.match(/^error:/gm), stderr).toHaveLength(1);
    expect(stderr).not.toMatch(/^\s+at /m);
    expect(stderr).not.toContain('internal error');
  }

  describe('SSH keys as operators have them', () => {
    let encrypted: string;
    let agentSock: string;
    let agent: ChildProcess | undefined;

    beforeAll(async () => {
      encrypted = join(dir, 'id_encrypted');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'correct horse', '-C', 'pi-image-test-enc', '-f', encrypted], { stdio: 'pipe' });
      writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${identity}.pub`, 'utf8') + readFileSync(`${encrypted}.pub`, 'utf8'));
      // a real ssh-agent (openssh-client) in the foreground on a socket of this test's own
      agentSock = join(dir, 'agent.sock');
      agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: ['ignore', 'pipe', 'pipe'] });
      const deadline = Date.now() + 20_000;
      while (!existsSync(agentSock)) {
        if (Date.now() > deadline || agent.exitCode !== null) throw new Error('ssh-agent did not start');
        await new Promise((r) => setTimeout(r, 50));
      }
    });
    afterAll(async () => {
      if (agent && agent.exitCode === null) {
        const exited = new Promise((r) => agent!.once('exit', r));
        agent.kill('SIGTERM');
        await exited;
      }
    });

    it('a .pub file: one line naming the private half, exit 3, before any connection', async () => {
      const r = await kubeconfig(['--identity', `${identity}.pub`, '--out', join(dir, 'out', 'pub.yaml')]);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`error: ${identity}.pub (--identity) is a public key; SSH needs the private key`);
      expect(r.stderr).toContain(`hint: pass the private half: --identity ${identity}`);
      oneClearError(r.stderr);
    });

    it('a file that is no key at all: exit 3', async () => {
      const r = await kubeconfig(['--identity', fake, '--out', join(dir, 'out', 'nokey.yaml')]);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`error: ${fake} (--identity) is not an SSH private key`);
      oneClearError(r.stderr);
    });

    it('an encrypted key with no passphrase and no terminal: exit 3 naming the variable', async () => {
      const started = Date.now();
      const r = await kubeconfig(['--identity', encrypted, '--out', join(dir, 'out', 'enc.yaml')]);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`error: ${encrypted} (--identity) is encrypted and no passphrase was given`);
      expect(r.stderr).toMatch(/^hint: set \$PI_IMAGE_SSH_PASSPHRASE/m);
      oneClearError(r.stderr);
      expect(Date.now() - started).toBeLessThan(30_000); // it used to hang 32 s
    });

    it('a wrong passphrase: exit 3, the passphrase never printed', async () => {
      const r = await kubeconfig(['--identity', encrypted, '--out', join(dir, 'out', 'enc.yaml')], { PI_IMAGE_SSH_PASSPHRASE: 'battery staple' });
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`error: wrong passphrase for ${encrypted} (--identity)`);
      expect(r.stderr).not.toContain('battery staple');
      oneClearError(r.stderr);
    });

    it('the right passphrase from $PI_IMAGE_SSH_PASSPHRASE logs in', async () => {
      const r = await kubeconfig(['--identity', encrypted, '--out', join(dir, 'out', 'enc.yaml')], { PI_IMAGE_SSH_PASSPHRASE: 'correct horse' });
      expect(r.code, r.stderr).toBe(0);
      expect(existsSync(join(dir, 'out', 'enc.yaml'))).toBe(true);
    });

    it('the passphrase prompt is used on a terminal (hidden input through Io.promptSecret)', async () => {
      const asked: string[] = [];
      const out: string[] = [];
      const err: string[] = [];
      const code = await runCli(
        ['kubeconfig', '-i', NODES, '--host', '127.0.0.1', '--ssh-port', String(port), '--user', 'root', '--identity', encrypted, '--known-hosts', knownHosts, '--remote-path', fake, '--timeout', '15s', '--out', join(dir, 'out', 'prompted.yaml')],
        { out: (t) => void out.push(t), err: (t) => void err.push(t), isTTY: true, env: { HOME: home }, cwd: dir, promptSecret: async (q) => (asked.push(q), 'correct horse') },
      );
      expect(code, err.join('')).toBe(0);
      expect(asked).toEqual([`Enter passphrase for key '${encrypted}': `]);
    });

    it('ssh-agent first: with the key in the agent, no key file and no passphrase are needed', async () => {
      execFileSync('ssh-add', ['-q', identity], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: 'pipe' });
      try {
        // no --identity, no ~/.ssh/id_ed25519 in this HOME: only the agent can log in
        const out: string[] = [];
        const err: string[] = [];
        const code = await runCli(
          ['kubeconfig', '-i', NODES, '--host', '127.0.0.1', '--ssh-port', String(port), '--user', 'root', '--known-hosts', knownHosts, '--remote-path', fake, '--timeout', '15s', '--out', join(dir, 'out', 'agent.yaml')],
          { out: (t) => void out.push(t), err: (t) => void err.push(t), isTTY: false, env: { HOME: home, SSH_AUTH_SOCK: agentSock }, cwd: dir },
        );
        expect(code, err.join('')).toBe(0);
        expect(existsSync(join(dir, 'out', 'agent.yaml'))).toBe(true);
        // an encrypted --identity is not unlocked when the agent already got us in
        const r = await kubeconfig(['--identity', encrypted, '--out', join(dir, 'out', 'agent2.yaml')], { SSH_AUTH_SOCK: agentSock });
        expect(r.code, r.stderr).toBe(0);
      } finally {
        execFileSync('ssh-add', ['-D'], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: 'pipe' });
      }
    });

    it('an agent whose keys are refused falls back to the key file; both refused is one exit-5 line', async () => {
      const stranger = join(dir, 'stranger-agent');
      keygen(stranger);
      execFileSync('ssh-add', ['-q', stranger], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: 'pipe' });
      try {
        const ok = await kubeconfig(['--out', join(dir, 'out', 'fallback.yaml')], { SSH_AUTH_SOCK: agentSock });
        expect(ok.code, ok.stderr).toBe(0);
        const refused = await kubeconfig(['--identity', stranger, '--out', join(dir, 'out', 'refused2.yaml')], { SSH_AUTH_SOCK: agentSock });
        expect(refused.code).toBe(5);
        expect(refused.stderr).toContain(`the server refused the keys of ssh-agent and ${stranger} (authentication failed)`);
        oneClearError(refused.stderr);
      } finally {
        execFileSync('ssh-add', ['-D'], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: 'pipe' });
      }
    });
  });
});
