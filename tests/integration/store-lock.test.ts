/**
 * src/adapters/lock.ts: one lock per store, held across read-modify-write. Real files, real
 * processes: a live holder makes a second taker wait (and fail naming the holder when the wait is
 * over), a dead holder's lock is taken over, and N concurrent `pi-image secrets` processes lose
 * no reported change.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireLock, withLock } from '../../src/adapters/lock.js';
import { readRecipients } from '../../src/adapters/secrets-file.js';
import { readSecretsStore } from '../../src/app/secrets.js';
import { EnvironmentError } from '../../src/core/errors.js';
import { type SecretName, fingerprint } from '../../src/core/secrets.js';
import { CLUSTER, type SecretsFixture, makeSecretsFixture, runSecretsCli } from '../helpers/secrets-fixture.js';
import { REPO_ROOT } from '../helpers/sample-inventory.js';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'pi-image-lock-'));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

/** A pid that certainly belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('acquireLock', () => {
  it('a second taker waits while the holder lives, then fails naming it (pid, what it does); the holder releases', async () => {
    const path = join(tmp, 'store.lock');
    const held = await acquireLock(path, { what: 'rotating cluster-token' });
    const e = await acquireLock(path, { what: 'setting wifi-psk', waitMs: 300 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EnvironmentError);
    expect((e as Error).message).toContain(`pid ${process.pid}`);
    expect((e as Error).message).toContain('rotating cluster-token');
    expect((e as EnvironmentError).hint).toContain(path);
    await held.release();
    expect(existsSync(path)).toBe(false);
    // free again: the next taker gets it at once
    await withLock(path, { what: 'x', waitMs: 0 }, async () => expect(existsSync(path)).toBe(true));
    expect(existsSync(path)).toBe(false);
  });

  it('waits for the holder and then gets the lock', async () => {
    const path = join(tmp, 'store.lock');
    const held = await acquireLock(path, { what: 'first' });
    const order: string[] = [];
    const second = withLock(path, { what: 'second' }, async () => {
      order.push('second');
    });
    await new Promise((r) => setTimeout(r, 200));
    order.push('first done');
    await held.release();
    await second;
    expect(order).toEqual(['first done', 'second']);
  });

  it('takes over the lock of a process that is gone (e.g. SIGKILLed), and says from whom', async () => {
    const path = join(tmp, 'store.lock');
    const pid = deadPid();
    writeFileSync(path, JSON.stringify({ pid, host: hostname(), since: '2025-01-01T00:00:00.000Z', what: 'rotating' }));
    const lock = await acquireLock(path, { what: 'after a crash', waitMs: 0 });
    expect(lock.tookOverFrom?.pid).toBe(pid);
    expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(process.pid);
    await lock.release();
    expect(existsSync(path)).toBe(false);
  });

  it('a lock held by a process on another host is never taken over', async () => {
    const path = join(tmp, 'store.lock');
    writeFileSync(path, JSON.stringify({ pid: deadPid(), host: 'some-other-host', since: 'x', what: 'fetching' }));
    const e = await acquireLock(path, { what: 'x', waitMs: 100 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EnvironmentError);
    expect((e as EnvironmentError).hint).toContain('some-other-host');
    expect(existsSync(path)).toBe(true);
  });
});

describe('concurrent secrets changes (real processes)', () => {
  let fx: SecretsFixture;
  beforeEach(() => {
    fx = makeSecretsFixture({ wifi: true });
  });
  afterEach(() => fx.cleanup());

  function cliProcess(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const tsx = pathToFileURL(join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', tsx, join(REPO_ROOT, 'src/cli.ts'), '-i', fx.dir, '-o', 'json', ...args], {
        env,
        cwd: fx.root,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('N concurrent set / rotate / recipients add: every reported change is in the store afterwards', async () => {
    expect((await runSecretsCli(fx, ['secrets', 'init'])).code).toBe(0);
    const mates = await Promise.all([1, 2].map(async () => identityToRecipient(await generateIdentity())));
    const env = { ...fx.env, PATH: process.env.PATH };
    const jobs: { args: string[]; env: NodeJS.ProcessEnv }[] = [
      { args: ['secrets', 'rotate', 'cluster-token'], env },
      { args: ['secrets', 'rotate', 'agent-token'], env },
      { args: ['secrets', 'rotate', 'node-password-seed'], env },
      { args: ['secrets', 'set', 'wifi-psk', '--from-env', 'PSK'], env: { ...env, PSK: 'first-passphrase-1' } },
      { args: ['secrets', 'rotate', 'cluster-token'], env },
      { args: ['secrets', 'set', 'wifi-psk', '--from-env', 'PSK'], env: { ...env, PSK: 'second-passphrase-2' } },
      { args: ['secrets', 'recipients', 'add', mates[0]!], env },
      { args: ['secrets', 'recipients', 'add', mates[1]!], env },
    ];
    const results = await Promise.all(jobs.map((j) => cliProcess(j.args, j.env)));
    // every process reports success, each with its own version: no two changes built on the same state
    const reports = results.map((r, i) => {
      expect(r.code, `${jobs[i]!.args.join(' ')}: ${r.stderr}`).toBe(0);
      return JSON.parse(r.stdout) as { version: number; fingerprints?: Record<string, { after: string }>; fingerprint?: { after: string }; name?: string };
    });
    const versions = reports.map((r) => r.version).sort((a, b) => a - b);
    expect(versions).toEqual(jobs.map((_, i) => i + 2)); // init made version 1; each change is exactly one more

    const { store } = await readSecretsStore(fx.dir, CLUSTER, { env: fx.env });
    expect(store.version).toBe(jobs.length + 1);
    // for each secret, the value in the store is the one the latest (highest version) change reported
    const latest = new Map<string, { version: number; after: string }>();
    for (const r of reports) {
      const changed: [string, { after: string }][] = r.fingerprints ? Object.entries(r.fingerprints) : r.name && r.fingerprint ? [[r.name, r.fingerprint]] : [];
      for (const [name, f] of changed) {
        if ((latest.get(name)?.version ?? 0) < r.version) latest.set(name, { version: r.version, after: f.after });
      }
    }
    expect([...latest.keys()].sort()).toEqual(['agent-token', 'cluster-token', 'node-password-seed', 'wifi-psk']);
    for (const [name, { after }] of latest) expect(fingerprint(store.secrets[name as SecretName]!.value), name).toBe(after);
    // both added recipients are listed, and nothing was left behind (no lock, no temp files)
    const recipients = await readRecipients(fx.dir);
    for (const m of mates) expect(recipients).toContain(m);
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(fx.dir).sort()).toEqual(['cluster.yaml', 'secrets.age', 'secrets.recipients']);
  }, 600_000); // eight CLI processes starting under tsx on a loaded machine
});
