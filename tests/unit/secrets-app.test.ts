/**
 * The secrets use cases with fake ports: cluster settings, key store and clock come from the test;
 * only the store files are real (a temp directory, no cluster.yaml, no key file anywhere).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LoadedKey } from '../../src/adapters/age-key.js';
import { type SecretsPorts, runSecretsInit, runSecretsRecipientsAdd, runSecretsRotate, runSecretsShow } from '../../src/app/secrets.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pi-image-secrets-app-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function fakePorts(at: Date[]): Promise<SecretsPorts & { created: number }> {
  const identity = await generateIdentity();
  const key: LoadedKey = {
    location: { kind: 'file', label: '/fake/key', path: '/fake/key', from: 'default' },
    identities: [identity],
    recipient: await identityToRecipient(identity),
    warnings: [],
  };
  const ports = {
    created: 0,
    now: () => at.shift() ?? new Date('2030-01-01T00:00:00Z'),
    clusterSettings: async () => ({ name: 'lab', wifi: false }),
    keys: {
      load: async () => key,
      create: async () => {
        ports.created++;
        return { path: '/fake/key', recipient: key.recipient };
      },
      locate: () => key.location,
      trackedBy: async (file: string) => (file === '/fake/key' ? '/fake' : undefined),
    },
  };
  return ports;
}

describe('secrets use cases over fake ports', () => {
  it('init, rotate and show use the given clock and key; the key is never created when one loads', async () => {
    const ports = await fakePorts([new Date('2025-05-01T08:00:00Z'), new Date('2025-05-02T09:00:00Z')]);
    const init = await runSecretsInit({ inventoryDir: dir, env: {} }, ports);
    expect(init).toMatchObject({ cluster: 'lab', secretsCreated: true, keyCreated: false, version: 1 });
    expect(ports.created).toBe(0);
    // the fake says the key file is tracked by a work tree: init warns
    expect(init.warnings.join('\n')).toMatch(/inside the git work tree \/fake/);
    const rotated = await runSecretsRotate({ inventoryDir: dir, env: {}, name: 'agent-token', all: false }, ports);
    expect(rotated).toMatchObject({ cluster: 'lab', changed: ['agent-token'], version: 2 });
    const show = await runSecretsShow({ inventoryDir: dir, env: {} }, ports);
    expect(show.createdAt).toBe('2025-05-01T08:00:00.000Z');
    expect(show.updatedAt).toBe('2025-05-02T09:00:00.000Z');
    expect(show.key).toBe('/fake/key');
    expect(readdirSync(dir).sort()).toEqual(['secrets.age', 'secrets.recipients']);
  });

  it('option errors come before any I/O: rotate needs a name or --all, not both', async () => {
    const ports = await fakePorts([]);
    await expect(runSecretsRotate({ inventoryDir: dir, env: {}, all: false }, ports)).rejects.toThrow(/exactly one of/);
    await expect(runSecretsRotate({ inventoryDir: dir, env: {}, name: 'agent-token', all: true }, ports)).rejects.toThrow(/exactly one of/);
    await expect(runSecretsShow({ inventoryDir: dir, env: {}, reveal: 'nope' }, ports)).rejects.toThrow(/unknown secret/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('recipients add of the own (listed) key is a no-op', async () => {
    const ports = await fakePorts([]);
    const init = await runSecretsInit({ inventoryDir: dir, env: {} }, ports);
    const r = await runSecretsRecipientsAdd({ inventoryDir: dir, env: {}, recipient: init.recipient }, ports);
    expect(r).toMatchObject({ added: false, version: 1 });
  });
});
