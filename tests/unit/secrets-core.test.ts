import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/core/errors.js';
import {
  GENERATED_SECRETS,
  SECRET_NAMES,
  type SecretName,
  applyChanges,
  describeStore,
  emptyStore,
  fingerprint,
  formatStatusTable,
  missingGenerated,
  parseStore,
  rotationNotes,
  secretsDigest,
  serializeStore,
  toSecrets,
  wifiPskProblem,
} from '../../src/core/secrets.js';

const T0 = new Date('2025-01-02T03:04:05.000Z');
const T1 = new Date('2025-02-03T04:05:06.000Z');
const hex = () => randomBytes(32).toString('hex');

function fullStore(withPsk = false) {
  const changes: Partial<Record<SecretName, string>> = { 'cluster-token': hex(), 'agent-token': hex(), 'node-password-seed': hex() };
  if (withPsk) changes['wifi-psk'] = 'correct horse battery staple';
  return { ...applyChanges(emptyStore('pi-cluster', T0), changes, T0), values: changes };
}

describe('applyChanges', () => {
  it('adds secrets in one change: version 0 -> 1, createdAt set, no rotatedAt', () => {
    const { store, changed } = fullStore();
    expect(store.version).toBe(1);
    expect(changed).toEqual([...GENERATED_SECRETS]);
    for (const n of GENERATED_SECRETS) {
      expect(store.secrets[n]?.createdAt).toBe(T0.toISOString());
      expect(store.secrets[n]?.rotatedAt).toBeUndefined();
    }
    expect(missingGenerated(store)).toEqual([]);
  });

  it('bumps the version once per change, keeps createdAt and records rotatedAt', () => {
    const { store } = fullStore();
    const before = store.secrets['agent-token']!;
    const next = applyChanges(store, { 'agent-token': hex() }, T1);
    expect(next.store.version).toBe(store.version + 1);
    expect(next.changed).toEqual(['agent-token']);
    expect(next.store.secrets['agent-token']!.createdAt).toBe(before.createdAt);
    expect(next.store.secrets['agent-token']!.rotatedAt).toBe(T1.toISOString());
    expect(next.store.secrets['agent-token']!.value).not.toBe(before.value);
    expect(next.store.secrets['cluster-token']).toEqual(store.secrets['cluster-token']);
    expect(next.store.updatedAt).toBe(T1.toISOString());
    // the input is not modified
    expect(store.secrets['agent-token']).toBe(before);
  });

  it('treats the same value as no change (no version bump)', () => {
    const { store } = fullStore();
    const same = applyChanges(store, { 'cluster-token': store.secrets['cluster-token']!.value }, T1);
    expect(same.changed).toEqual([]);
    expect(same.store).toBe(store);
  });

  it('refuses an empty value', () => {
    expect(() => applyChanges(emptyStore('c', T0), { 'wifi-psk': '' }, T0)).toThrow(InputError);
  });
});

describe('serializeStore / parseStore', () => {
  it('round-trips and is deterministic', () => {
    const { store } = fullStore(true);
    const text = serializeStore(store);
    expect(parseStore(text, 'x')).toEqual(store);
    expect(serializeStore(parseStore(text, 'x'))).toBe(text);
  });

  it('rejects non-JSON and wrong shapes with InputError, without echoing values', () => {
    expect(() => parseStore('not json', 'nodes/secrets.age')).toThrow(/not JSON/);
    const { store } = fullStore();
    const bad = JSON.parse(serializeStore(store)) as { secrets: Record<string, unknown>; format: string };
    const leaked = 'this-value-must-not-appear-anywhere';
    bad.secrets['cluster-token'] = { value: 42, createdAt: leaked };
    bad.format = leaked;
    try {
      parseStore(JSON.stringify(bad), 'nodes/secrets.age');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      const err = e as InputError;
      const all = [err.message, ...err.details, err.hint ?? ''].join('\n');
      expect(all).toContain('nodes/secrets.age');
      expect(all).toMatch(/secrets\.cluster-token/);
      expect(all).not.toContain(leaked);
    }
  });
});

describe('toSecrets', () => {
  it('maps names to the Secrets fields; leaves the PSK out when Wi-Fi is not configured', () => {
    const { store, values } = fullStore(true);
    const s = toSecrets(store, { wifiRequired: false, label: 'f' });
    expect(s).toEqual({ clusterToken: values['cluster-token'], agentToken: values['agent-token'], nodePasswordSeed: values['node-password-seed'] });
    expect(toSecrets(store, { wifiRequired: true, label: 'f' }).wifiPsk).toBe(values['wifi-psk']);
  });

  it('requires the PSK when Wi-Fi is configured, naming the command that sets it', () => {
    const { store } = fullStore(false);
    expect(() => toSecrets(store, { wifiRequired: true, label: 'nodes/secrets.age' })).toThrow(InputError);
    try {
      toSecrets(store, { wifiRequired: true, label: 'nodes/secrets.age' });
    } catch (e) {
      expect((e as InputError).hint).toContain('pi-image secrets set wifi-psk');
    }
  });

  it('reports missing generated secrets', () => {
    const partial = applyChanges(emptyStore('c', T0), { 'cluster-token': hex() }, T0).store;
    expect(missingGenerated(partial)).toEqual(['agent-token', 'node-password-seed']);
    expect(() => toSecrets(partial, { wifiRequired: false, label: 'f' })).toThrow(/agent-token, node-password-seed/);
  });
});

describe('digest and fingerprints', () => {
  it('fingerprint is the first 8 hex digits of sha256(value)', () => {
    const v = hex();
    expect(fingerprint(v)).toBe(createHash('sha256').update(v).digest('hex').slice(0, 8));
    expect(fingerprint(v)).toMatch(/^[0-9a-f]{8}$/);
  });

  it('digest is stable for equal secrets, changes with any value, and reveals none', () => {
    const { store, values } = fullStore(true);
    const s = toSecrets(store, { wifiRequired: true, label: 'f' });
    const d = secretsDigest(s);
    expect(d).toMatch(/^[0-9a-f]{64}$/);
    expect(secretsDigest({ ...s })).toBe(d);
    for (const field of ['clusterToken', 'agentToken', 'nodePasswordSeed', 'wifiPsk'] as const) {
      expect(secretsDigest({ ...s, [field]: `${s[field]}x` })).not.toBe(d);
    }
    const { wifiPsk: _omit, ...noWifi } = s;
    expect(secretsDigest(noWifi)).not.toBe(d);
    for (const v of Object.values(values)) expect(d).not.toContain(v!.slice(0, 16));
  });

  it('digest does not collide when bytes move between fields', () => {
    const a = secretsDigest({ clusterToken: 'ab', agentToken: 'c', nodePasswordSeed: 'd' });
    const b = secretsDigest({ clusterToken: 'a', agentToken: 'bc', nodePasswordSeed: 'd' });
    expect(a).not.toBe(b);
  });
});

describe('describeStore / formatStatusTable', () => {
  it('lists every secret with status, length and fingerprint, never a value', () => {
    const { store, values } = fullStore(false);
    const rows = describeStore(store, { wifiConfigured: true });
    expect(rows.map((r) => r.name)).toEqual([...SECRET_NAMES]);
    for (const r of rows) {
      if (r.name === 'wifi-psk') {
        expect(r.status).toBe('missing');
        expect(r.fingerprint).toBeUndefined();
      } else {
        expect(r.status).toBe('set');
        expect(r.length).toBe(values[r.name]!.length);
        expect(r.fingerprint).toBe(fingerprint(values[r.name]!));
      }
    }
    expect(describeStore(store, { wifiConfigured: false }).find((r) => r.name === 'wifi-psk')?.status).toBe('not-needed');
    const text = formatStatusTable(rows, store.version) + JSON.stringify(rows);
    for (const v of Object.values(values)) expect(text).not.toContain(v!);
    expect(text).toContain(`secrets version ${store.version}`);
    for (const r of rows) expect(text).toContain(r.name);
  });
});

describe('wifiPskProblem', () => {
  it('accepts WPA2 passphrases and raw 64-hex keys, rejects the rest without quoting them', () => {
    expect(wifiPskProblem('12345678')).toBeUndefined();
    expect(wifiPskProblem('x'.repeat(63))).toBeUndefined();
    expect(wifiPskProblem('a'.repeat(64).replace(/a/g, 'f'))).toBeUndefined();
    const short = 'short1';
    expect(wifiPskProblem(short)).toMatch(/6 characters/);
    expect(wifiPskProblem(short)).not.toContain(short);
    expect(wifiPskProblem('y'.repeat(64))).toMatch(/64 characters/);
    expect(wifiPskProblem('tab\there-long-enough')).toMatch(/printable ASCII/);
    expect(wifiPskProblem('päss-wört-long')).toMatch(/printable ASCII/);
  });
});

describe('rotationNotes', () => {
  it('explains the k3s consequence of each rotation', () => {
    expect(rotationNotes('cluster-token').join('\n')).toContain('k3s token rotate');
    expect(rotationNotes('agent-token').join('\n')).toContain('agent-token');
    expect(rotationNotes('node-password-seed').join('\n')).toContain('node-password.k3s');
    expect(rotationNotes('wifi-psk').join('\n')).toMatch(/access point/);
  });
});
