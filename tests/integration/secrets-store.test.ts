/**
 * The secrets store (src/app/secrets.ts over src/adapters/age-key.ts and secrets-file.ts) against the real file system and real age encryption (age-encryption):
 * round trips, generation, rotation, key handling, corruption, file modes, and that no secret value
 * ever sits in nodes/secrets.age in plain text.
 */
import { readFileSync, statSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Decrypter, armor, generateIdentity, identityToRecipient } from 'age-encryption';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createKey, resolveKeyLocation } from '../../src/adapters/age-key.js';
import { readRecipients, recipientsFilePath, secretsFilePath } from '../../src/adapters/secrets-file.js';
import { addRecipient, initSecrets, loadSecrets, readSecretsStore, rotateSecret, setSecret } from '../../src/app/secrets.js';
import { EnvironmentError, InputError, PiImageError } from '../../src/core/errors.js';
import { parseStore } from '../../src/core/secrets.js';
import { CLUSTER, type SecretsFixture, makeSecretsFixture } from '../helpers/secrets-fixture.js';

const T0 = new Date('2025-03-01T10:00:00.000Z');
const T1 = new Date('2025-03-02T11:00:00.000Z');
const T2 = new Date('2025-03-03T12:00:00.000Z');

let fx: SecretsFixture;
beforeEach(() => {
  fx = makeSecretsFixture();
});
afterEach(() => fx.cleanup());

async function init(f: SecretsFixture = fx, now = T0) {
  return initSecrets(f.dir, CLUSTER, { env: f.env, now });
}

function allText(e: unknown): string {
  if (!(e instanceof PiImageError)) return String(e);
  return [e.message, ...e.details, e.hint ?? ''].join('\n');
}

async function caught(p: Promise<unknown>): Promise<PiImageError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PiImageError);
    return e as PiImageError;
  }
  throw new Error('expected the call to fail');
}

/** Decrypts secrets.age independently of the adapter (age-encryption directly). */
async function decryptDirect(f: SecretsFixture, identity: string): Promise<string> {
  const d = new Decrypter();
  d.addIdentity(identity);
  return d.decrypt(armor.decode(readFileSync(secretsFilePath(f.dir), 'utf8')), 'text');
}
function keyIdentity(f: SecretsFixture): string {
  return readFileSync(f.keyPath, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('AGE-SECRET-KEY-'))!;
}

describe('init and loadSecrets', () => {
  it('creates a 0600 key in a 0700 directory and an age file that decrypts to the loaded secrets', async () => {
    const r = await init();
    expect(r.keyCreated).toBe(true);
    expect(r.secretsCreated).toBe(true);
    expect(r.version).toBe(1);
    expect(statSync(fx.keyPath).mode & 0o777).toBe(0o600);
    expect(statSync(join(fx.root, 'xdg', 'pi-image')).mode & 0o777).toBe(0o700);

    const loaded = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false });
    expect(loaded.version).toBe(1);
    for (const v of [loaded.secrets.clusterToken, loaded.secrets.agentToken, loaded.secrets.nodePasswordSeed]) {
      expect(v).toMatch(/^[0-9a-f]{64}$/); // 32 random bytes, hex
    }
    expect(new Set([loaded.secrets.clusterToken, loaded.secrets.agentToken, loaded.secrets.nodePasswordSeed]).size).toBe(3);

    // independent decryption with the key file: same values, recorded times
    const store = parseStore(await decryptDirect(fx, keyIdentity(fx)), 'x');
    expect(store.secrets['cluster-token']?.value).toBe(loaded.secrets.clusterToken);
    expect(store.secrets['agent-token']?.value).toBe(loaded.secrets.agentToken);
    expect(store.createdAt).toBe(T0.toISOString());
    expect(store.cluster).toBe(CLUSTER);
    expect(readFileSync(secretsFilePath(fx.dir), 'utf8')).toMatch(/^-----BEGIN AGE ENCRYPTED FILE-----/);
    // the key's public half is listed as a recipient
    expect(await readRecipients(fx.dir)).toEqual([r.recipient]);
    expect(await identityToRecipient(keyIdentity(fx))).toBe(r.recipient);
  });

  it('loading never creates a store: without secrets.age it is an InputError (exit 2) and nothing is written', async () => {
    // with a key and without one: the missing store is what is reported, and no file appears
    for (const withKey of [false, true]) {
      if (withKey) await createKey(CLUSTER, { env: fx.env, now: T0 });
      const e = await caught(loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false }));
      expect(e).toBeInstanceOf(InputError);
      expect(e.exitCode).toBe(2);
      expect(e.message).toContain(secretsFilePath(fx.dir));
      expect(e.hint).toContain('pi-image secrets init');
      const { readdirSync } = await import('node:fs');
      expect(readdirSync(fx.dir)).toEqual(['cluster.yaml']);
      expect(existsSync(fx.keyPath)).toBe(withKey);
    }
  });

  it('loading again changes nothing (values, version, digest, file bytes)', async () => {
    await init();
    const bytes = readFileSync(secretsFilePath(fx.dir));
    const a = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false });
    const b = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false });
    expect(b.secrets).toEqual(a.secrets);
    expect(b.version).toBe(a.version);
    expect(b.digest).toBe(a.digest);
    expect(readFileSync(secretsFilePath(fx.dir)).equals(bytes)).toBe(true);
  });

  it('without create, a missing secrets.age is an InputError pointing at `secrets init`', async () => {
    await createKey(CLUSTER, { env: fx.env, now: T0 });
    const e = await caught(loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false }));
    expect(e).toBeInstanceOf(InputError);
    expect(allText(e)).toContain('secrets init');
  });

  it('requires the Wi-Fi PSK when Wi-Fi is configured, and returns it once set', async () => {
    await init();
    const e = await caught(loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: true }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.hint).toContain('pi-image secrets set wifi-psk');
    await setSecret(fx.dir, CLUSTER, 'wifi-psk', 'correct horse battery', { env: fx.env, now: T1 });
    const s = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: true });
    expect(s.secrets.wifiPsk).toBe('correct horse battery');
    const wired = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false });
    expect(wired.secrets.wifiPsk).toBeUndefined();
    expect(wired.digest).not.toBe(s.digest);
  });

  it('init run again with a working key changes nothing and never overwrites the key', async () => {
    await init();
    const keyBefore = readFileSync(fx.keyPath, 'utf8');
    const storeBefore = readFileSync(join(fx.dir, 'secrets.age'), 'utf8');
    const again = await init(fx, T1);
    expect(again).toMatchObject({ alreadyInitialised: true, secretsCreated: false, keyCreated: false, version: 1 });
    expect(readFileSync(join(fx.dir, 'secrets.age'), 'utf8')).toBe(storeBefore);
    const e2 = await caught(createKey(CLUSTER, { env: fx.env, now: T1 }));
    expect(e2).toBeInstanceOf(InputError);
    expect(e2.message).toContain(fx.keyPath);
    expect(readFileSync(fx.keyPath, 'utf8')).toBe(keyBefore);
  });
});

describe('the key', () => {
  it('missing key: EnvironmentError naming every place it looked and `pi-image secrets init`', async () => {
    const e = await caught(readSecretsStore(fx.dir, CLUSTER, { env: fx.env }));
    expect(e).toBeInstanceOf(EnvironmentError);
    expect(e.exitCode).toBe(3);
    expect(e.message).toContain(fx.keyPath);
    expect(e.message).toContain('$PI_IMAGE_AGE_KEY');
    expect(e.hint).toContain('pi-image secrets init');
  });

  it('missing $PI_IMAGE_AGE_KEY_FILE: the message names that path', async () => {
    const p = join(fx.root, 'elsewhere', 'ci.agekey');
    const e = await caught(readSecretsStore(fx.dir, CLUSTER, { env: { ...fx.env, PI_IMAGE_AGE_KEY_FILE: p } }));
    expect(e).toBeInstanceOf(EnvironmentError);
    expect(e.message).toContain(p);
  });

  it('resolves $PI_IMAGE_AGE_KEY, then $PI_IMAGE_AGE_KEY_FILE, then XDG, then ~/.config', () => {
    expect(resolveKeyLocation(CLUSTER, { ...fx.env, PI_IMAGE_AGE_KEY: 'AGE-SECRET-KEY-1X', PI_IMAGE_AGE_KEY_FILE: '/k' }).kind).toBe('env');
    expect(resolveKeyLocation(CLUSTER, { ...fx.env, PI_IMAGE_AGE_KEY_FILE: '/k' })).toMatchObject({ kind: 'file', path: '/k' });
    expect(resolveKeyLocation(CLUSTER, fx.env)).toMatchObject({ kind: 'file', path: fx.keyPath });
    expect(resolveKeyLocation(CLUSTER, { HOME: '/home/u' })).toMatchObject({ path: '/home/u/.config/pi-image/pi-cluster.agekey' });
  });

  it('$PI_IMAGE_AGE_KEY (the key itself, as in CI) decrypts what the key file encrypted', async () => {
    await init();
    const env = { HOME: join(fx.root, 'nobody'), PI_IMAGE_AGE_KEY: keyIdentity(fx) };
    const viaFile = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false });
    const viaEnv = await loadSecrets(fx.dir, CLUSTER, { env, wifiRequired: false });
    expect(viaEnv.secrets).toEqual(viaFile.secrets);
  });

  it('wrong key: EnvironmentError "<file> cannot be decrypted with the key in <path>", no key material', async () => {
    await init();
    const other = makeSecretsFixture();
    try {
      await createKey(CLUSTER, { env: other.env, now: T0 });
      const env = { ...fx.env, PI_IMAGE_AGE_KEY_FILE: other.keyPath };
      const e = await caught(loadSecrets(fx.dir, CLUSTER, { env, wifiRequired: false }));
      expect(e).toBeInstanceOf(EnvironmentError);
      expect(e.message).toBe(`${secretsFilePath(fx.dir)} cannot be decrypted with the key in ${other.keyPath}`);
      const text = allText(e);
      expect(text).not.toContain('AGE-SECRET-KEY');
      expect(text).not.toContain(keyIdentity(other).slice(15, 40));
      // it tells the user how to get access: their public key for `recipients add`
      expect(text).toContain(await identityToRecipient(keyIdentity(other)));
      // and it did not touch the file
      expect((await readSecretsStore(fx.dir, CLUSTER, { env: fx.env })).store.version).toBe(1);
    } finally {
      other.cleanup();
    }
  });

  it('a key file that is not an age identity is an EnvironmentError that does not quote it', async () => {
    const p = join(fx.root, 'bad.agekey');
    writeFileSync(p, 'hunter2-not-a-key\n', { mode: 0o600 });
    const e = await caught(readSecretsStore(fx.dir, CLUSTER, { env: { ...fx.env, PI_IMAGE_AGE_KEY_FILE: p } }));
    expect(e).toBeInstanceOf(EnvironmentError);
    expect(allText(e)).not.toContain('hunter2');
  });

  it('warns when the key file is readable by others', async () => {
    await init();
    chmodSync(fx.keyPath, 0o644);
    const r = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false });
    expect(r.warnings.join('\n')).toMatch(/chmod 600/);
  });
});

describe('corruption', () => {
  it.each([
    ['a flipped byte in the payload', (armored: string) => {
      const raw = armor.decode(armored);
      raw[raw.length - 20]! ^= 0x01;
      return armor.encode(raw);
    }],
    ['a truncated file', (armored: string) => {
      const raw = armor.decode(armored);
      return armor.encode(raw.subarray(0, raw.length - 30));
    }],
    ['broken armor', (armored: string) => armored.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!')],
    ['not an age file at all', () => 'cluster-token: plain-yaml-oops\n'],
  ])('%s is an InputError naming the file and how to restore it', async (_label, damage) => {
    await init();
    const file = secretsFilePath(fx.dir);
    writeFileSync(file, damage(readFileSync(file, 'utf8')));
    const e = await caught(loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain(file);
    expect(e.hint).toMatch(/git checkout/);
  });

  it('a store of another cluster is refused', async () => {
    await init();
    const e = await caught(readSecretsStore(fx.dir, 'other-cluster', { env: { ...fx.env, PI_IMAGE_AGE_KEY_FILE: fx.keyPath } }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(/belongs to cluster "pi-cluster"/);
  });
});

describe('rotate and set', () => {
  it('rotate bumps the version, replaces only the named value and records rotatedAt', async () => {
    await init();
    const before = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false });
    const r = await rotateSecret(fx.dir, CLUSTER, 'agent-token', { env: fx.env, now: T1 });
    expect(r.changed).toEqual(['agent-token']);
    expect(r.version).toBe(before.version + 1);
    const after = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false });
    expect(after.version).toBe(r.version);
    expect(after.secrets.agentToken).not.toBe(before.secrets.agentToken);
    expect(after.secrets.agentToken).toMatch(/^[0-9a-f]{64}$/);
    expect(after.secrets.clusterToken).toBe(before.secrets.clusterToken);
    expect(after.secrets.nodePasswordSeed).toBe(before.secrets.nodePasswordSeed);
    expect(after.digest).not.toBe(before.digest);
    const { store } = await readSecretsStore(fx.dir, CLUSTER, { env: fx.env });
    expect(store.secrets['agent-token']?.rotatedAt).toBe(T1.toISOString());
    expect(store.secrets['agent-token']?.createdAt).toBe(T0.toISOString());
    expect(store.updatedAt).toBe(T1.toISOString());
    expect(r.fingerprints['agent-token']?.before).not.toBe(r.fingerprints['agent-token']?.after);

    const all = await rotateSecret(fx.dir, CLUSTER, 'all', { env: fx.env, now: T2 });
    expect(all.changed).toEqual(['cluster-token', 'agent-token', 'node-password-seed']);
    expect(all.version).toBe(r.version + 1);
    const last = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false });
    expect(last.secrets.clusterToken).not.toBe(after.secrets.clusterToken);
    expect(last.secrets.nodePasswordSeed).not.toBe(after.secrets.nodePasswordSeed);
  });

  it('the Wi-Fi PSK cannot be rotated, and generated secrets cannot be set', async () => {
    await init();
    expect(await caught(rotateSecret(fx.dir, CLUSTER, 'wifi-psk', { env: fx.env, now: T1 }))).toBeInstanceOf(InputError);
    expect(await caught(setSecret(fx.dir, CLUSTER, 'cluster-token', 'x'.repeat(20), { env: fx.env, now: T1 }))).toBeInstanceOf(InputError);
  });

  it('set validates the PSK (without quoting it) and does not bump the version for the same value', async () => {
    await init();
    const e = await caught(setSecret(fx.dir, CLUSTER, 'wifi-psk', 'Sh0rt', { env: fx.env, now: T1 }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(/5 characters/);
    expect(allText(e)).not.toContain('Sh0rt');
    const a = await setSecret(fx.dir, CLUSTER, 'wifi-psk', 'long enough psk', { env: fx.env, now: T1 });
    expect(a.version).toBe(2);
    const b = await setSecret(fx.dir, CLUSTER, 'wifi-psk', 'long enough psk', { env: fx.env, now: T2 });
    expect(b.changed).toEqual([]);
    expect(b.version).toBe(2);
  });
});

describe('at rest', () => {
  it('secrets.age never holds a secret value in plain text (armored bytes nor decoded binary)', async () => {
    await init();
    const psk = 'Plain-Text-Wifi-Psk-42';
    await setSecret(fx.dir, CLUSTER, 'wifi-psk', psk, { env: fx.env, now: T1 });
    await rotateSecret(fx.dir, CLUSTER, 'agent-token', { env: fx.env, now: T2 });
    const { store } = await readSecretsStore(fx.dir, CLUSTER, { env: fx.env });
    const values = Object.values(store.secrets).map((e) => e!.value);
    expect(values).toHaveLength(4);
    const fileBytes = readFileSync(secretsFilePath(fx.dir));
    const binary = Buffer.from(armor.decode(fileBytes.toString('utf8')));
    const recipientsBytes = readFileSync(recipientsFilePath(fx.dir));
    for (const v of values) {
      for (const haystack of [fileBytes, binary, recipientsBytes]) {
        expect(haystack.includes(Buffer.from(v, 'utf8'))).toBe(false);
        // nor a 12-character piece of it, in case of partial leaks
        expect(haystack.includes(Buffer.from(v.slice(0, 12), 'utf8'))).toBe(false);
        // nor the base64 / hex forms of its bytes
        expect(haystack.includes(Buffer.from(Buffer.from(v).toString('base64').slice(0, 16)))).toBe(false);
      }
    }
    // nothing else was written next to it (no stray temp files, no plain YAML)
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(fx.dir).sort()).toEqual(['cluster.yaml', 'secrets.age', 'secrets.recipients']);
    expect(readFileSync(join(fx.dir, 'cluster.yaml'), 'utf8')).not.toContain(psk);
  });
});

describe('recipients', () => {
  it('encrypts to every listed recipient: a teammate added by the owner can decrypt', async () => {
    await init();
    const mate = makeSecretsFixture();
    try {
      // the teammate runs init: gets a key, but cannot open the existing file (their own inventory copy)
      const { cpSync } = await import('node:fs');
      cpSync(fx.dir, mate.dir, { recursive: true });
      const mateInit = await initSecrets(mate.dir, CLUSTER, { env: mate.env, now: T1 });
      expect(mateInit.keyCreated).toBe(true);
      expect(mateInit.needsRecipientAdd).toBe(true);
      expect(mateInit.secretsCreated).toBe(false);
      expect(existsSync(mate.keyPath)).toBe(true);

      // the owner adds the teammate's public key
      const added = await addRecipient(fx.dir, CLUSTER, mateInit.recipient, { env: fx.env, now: T1 });
      expect(added.added).toBe(true);
      expect(added.version).toBe(2);
      expect(added.recipients).toHaveLength(2);
      expect(await readRecipients(fx.dir)).toContain(mateInit.recipient);

      const mine = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false });
      const theirs = await loadSecrets(fx.dir, CLUSTER, { env: { ...fx.env, PI_IMAGE_AGE_KEY_FILE: mate.keyPath }, wifiRequired: false });
      expect(theirs.secrets).toEqual(mine.secrets);

      // a later rotation by the teammate still encrypts to the owner too
      await rotateSecret(fx.dir, CLUSTER, 'cluster-token', { env: { ...fx.env, PI_IMAGE_AGE_KEY_FILE: mate.keyPath }, now: T2 });
      const again = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false });
      expect(again.secrets.clusterToken).not.toBe(mine.secrets.clusterToken);
    } finally {
      mate.cleanup();
    }
  });

  it('rejects a bad recipient and a private key in the recipients file without echoing the key', async () => {
    await init();
    expect(await caught(addRecipient(fx.dir, CLUSTER, 'age1notakey', { env: fx.env, now: T1 }))).toBeInstanceOf(InputError);
    const priv = await generateIdentity();
    const ePriv = await caught(addRecipient(fx.dir, CLUSTER, priv, { env: fx.env, now: T1 }));
    expect(ePriv).toBeInstanceOf(InputError);
    expect(allText(ePriv)).not.toContain(priv);
    writeFileSync(recipientsFilePath(fx.dir), `${readFileSync(recipientsFilePath(fx.dir), 'utf8')}${priv}\n`);
    const e = await caught(rotateSecret(fx.dir, CLUSTER, 'agent-token', { env: fx.env, now: T1 }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(/PRIVATE age key/);
    expect(allText(e)).not.toContain(priv);
  });

  it('adding a key that is listed already is a no-op: no re-encryption, no version bump', async () => {
    await init();
    const mate = await identityToRecipient(await generateIdentity());
    const first = await addRecipient(fx.dir, CLUSTER, mate, { env: fx.env, now: T1 });
    expect(first).toMatchObject({ added: true, version: 2 });
    const age = readFileSync(secretsFilePath(fx.dir));
    const listed = readFileSync(recipientsFilePath(fx.dir));
    const again = await addRecipient(fx.dir, CLUSTER, mate, { env: fx.env, now: T2 });
    expect(again).toMatchObject({ added: false, version: 2 });
    expect(again.recipients).toContain(mate);
    expect(readFileSync(secretsFilePath(fx.dir)).equals(age)).toBe(true);
    expect(readFileSync(recipientsFilePath(fx.dir)).equals(listed)).toBe(true);
    // the own key, listed by init, is a no-op too
    const own = await addRecipient(fx.dir, CLUSTER, (await init()).recipient, { env: fx.env, now: T2 });
    expect(own).toMatchObject({ added: false, version: 2 });
  });
});

describe('the key inside a git work tree', () => {
  it('init warns when the key file lies in a work tree that does not ignore it, and not once it is ignored', async () => {
    const { execFileSync } = await import('node:child_process');
    execFileSync('git', ['init', '-q', fx.root]);
    const keyFile = join(fx.root, 'team-key.txt');
    const env = { ...fx.env, PI_IMAGE_AGE_KEY_FILE: keyFile };
    const r = await initSecrets(fx.dir, CLUSTER, { env, now: T0 });
    expect(r.keyCreated).toBe(true);
    const warning = r.warnings.find((w) => w.includes('git work tree'));
    expect(warning).toContain(keyFile);
    expect(warning).toContain('.gitignore');
    writeFileSync(join(fx.root, '.gitignore'), 'team-key.txt\n');
    const again = await initSecrets(fx.dir, CLUSTER, { env, now: T1 });
    expect(again.warnings.filter((w) => w.includes('git work tree'))).toEqual([]);
    // the default key location, outside any work tree, gives no such warning
    const plain = makeSecretsFixture();
    try {
      expect((await initSecrets(plain.dir, CLUSTER, { env: plain.env, now: T0 })).warnings).toEqual([]);
    } finally {
      plain.cleanup();
    }
  });
});
