/**
 * Secrets store, pure part: the names, the encrypted payload's format, the changes made to it
 * (generate / rotate / set, each bumping `version`), the digest and fingerprints that say
 * "changed / unchanged" without revealing a value, the status table, and what a rotation means
 * for a running k3s cluster.
 *
 * No fs, no clock, no randomness: new values and `now` come in as arguments
 * (src/app/secrets.ts generates them; src/adapters/secrets-file.ts does the age encryption).
 */
import { createHash } from 'node:crypto';
import * as z from 'zod';
import { InputError } from './errors.js';
import type { Secrets } from './model.js';

export const SECRET_NAMES = ['cluster-token', 'agent-token', 'node-password-seed', 'wifi-psk'] as const;
export type SecretName = (typeof SECRET_NAMES)[number];

/** Secrets pi-image generates itself (the Wi-Fi PSK is the user's). */
export const GENERATED_SECRETS = ['cluster-token', 'agent-token', 'node-password-seed'] as const;
export type GeneratedSecretName = (typeof GENERATED_SECRETS)[number];

/** Bytes of randomness for each generated secret (encoded as lower-case hex). */
export const GENERATED_BYTES: Record<GeneratedSecretName, number> = {
  'cluster-token': 32,
  'agent-token': 32,
  'node-password-seed': 32,
};

export const SECRET_FIELDS: Record<SecretName, keyof Secrets> = {
  'cluster-token': 'clusterToken',
  'agent-token': 'agentToken',
  'node-password-seed': 'nodePasswordSeed',
  'wifi-psk': 'wifiPsk',
};

export const SECRET_DESCRIPTIONS: Record<SecretName, string> = {
  'cluster-token': 'k3s server token (servers only)',
  'agent-token': 'k3s agent token (agents join with it)',
  'node-password-seed': 'seed of the per-node k3s node passwords',
  'wifi-psk': 'Wi-Fi pre-shared key (set by you)',
};

export function isSecretName(s: string): s is SecretName {
  return (SECRET_NAMES as readonly string[]).includes(s);
}
export function isGeneratedSecret(s: string): s is GeneratedSecretName {
  return (GENERATED_SECRETS as readonly string[]).includes(s);
}

/** Identifies the decrypted payload; bump the suffix on an incompatible change. */
export const STORE_FORMAT = 'pi-image-secrets/v1';

const isoDate = z.string().refine((s) => !Number.isNaN(Date.parse(s)), { message: 'is not an ISO-8601 time' });

const entrySchema = z.strictObject({
  value: z.string().min(1),
  createdAt: isoDate,
  /** last time the value was replaced (rotate / set); absent until the first change */
  rotatedAt: isoDate.optional(),
});
export type SecretEntry = z.infer<typeof entrySchema>;

const storeSchema = z.strictObject({
  format: z.literal(STORE_FORMAT),
  cluster: z.string().min(1),
  /** bumped by one on every change of the file */
  version: z.number().int().min(1),
  createdAt: isoDate,
  updatedAt: isoDate,
  secrets: z.strictObject({
    'cluster-token': entrySchema.optional(),
    'agent-token': entrySchema.optional(),
    'node-password-seed': entrySchema.optional(),
    'wifi-psk': entrySchema.optional(),
  }),
});
export type SecretsStore = z.infer<typeof storeSchema>;

/** A store with no secrets yet; version 0 until its first change. */
export function emptyStore(cluster: string, now: Date): SecretsStore {
  const t = now.toISOString();
  return { format: STORE_FORMAT, cluster, version: 0, createdAt: t, updatedAt: t, secrets: {} };
}

/**
 * Parses the decrypted payload. `label` names the file in messages (e.g. nodes/secrets.age).
 * Messages name fields, never values.
 */
export function parseStore(text: string, label: string): SecretsStore {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new InputError(`${label} decrypted, but its contents are not JSON: the file is corrupted`, {
      hint: `restore ${label} from version control (git checkout -- ${label})`,
    });
  }
  const parsed = storeSchema.safeParse(raw);
  if (!parsed.success) {
    // zod messages here quote paths and expectations; never the received value (no `input` echo).
    const details = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new InputError(`${label} decrypted, but its contents are not a pi-image secrets store (${STORE_FORMAT})`, {
      details,
      hint: `restore ${label} from version control (git checkout -- ${label})`,
    });
  }
  return parsed.data;
}

/** Canonical JSON (fixed key order) of the store; what gets encrypted. */
export function serializeStore(store: SecretsStore): string {
  const secrets: Record<string, SecretEntry> = {};
  for (const name of SECRET_NAMES) {
    const e = store.secrets[name];
    if (e) secrets[name] = e.rotatedAt ? { value: e.value, createdAt: e.createdAt, rotatedAt: e.rotatedAt } : { value: e.value, createdAt: e.createdAt };
  }
  const ordered = {
    format: store.format,
    cluster: store.cluster,
    version: store.version,
    createdAt: store.createdAt,
    updatedAt: store.updatedAt,
    secrets,
  };
  return `${JSON.stringify(ordered, null, 2)}\n`;
}

/**
 * Applies new values in one change: new names get `createdAt`, replaced ones `rotatedAt`.
 * Bumps `version` by one when anything changed (a value equal to the stored one is no change).
 * Returns a new store; the input is not modified.
 */
export function applyChanges(
  store: SecretsStore,
  changes: Partial<Record<SecretName, string>>,
  now: Date,
): { store: SecretsStore; changed: SecretName[] } {
  const t = now.toISOString();
  const secrets = { ...store.secrets };
  const changed: SecretName[] = [];
  for (const name of SECRET_NAMES) {
    const value = changes[name];
    if (value === undefined) continue;
    if (value.length === 0) throw new InputError(`secret ${name} must not be empty`);
    const old = secrets[name];
    if (old && old.value === value) continue;
    secrets[name] = old ? { value, createdAt: old.createdAt, rotatedAt: t } : { value, createdAt: t };
    changed.push(name);
  }
  if (changed.length === 0) return { store, changed };
  return { store: { ...store, secrets, version: store.version + 1, updatedAt: t }, changed };
}

/** Generated secrets the store does not hold yet. */
export function missingGenerated(store: SecretsStore): GeneratedSecretName[] {
  return GENERATED_SECRETS.filter((n) => store.secrets[n] === undefined);
}

/**
 * The `Secrets` the renderer gets. Throws InputError (naming the fix) when a generated secret is
 * missing, or when Wi-Fi is configured (`wifiRequired`) and no PSK is stored. The PSK is left out
 * when the cluster has no Wi-Fi, so it does not change the digest of a wired cluster.
 */
export function toSecrets(store: SecretsStore, opts: { wifiRequired: boolean; label: string }): Secrets {
  const missing = missingGenerated(store);
  if (missing.length > 0) {
    throw new InputError(`${opts.label} has no ${missing.join(', ')}`, {
      hint: `run \`pi-image secrets rotate ${missing[0]}\` (or \`pi-image secrets init\` for a new cluster) to generate it`,
    });
  }
  const psk = store.secrets['wifi-psk']?.value;
  if (opts.wifiRequired && psk === undefined) {
    throw new InputError(`cluster.yaml configures Wi-Fi, but ${opts.label} holds no wifi-psk`, {
      hint: 'set it with `pi-image secrets set wifi-psk` (reads stdin), `--from-file FILE` or `--from-env VAR`',
    });
  }
  const secrets: Secrets = {
    clusterToken: store.secrets['cluster-token']!.value,
    agentToken: store.secrets['agent-token']!.value,
    nodePasswordSeed: store.secrets['node-password-seed']!.value,
  };
  if (opts.wifiRequired && psk !== undefined) secrets.wifiPsk = psk;
  return secrets;
}

/** sha256 (hex) of a value. */
function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/** First 8 hex digits of sha256(value): tells two values apart without revealing either. */
export function fingerprint(value: string): string {
  return sha256Hex(value).slice(0, 8);
}

/**
 * sha256 over all secret values (name-tagged, length-prefixed, fixed order) — for build records:
 * says whether the secrets an image was built with changed, without revealing them.
 */
export function secretsDigest(secrets: Secrets): string {
  const h = createHash('sha256');
  h.update('pi-image-secrets-digest/v1\n');
  for (const name of SECRET_NAMES) {
    const v = secrets[SECRET_FIELDS[name]];
    if (v === undefined) continue;
    const bytes = Buffer.from(v, 'utf8');
    h.update(`${name}:${bytes.length}:`);
    h.update(bytes);
    h.update('\n');
  }
  return h.digest('hex');
}

/**
 * Whether a Wi-Fi PSK is acceptable to wpa_supplicant / NetworkManager: 8–63 printable ASCII
 * characters (a passphrase) or exactly 64 hex digits (a raw key). Returns the problem or undefined.
 * The message never quotes the value.
 */
export function wifiPskProblem(psk: string): string | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(psk)) return undefined;
  if (!/^[\x20-\x7e]*$/.test(psk)) return 'must be printable ASCII (no tabs, newlines or non-ASCII characters)';
  if (psk.length < 8) return `is ${psk.length} characters long; WPA2 needs 8 to 63`;
  if (psk.length > 63) return `is ${psk.length} characters long; WPA2 needs 8 to 63 (or exactly 64 hex digits)`;
  return undefined;
}

export type SecretStatus = 'set' | 'missing' | 'not-needed';

export interface SecretStatusRow {
  name: SecretName;
  status: SecretStatus;
  /** characters in the value, when set */
  length?: number;
  fingerprint?: string;
  createdAt?: string;
  rotatedAt?: string;
  description: string;
}

/** One row per secret, for `pi-image secrets show`. Holds no value. */
export function describeStore(store: SecretsStore, opts: { wifiConfigured: boolean }): SecretStatusRow[] {
  return SECRET_NAMES.map((name) => {
    const e = store.secrets[name];
    const row: SecretStatusRow = {
      name,
      status: e ? 'set' : name === 'wifi-psk' && !opts.wifiConfigured ? 'not-needed' : 'missing',
      description: SECRET_DESCRIPTIONS[name],
    };
    if (e) {
      row.length = e.value.length;
      row.fingerprint = fingerprint(e.value);
      row.createdAt = e.createdAt;
      if (e.rotatedAt) row.rotatedAt = e.rotatedAt;
    }
    return row;
  });
}

/** Fixed-width text table of status rows (no values). */
export function formatStatusTable(rows: readonly SecretStatusRow[], version: number): string {
  const header = ['NAME', 'STATUS', 'LENGTH', 'FINGERPRINT', 'CHANGED'];
  const body = rows.map((r) => [
    r.name,
    r.status,
    r.length === undefined ? '-' : String(r.length),
    r.fingerprint ?? '-',
    r.rotatedAt ?? r.createdAt ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [`secrets version ${version}`, line(header), ...body.map(line)].join('\n') + '\n';
}

/** What replacing a secret means for a cluster that is already running (printed by `rotate`). */
export function rotationNotes(name: SecretName): string[] {
  switch (name) {
    case 'cluster-token':
      return [
        'cluster-token is the k3s server token. New images carry the new value; a running cluster still uses the old one until you rotate it there:',
        '  on one server: k3s token rotate --token "$(cat /etc/rancher/k3s/pi-image-token)" --new-token <new>   (k3s >= v1.28;',
        '  <new> is shown by `pi-image secrets show --reveal cluster-token`)',
        '  then write <new> into /etc/rancher/k3s/pi-image-token (token-file) on every server and restart k3s on each, one at a time',
        '  etcd snapshots taken before the rotation need the OLD token to restore: keep it with those snapshots',
      ];
    case 'agent-token':
      return [
        'agent-token is the token agents join with. A running cluster keeps accepting the old one until the servers are told the new one:',
        '  write <new> into /etc/rancher/k3s/pi-image-agent-token (agent-token-file) on every server and restart k3s there',
        '  then write it into /etc/rancher/k3s/pi-image-token (token-file) on every agent and restart k3s-agent (or reflash the agents with new images)',
        '  step by step: docs/runbooks/secrets-rotation.md',
      ];
    case 'node-password-seed':
      return [
        'node-password-seed derives every node\'s k3s node password. A node flashed with a new image presents a NEW password and the server rejects it',
        '  until its old password secret is removed: kubectl -n kube-system delete secret <hostname>.node-password.k3s (per reflashed node)',
        '  nodes that are not reflashed keep working with their old password',
      ];
    case 'wifi-psk':
      return [
        'wifi-psk is the Wi-Fi key: change it on the access point too, and reflash (or update NetworkManager on) every Wi-Fi node',
      ];
  }
}
