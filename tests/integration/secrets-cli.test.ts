/**
 * `pi-image secrets …` run in-process (runCli) against a temp inventory and a temp key home.
 * The central property: no secret value reaches stdout/stderr, except the one named by --reveal.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createKey } from '../../src/adapters/age-key.js';
import { secretsFilePath } from '../../src/adapters/secrets-file.js';
import { readSecretsStore } from '../../src/app/secrets.js';
import { SECRET_NAMES, type SecretName, fingerprint } from '../../src/core/secrets.js';
import { CLUSTER, type CapturedRun, type SecretsFixture, makeSecretsFixture, runSecretsCli } from '../helpers/secrets-fixture.js';

let fx: SecretsFixture;
beforeEach(() => {
  fx = makeSecretsFixture({ wifi: true });
});
afterEach(() => fx.cleanup());

async function values(f: SecretsFixture = fx): Promise<Partial<Record<SecretName, string>>> {
  const { store } = await readSecretsStore(f.dir, CLUSTER, { env: f.env });
  const out: Partial<Record<SecretName, string>> = {};
  for (const n of SECRET_NAMES) if (store.secrets[n]) out[n] = store.secrets[n]!.value;
  return out;
}

function expectNoValues(run: CapturedRun, secretValues: readonly (string | undefined)[]): void {
  const all = run.stdout + run.stderr;
  for (const v of secretValues) if (v) expect(all).not.toContain(v);
}

async function ok(argv: string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CapturedRun> {
  const r = await runSecretsCli(fx, argv, opts);
  if (r.code !== 0) throw new Error(`pi-image ${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

const PSK = 'Lab-Wifi-Passphrase-2025';

describe('pi-image secrets', () => {
  it('init creates the key and the file, prints the public key and no values', async () => {
    const r = await ok(['secrets', 'init']);
    expect(statSync(fx.keyPath).mode & 0o777).toBe(0o600);
    const v = await values();
    expect(Object.keys(v).sort()).toEqual(['agent-token', 'cluster-token', 'node-password-seed']);
    const { recipient } = await readSecretsStore(fx.dir, CLUSTER, { env: fx.env });
    expect(r.stdout).toContain(recipient);
    expect(r.stdout).toContain('pi-image secrets set wifi-psk'); // cluster.yaml has wifi
    expectNoValues(r, Object.values(v));
    expect(readFileSync(fx.keyPath, 'utf8')).not.toBe('');
    expect(r.stdout + r.stderr).not.toContain('AGE-SECRET-KEY');

    // running init again is safe: nothing changes
    const before = readFileSync(join(fx.dir, 'secrets.age'), 'utf8');
    const again = await runSecretsCli(fx, ['secrets', 'init']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already initialised \(version 1\).*nothing changed/);
    expect(readFileSync(join(fx.dir, 'secrets.age'), 'utf8')).toBe(before);
  });

  it('show prints name, status, length, fingerprint and version, never a value (text and json)', async () => {
    await ok(['secrets', 'init']);
    await ok(['secrets', 'set', 'wifi-psk'], { stdin: `${PSK}\n` });
    const v = await values();
    expect(v['wifi-psk']).toBe(PSK); // one trailing newline dropped

    const text = await ok(['secrets', 'show']);
    expectNoValues(text, Object.values(v));
    expect(text.stdout).toMatch(/secrets version 2/);
    for (const n of SECRET_NAMES) {
      const line = text.stdout.split('\n').find((l) => l.startsWith(`${n} `));
      expect(line, n).toBeDefined();
      expect(line).toContain('set');
      expect(line).toContain(String(v[n]!.length));
      expect(line).toContain(fingerprint(v[n]!));
    }

    const json = await ok(['secrets', 'show', '-o', 'json']);
    expectNoValues(json, Object.values(v));
    const doc = JSON.parse(json.stdout) as { version: number; secrets: { name: string; status: string; fingerprint: string; length: number }[]; revealed?: unknown };
    expect(doc.version).toBe(2);
    expect(doc.revealed).toBeUndefined();
    expect(doc.secrets.map((s) => [s.name, s.status, s.fingerprint, s.length])).toEqual(
      SECRET_NAMES.map((n) => [n, 'set', fingerprint(v[n]!), v[n]!.length]),
    );
  });

  it('show --reveal NAME prints only that value, and warns on stderr', async () => {
    await ok(['secrets', 'init']);
    await ok(['secrets', 'set', 'wifi-psk', '--from-env', 'MY_PSK'], { env: { ...fx.env, MY_PSK: PSK } });
    const v = await values();
    for (const name of SECRET_NAMES) {
      const r = await ok(['secrets', 'show', '--reveal', name]);
      expect(r.stdout).toBe(`${v[name]}\n`);
      expect(r.stderr).toMatch(/warning: printing the value of/);
      expect(r.stderr).not.toContain(v[name]!);
      expectNoValues(r, SECRET_NAMES.filter((n) => n !== name).map((n) => v[n]));

      const j = await ok(['secrets', 'show', '--reveal', name, '-o', 'json']);
      expect((JSON.parse(j.stdout) as { revealed: { name: string; value: string } }).revealed).toEqual({ name, value: v[name] });
      expectNoValues(j, SECRET_NAMES.filter((n) => n !== name).map((n) => v[n]));
    }
    const bad = await runSecretsCli(fx, ['secrets', 'show', '--reveal', 'everything']);
    expect(bad.code).toBe(2);
    expectNoValues(bad, Object.values(v));
  });

  it('set refuses a value on the command line without echoing it; reads --from-file', async () => {
    await ok(['secrets', 'init']);
    const onArgv = await runSecretsCli(fx, ['secrets', 'set', 'wifi-psk', 'TypedOnTheCommandLine']);
    expect(onArgv.code).toBe(2);
    expect(onArgv.stderr).toMatch(/never taken from the command line/);
    expect(onArgv.stdout + onArgv.stderr).not.toContain('TypedOnTheCommandLine');
    expect((await values())['wifi-psk']).toBeUndefined();

    const file = join(fx.root, 'psk.txt');
    writeFileSync(file, `${PSK}\r\n`, { mode: 0o600 });
    const r = await ok(['secrets', 'set', 'wifi-psk', '--from-file', file]);
    expectNoValues(r, [PSK]);
    expect(r.stdout).toContain(fingerprint(PSK));
    expect((await values())['wifi-psk']).toBe(PSK);

    const missingEnv = await runSecretsCli(fx, ['secrets', 'set', 'wifi-psk', '--from-env', 'NOPE_NOT_SET']);
    expect(missingEnv.code).toBe(2);
    expect(missingEnv.stderr).toContain('NOPE_NOT_SET');

    const tooShort = await runSecretsCli(fx, ['secrets', 'set', 'wifi-psk'], { stdin: 'Sh0rt\n' });
    expect(tooShort.code).toBe(2);
    expect(tooShort.stdout + tooShort.stderr).not.toContain('Sh0rt');
  });

  it('rotate bumps the version, explains the k3s consequence and prints no value (old or new)', async () => {
    await ok(['secrets', 'init']);
    const before = await values();
    const r = await ok(['secrets', 'rotate', 'cluster-token']);
    const after = await values();
    expect(after['cluster-token']).not.toBe(before['cluster-token']);
    expect(after['agent-token']).toBe(before['agent-token']);
    expectNoValues(r, [...Object.values(before), ...Object.values(after)]);
    expect(r.stdout).toContain('k3s token rotate');
    expect(r.stdout).toContain(`${fingerprint(before['cluster-token']!)} -> ${fingerprint(after['cluster-token']!)}`);
    expect(r.stdout).toMatch(/version 2/);

    const all = await ok(['secrets', 'rotate', '--all', '-o', 'json']);
    const doc = JSON.parse(all.stdout) as { rotated: string[]; version: number; notes: Record<string, string[]> };
    expect(doc.rotated).toEqual(['cluster-token', 'agent-token', 'node-password-seed']);
    expect(doc.version).toBe(3);
    expect(doc.notes['node-password-seed']!.join(' ')).toContain('node-password.k3s');
    expectNoValues(all, [...Object.values(after), ...Object.values(await values())]);

    expect((await runSecretsCli(fx, ['secrets', 'rotate'])).code).toBe(2);
    expect((await runSecretsCli(fx, ['secrets', 'rotate', 'wifi-psk'])).code).toBe(2);
  });

  it('recipients add re-encrypts to a teammate; list shows both', async () => {
    await ok(['secrets', 'init']);
    const mate = makeSecretsFixture();
    try {
      const key = await createKey(CLUSTER, { env: mate.env, now: new Date() });
      const r = await ok(['secrets', 'recipients', 'add', key.recipient]);
      expect(r.stdout).toContain('re-encrypted to 2 recipients');
      const list = await ok(['secrets', 'recipients', 'list', '-o', 'json']);
      expect((JSON.parse(list.stdout) as { recipients: string[] }).recipients).toContain(key.recipient);
      const asMate = await ok(['secrets', 'show', '-o', 'json'], { env: { ...fx.env, PI_IMAGE_AGE_KEY_FILE: key.path } });
      expect((JSON.parse(asMate.stdout) as { version: number }).version).toBe(2);
      // adding the same key again changes nothing and says so
      const again = await ok(['secrets', 'recipients', 'add', key.recipient]);
      expect(again.stdout).toMatch(/already listed.*\n.*stays at version 2/);
      expect(again.stdout).not.toContain('re-encrypted');
    } finally {
      mate.cleanup();
    }
  });

  it('missing key: exit 3 naming where it looked; wrong key: exit 3 naming the key path', async () => {
    const none = await runSecretsCli(fx, ['secrets', 'show']);
    expect(none.code).toBe(3);
    expect(none.stderr).toContain(fx.keyPath);
    expect(none.stderr).toContain('pi-image secrets init');

    await ok(['secrets', 'init']);
    const other = makeSecretsFixture();
    try {
      const k = await createKey(CLUSTER, { env: other.env, now: new Date() });
      const wrong = await runSecretsCli(fx, ['secrets', 'show'], { env: { ...fx.env, PI_IMAGE_AGE_KEY_FILE: k.path } });
      expect(wrong.code).toBe(3);
      expect(wrong.stderr).toContain(`${secretsFilePath(fx.dir)} cannot be decrypted with the key in ${k.path}`);
      expect(wrong.stderr).not.toContain('AGE-SECRET-KEY');
    } finally {
      other.cleanup();
    }
  });

  it('reads cluster.yaml through the validator: a schema error is exit 2 naming file and field; node files are not needed', async () => {
    writeFileSync(join(fx.dir, 'cluster.yaml'), readFileSync(join(fx.dir, 'cluster.yaml'), 'utf8').replace(/^name: .*$/m, 'name: Pi_Cluster'));
    const r = await runSecretsCli(fx, ['secrets', 'init']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cluster\.yaml:\d+:\d+ name/);
    expect(r.stderr).toContain('not a valid hostname');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(fx.keyPath)).toBe(false);
  });
});
