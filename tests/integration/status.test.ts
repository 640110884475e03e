/**
 * `pi-image status` against a REAL OpenSSH server on 127.0.0.1 (tests/helpers/sshd.ts). The status
 * file it reads is written by the join script's own `write_status` (taken from the rendered
 * pi-image-join of the sample inventory), so the reader is checked against what nodes write.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeStatus } from '../../src/core/status.js';
import { cli } from '../helpers/run-cli.js';
import { freePort, startSshd, type TestSshd } from '../helpers/sshd.js';

const ROOT = join(import.meta.dirname, '..', '..');
const NODES = join(ROOT, 'nodes');
const JOIN_SCRIPT = join(ROOT, 'tests', 'golden', 'pi-cluster-4', 'rootfs', 'usr', 'local', 'sbin', 'pi-image-join');
const isRoot = process.getuid?.() === 0;

/** Runs the join script's json_string + write_status with the given state, into `dir`/status.json. */
function writeStatusAsTheNodeDoes(dir: string, state: { phase: string; attempts: number; lastError?: string; run?: number }): void {
  const script = readFileSync(JOIN_SCRIPT, 'utf8');
  const fn = (name: string): string => {
    const m = new RegExp(`^${name}\\(\\) \\{\\n[\\s\\S]*?^\\}\\n`, 'm').exec(script);
    if (!m) throw new Error(`${name} not found in ${JOIN_SCRIPT}`);
    return m[0];
  };
  mkdirSync(dir, { recursive: true });
  const prog = [
    'set -Eeuo pipefail',
    `readonly STATUS_DIR=${JSON.stringify(dir)}`,
    'readonly STATUS_FILE="$STATUS_DIR/status.json"',
    "NODE_NAME=pi-cluster-4; ROLE=agent; STARTED_AT=2026-12-01T20:00:00Z",
    `PHASE=${JSON.stringify(state.phase)}; ATTEMPTS=${state.attempts}; RUN=${state.run ?? 1}`,
    `LAST_ERROR=${JSON.stringify(state.lastError ?? '')}`,
    fn('json_string'),
    fn('write_status'),
    'write_status',
  ].join('\n');
  execFileSync('bash', ['-c', prog], { stdio: 'pipe' });
}

describe.skipIf(!isRoot)('pi-image status against a real sshd on 127.0.0.1', () => {
  let sshd: TestSshd;
  let home: string;
  let statusDir: string;

  beforeAll(async () => {
    sshd = await startSshd();
    home = join(sshd.dir, 'home');
    mkdirSync(home);
    statusDir = join(sshd.dir, 'var-lib-pi-image');
  });
  afterAll(async () => sshd?.stop());

  const status = (args: string[]) =>
    cli(['status', '-i', NODES, '--user', 'root', '--identity', sshd.identity, '--known-hosts', join(home, 'known_hosts'), '--remote-path', join(statusDir, 'status.json'), '--timeout', '20s', ...args], {
      cwd: sshd.dir,
      env: { HOME: home },
    });

  it('a node waiting for its server: phase, attempt and the last error, as a table and as JSON', async () => {
    writeStatusAsTheNodeDoes(statusDir, { phase: 'waiting-for-server', attempts: 7, run: 2, lastError: 'k3s server https://10.0.0.11:6443 does not answer' });
    const r = await status(['pi-cluster-4', '--host', '127.0.0.1', '--ssh-port', String(sshd.port)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^NODE\s+PHASE\s+ATTEMPTS\s+JOINED-AT\s+CLOUD-INIT\s+LAST-ERROR$/m);
    expect(r.stdout).toMatch(/^pi-cluster-4\s+waiting-for-server\s+7\s+-\s+\S+\s+k3s server https:\/\/10\.0\.0\.11:6443 does not answer$/m);
    const j = await status(['pi-cluster-4', '--host', '127.0.0.1', '--ssh-port', String(sshd.port), '-o', 'json']);
    expect(j.code).toBe(0);
    const nodes = (JSON.parse(j.stdout) as { nodes: NodeStatus[] }).nodes;
    expect(nodes).toHaveLength(1);
    expect(nodes[0]).toMatchObject({
      node: 'pi-cluster-4',
      host: '127.0.0.1',
      reachable: true,
      status: { node: 'pi-cluster-4', role: 'agent', phase: 'waiting-for-server', run: 2, attempts: 7, lastError: 'k3s server https://10.0.0.11:6443 does not answer', joinedAt: null },
    });
  });

  it('a joined node shows when it joined', async () => {
    writeStatusAsTheNodeDoes(statusDir, { phase: 'joined', attempts: 0 });
    const j = await status(['pi-cluster-4', '--host', '127.0.0.1', '--ssh-port', String(sshd.port), '-o', 'json']);
    const node = (JSON.parse(j.stdout) as { nodes: NodeStatus[] }).nodes[0]!;
    expect(node.status?.phase).toBe('joined');
    expect(node.status?.joinedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('a node without a status file yet says so (exit 1)', async () => {
    rmSync(statusDir, { recursive: true, force: true });
    const r = await status(['pi-cluster-4', '--host', '127.0.0.1', '--ssh-port', String(sshd.port)]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^pi-cluster-4\s+no-status\s+.*no .*status\.json yet \(pi-image-join has not started\)$/m);
  });

  it('an unreachable node says so, and a silent one ends at --timeout (exit 1, JSON too)', async () => {
    const closed = await freePort();
    const r = await status(['pi-cluster-3', '--host', '127.0.0.1', '--ssh-port', String(closed)]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^pi-cluster-3\s+unreachable\s+-\s+-\s+-\s+cannot ssh to root@\[127\.0\.0\.1\]:\d+ \(ECONNREFUSED\)$/m);

    const sockets = new Set<Socket>();
    const silent = createServer((s) => void sockets.add(s.on('error', () => undefined)));
    await new Promise<void>((res) => silent.listen(0, '127.0.0.1', () => res()));
    try {
      const started = Date.now();
      const j = await cli(
        ['status', 'pi-cluster-3', '-i', NODES, '--host', '127.0.0.1', '--ssh-port', String((silent.address() as AddressInfo).port), '--user', 'root', '--identity', sshd.identity, '--known-hosts', join(home, 'known_hosts'), '--timeout', '3s', '-o', 'json'],
        { cwd: sshd.dir, env: { HOME: home } },
      );
      expect(Date.now() - started).toBeLessThan(60_000);
      expect(j.code).toBe(1);
      expect((JSON.parse(j.stdout) as { nodes: NodeStatus[] }).nodes[0]).toMatchObject({ node: 'pi-cluster-3', reachable: false, error: expect.stringMatching(/no answer within 3 s/) });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((res) => silent.close(() => res()));
    }
  });

  it('bad selections are input errors', async () => {
    const unknown = await status(['pi-cluster-9']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('pi-cluster-9 is not in the inventory');
    const twoHosts = await status(['pi-cluster-3', 'pi-cluster-4', '--host', '127.0.0.1']);
    expect(twoHosts.code).toBe(2);
    expect(twoHosts.stderr).toContain('--host names one address');
  });
});
