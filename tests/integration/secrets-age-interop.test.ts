/**
 * Interoperability with the reference age tools (Debian package `age`, listed in
 * scripts/apt-packages.txt): a key from age-keygen works with pi-image, and nodes/secrets.age
 * decrypts with `age -d` — so the secrets stay reachable without pi-image.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { secretsFilePath } from '../../src/adapters/secrets-file.js';
import { initSecrets, loadSecrets, readSecretsStore } from '../../src/app/secrets.js';
import { parseStore } from '../../src/core/secrets.js';
import { CLUSTER, type SecretsFixture, makeSecretsFixture } from '../helpers/secrets-fixture.js';

function tool(name: string): string {
  try {
    execFileSync(name, ['--version'], { stdio: 'pipe' });
  } catch {
    throw new Error(`${name} not found: apt-get install -y age (scripts/apt-packages.txt lists it)`);
  }
  return name;
}

let fx: SecretsFixture;
beforeEach(() => {
  fx = makeSecretsFixture();
});
afterEach(() => fx.cleanup());

describe('age CLI interop', () => {
  it('the age CLI decrypts nodes/secrets.age with the key pi-image created', async () => {
    const age = tool('age');
    await initSecrets(fx.dir, CLUSTER, { env: fx.env, now: new Date('2025-04-01T00:00:00Z') });
    const plain = execFileSync(age, ['-d', '-i', fx.keyPath, secretsFilePath(fx.dir)], { encoding: 'utf8' });
    const store = parseStore(plain, 'age -d output');
    const loaded = await loadSecrets(fx.dir, CLUSTER, { env: fx.env, wifiRequired: false });
    expect(store.secrets['cluster-token']?.value).toBe(loaded.secrets.clusterToken);
    expect(store.secrets['agent-token']?.value).toBe(loaded.secrets.agentToken);
    expect(store.secrets['node-password-seed']?.value).toBe(loaded.secrets.nodePasswordSeed);
  });

  it('a key made by age-keygen works as $PI_IMAGE_AGE_KEY_FILE, and its public key is the one pi-image derives', async () => {
    const keygen = tool('age-keygen');
    const keyFile = join(fx.root, 'team.agekey');
    execFileSync(keygen, ['-o', keyFile], { stdio: 'pipe' });
    expect(statSync(keyFile).mode & 0o077).toBe(0); // age-keygen writes 0600 too
    const publicKey = execFileSync(keygen, ['-y', keyFile], { encoding: 'utf8' }).trim();
    const env = { ...fx.env, PI_IMAGE_AGE_KEY_FILE: keyFile };
    const r = await initSecrets(fx.dir, CLUSTER, { env, now: new Date() });
    expect(r.keyCreated).toBe(false);
    expect(r.recipient).toBe(publicKey);
    const { store } = await readSecretsStore(fx.dir, CLUSTER, { env });
    const viaAge = parseStore(execFileSync('age', ['-d', '-i', keyFile, secretsFilePath(fx.dir)], { encoding: 'utf8' }), 'x');
    expect(viaAge).toEqual(store);
    expect(readFileSync(join(fx.dir, 'secrets.recipients'), 'utf8')).toContain(publicKey);
  });
});
