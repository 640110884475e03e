/**
 * The secrets use cases: `pi-image secrets init | show | rotate | set | recipients add | list`, and
 * loadSecrets for render, build, diff and boot-test.
 *
 * Each `run<X>(options, ports)` takes the inventory directory and the environment as options and
 * its adapters as ports: the key store (src/adapters/age-key.ts), the secrets files and their lock
 * (src/adapters/secrets-file.ts), cluster.yaml's settings and the clock. Every read-modify-write of
 * secrets.age / secrets.recipients runs under the store's lock.
 *
 * Only `secrets init` creates a store: everything else needs one and says how to make it.
 * Generated values come from node:crypto randomBytes; nothing here prints, and no result carries a
 * secret value (except `show --reveal NAME`, on purpose).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  type CreatedKey,
  type KeyLocation,
  type LoadedKey,
  MissingKeyError,
  createKey,
  loadKey,
  resolveKeyLocation,
  unignoredInWorkTree,
} from '../adapters/age-key.js';
import {
  appendRecipient,
  checkRecipient,
  readRecipients,
  readStore,
  recipientsFilePath,
  secretsFilePath,
  storeExists,
  withStoreLock,
  writeStore,
} from '../adapters/secrets-file.js';
import { allowToPrint } from '../adapters/secret-values.js';
import { EnvironmentError, InputError } from '../core/errors.js';
import type { Secrets } from '../core/model.js';
import {
  GENERATED_BYTES,
  GENERATED_SECRETS,
  type GeneratedSecretName,
  SECRET_NAMES,
  type SecretName,
  type SecretStatusRow,
  type SecretsStore,
  applyChanges,
  describeStore,
  emptyStore,
  fingerprint,
  isGeneratedSecret,
  isSecretName,
  missingGenerated,
  rotationNotes,
  secretsDigest,
  toSecrets,
  wifiPskProblem,
} from '../core/secrets.js';
import { type ClusterSettings, loadClusterSettings } from './inventory.js';

export { recipientsFilePath, secretsFilePath } from '../adapters/secrets-file.js';

// ─── ports ─────────────────────────────────────────────────────────────────────────────────────

/** What the secrets use cases reach outside: the key store, the store files, cluster.yaml, the clock. */
export interface SecretsPorts {
  now: () => Date;
  /** cluster name and Wi-Fi setting from <inventory>/cluster.yaml */
  clusterSettings: (inventoryDir: string) => Promise<ClusterSettings>;
  keys: {
    load: (clusterName: string, env: NodeJS.ProcessEnv) => Promise<LoadedKey>;
    create: (clusterName: string, opts: { env: NodeJS.ProcessEnv; now: Date }) => Promise<CreatedKey>;
    locate: (clusterName: string, env: NodeJS.ProcessEnv) => KeyLocation;
    /** the git work tree that would track this file, if any */
    trackedBy: (file: string) => Promise<string | undefined>;
  };
  /** reads a value from standard input (a prompt without echo on a terminal) */
  readStdin?: (prompt: string) => Promise<string>;
}

export function secretsPorts(opts: { cwd?: string; readStdin?: (prompt: string) => Promise<string>; now?: () => Date } = {}): SecretsPorts {
  return {
    now: opts.now ?? (() => new Date()),
    clusterSettings: (dir) => loadClusterSettings(dir, opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    keys: { load: loadKey, create: createKey, locate: resolveKeyLocation, trackedBy: unignoredInWorkTree },
    ...(opts.readStdin ? { readStdin: opts.readStdin } : {}),
  };
}

export interface SecretsEnvOptions {
  env: NodeJS.ProcessEnv;
}
export interface SecretsChangeOptions extends SecretsEnvOptions {
  /** time recorded as created/rotated/updated; the caller's clock */
  now: Date;
}

function generate(name: GeneratedSecretName): string {
  return randomBytes(GENERATED_BYTES[name]).toString('hex');
}

function missingStoreError(inventoryDir: string): InputError {
  return new InputError(`${secretsFilePath(inventoryDir)} does not exist: this inventory has no secrets store`, {
    hint:
      'run `pi-image secrets init` to create the cluster secrets (only for a new cluster); for a running cluster, ' +
      'restore secrets.age from version control or from the teammate who has it, since new tokens cannot join the existing nodes',
  });
}

// ─── loading for render, build, diff, boot-test ───────────────────────────────────────────────

export interface LoadedSecrets {
  secrets: Secrets;
  /** store version: bumped on every change */
  version: number;
  /** sha256 over the secret values (see secretsDigest): changed/unchanged without revealing them */
  digest: string;
  /** non-fatal problems to show the user (e.g. key file mode) */
  warnings: string[];
}

/**
 * The secrets of a cluster, read-only: a missing secrets.age or a missing secret is an InputError
 * (exit 2) with the command that fixes it, and nothing is created. `wifiRequired`: the cluster has
 * Wi-Fi, so the PSK must be set.
 */
export async function loadSecrets(
  inventoryDir: string,
  clusterName: string,
  opts: { env: NodeJS.ProcessEnv; wifiRequired: boolean },
  ports: Pick<SecretsPorts, 'keys'> = secretsPorts(),
): Promise<LoadedSecrets> {
  // The store's absence is the first thing to say: a checkout without secrets.age needs the file,
  // whether or not this machine has a key yet.
  if (!(await storeExists(inventoryDir))) throw missingStoreError(inventoryDir);
  const key = await ports.keys.load(clusterName, opts.env);
  const store = await readStore(inventoryDir, key, clusterName);
  if (!store) throw missingStoreError(inventoryDir);
  const secrets = toSecrets(store, { wifiRequired: opts.wifiRequired, label: secretsFilePath(inventoryDir) });
  return { secrets, version: store.version, digest: secretsDigest(secrets), warnings: key.warnings };
}

async function requireStore(inventoryDir: string, key: LoadedKey, clusterName: string): Promise<SecretsStore> {
  const store = await readStore(inventoryDir, key, clusterName);
  if (!store) throw missingStoreError(inventoryDir);
  return store;
}

// ─── store operations (each a locked read-modify-write) ──────────────────────────────────────

export interface ChangeResult {
  changed: SecretName[];
  /** fingerprints (first 8 hex of sha256) of each changed value, before and after — never values */
  fingerprints: Partial<Record<SecretName, { before?: string; after: string }>>;
  version: number;
  recipients: string[];
  warnings: string[];
}

function changeResult(before: SecretsStore, next: { store: SecretsStore; changed: SecretName[] }, recipients: string[], key: LoadedKey): ChangeResult {
  const fingerprints: ChangeResult['fingerprints'] = {};
  for (const n of next.changed) {
    const a = next.store.secrets[n];
    if (!a) continue;
    const b = before.secrets[n];
    fingerprints[n] = b ? { before: fingerprint(b.value), after: fingerprint(a.value) } : { after: fingerprint(a.value) };
  }
  return { changed: next.changed, fingerprints, version: next.store.version, recipients, warnings: key.warnings };
}

/**
 * Replaces generated secrets with new random values (`'all'` = every generated one) in one change
 * (version + 1). The Wi-Fi PSK cannot be rotated here: use setSecret.
 */
export async function rotateSecret(
  inventoryDir: string,
  clusterName: string,
  which: SecretName | 'all',
  opts: SecretsChangeOptions,
  ports: Pick<SecretsPorts, 'keys'> = secretsPorts(),
): Promise<ChangeResult> {
  if (which !== 'all' && !isGeneratedSecret(which)) {
    throw new InputError(`${which} is not generated by pi-image and cannot be rotated`, {
      hint: 'set a new Wi-Fi key with `pi-image secrets set wifi-psk` (stdin, --from-file or --from-env)',
    });
  }
  const key = await ports.keys.load(clusterName, opts.env);
  return withStoreLock(inventoryDir, `rotating ${which === 'all' ? 'every generated secret' : which}`, async () => {
    const store = await requireStore(inventoryDir, key, clusterName);
    const names: GeneratedSecretName[] = which === 'all' ? [...GENERATED_SECRETS] : [which];
    const changes: Partial<Record<SecretName, string>> = {};
    for (const n of names) changes[n] = generate(n);
    const next = applyChanges(store, changes, opts.now);
    return changeResult(store, next, await writeStore(inventoryDir, key, next.store), key);
  });
}

/** Stores a value given by the user (today: the Wi-Fi PSK, validated for WPA2). */
export async function setSecret(
  inventoryDir: string,
  clusterName: string,
  name: SecretName,
  value: string,
  opts: SecretsChangeOptions,
  ports: Pick<SecretsPorts, 'keys'> = secretsPorts(),
): Promise<ChangeResult> {
  if (name !== 'wifi-psk') {
    throw new InputError(`${name} is generated by pi-image and cannot be set by hand`, {
      hint: `replace it with a new random value: pi-image secrets rotate ${name}`,
    });
  }
  const problem = wifiPskProblem(value);
  if (problem) throw new InputError(`the wifi-psk given ${problem}`, { hint: 'a WPA2 passphrase is 8–63 printable ASCII characters, or 64 hex digits' });
  const key = await ports.keys.load(clusterName, opts.env);
  return withStoreLock(inventoryDir, `setting ${name}`, async () => {
    const store = await requireStore(inventoryDir, key, clusterName);
    const next = applyChanges(store, { [name]: value }, opts.now);
    const recipients = next.changed.length > 0 ? await writeStore(inventoryDir, key, next.store) : await readRecipients(inventoryDir);
    return changeResult(store, next, recipients, key);
  });
}

/**
 * Adds a public key to secrets.recipients and re-encrypts secrets.age to everyone listed
 * (version + 1, values unchanged). A key listed already is a no-op: nothing is written and the
 * version stays. Needs a key that can decrypt the file today.
 */
export async function addRecipient(
  inventoryDir: string,
  clusterName: string,
  recipient: string,
  opts: SecretsChangeOptions,
  ports: Pick<SecretsPorts, 'keys'> = secretsPorts(),
): Promise<{ added: boolean; version: number; recipients: string[]; warnings: string[] }> {
  checkRecipient(recipient, 'recipients add');
  const key = await ports.keys.load(clusterName, opts.env);
  return withStoreLock(inventoryDir, 'adding a recipient', async () => {
    const store = await requireStore(inventoryDir, key, clusterName);
    const listed = await readRecipients(inventoryDir);
    if (listed.includes(recipient)) {
      return { added: false, version: store.version, recipients: listed, warnings: key.warnings };
    }
    await appendRecipient(inventoryDir, recipient, `added ${opts.now.toISOString()}`);
    const next: SecretsStore = { ...store, version: store.version + 1, updatedAt: opts.now.toISOString() };
    const recipients = await writeStore(inventoryDir, key, next);
    return { added: true, version: next.version, recipients, warnings: key.warnings };
  });
}

/** The decrypted store, for `secrets show` (status rows; the command reveals one value on request). */
export async function readSecretsStore(
  inventoryDir: string,
  clusterName: string,
  opts: SecretsEnvOptions,
  ports: Pick<SecretsPorts, 'keys'> = secretsPorts(),
): Promise<{ store: SecretsStore; keyLabel: string; recipient: string; warnings: string[] }> {
  const key = await ports.keys.load(clusterName, opts.env);
  const store = await requireStore(inventoryDir, key, clusterName);
  return { store, keyLabel: key.location.label, recipient: key.recipient, warnings: key.warnings };
}

export interface InitResult {
  keyCreated: boolean;
  keyLabel: string;
  recipient: string;
  /** secrets.age was created by this call */
  secretsCreated: boolean;
  /** secrets.age existed but this key is not among its recipients: someone must add it */
  needsRecipientAdd: boolean;
  /** secrets.age existed and this key opens it: nothing was changed */
  alreadyInitialised: boolean;
  version?: number;
  generated: GeneratedSecretName[];
  warnings: string[];
}

/**
 * `pi-image secrets init`: creates the key when there is none (never overwrites one), then creates
 * secrets.age with fresh generated secrets when it does not exist. When secrets.age exists already:
 * with a key that decrypts it, nothing changes (`alreadyInitialised`, so running init again is safe);
 * with a new key that does not, the result says a teammate must add this key's public key.
 * Warns when the key file sits in a git work tree that does not ignore it.
 */
export async function initSecrets(
  inventoryDir: string,
  clusterName: string,
  opts: SecretsChangeOptions,
  ports: Pick<SecretsPorts, 'keys'> = secretsPorts(),
): Promise<InitResult> {
  const loc = ports.keys.locate(clusterName, opts.env);
  let keyCreated = false;
  let key: LoadedKey;
  try {
    key = await ports.keys.load(clusterName, opts.env);
  } catch (e) {
    if (!(e instanceof MissingKeyError) || loc.kind !== 'file') throw e;
    await ports.keys.create(clusterName, opts);
    keyCreated = true;
    key = await ports.keys.load(clusterName, opts.env);
  }
  const warnings = [...key.warnings];
  if (key.location.kind === 'file') {
    const tree = await ports.keys.trackedBy(key.location.path);
    if (tree !== undefined) {
      warnings.push(
        `the age key ${key.location.label} is inside the git work tree ${tree} and git does not ignore it: ` +
          `move it out of the repository (the default is ~/.config/pi-image/<cluster>.agekey) or add it to ${path.join(tree, '.gitignore')}, ` +
          'and never commit it',
      );
    }
  }
  const base = { keyCreated, keyLabel: key.location.label, recipient: key.recipient, warnings };
  return withStoreLock(inventoryDir, 'initialising the secrets store', async () => {
    let store: SecretsStore | undefined;
    try {
      store = await readStore(inventoryDir, key, clusterName);
    } catch (e) {
      if (e instanceof EnvironmentError && keyCreated) {
        return { ...base, secretsCreated: false, needsRecipientAdd: true, alreadyInitialised: false, generated: [] };
      }
      throw e;
    }
    if (store) {
      return { ...base, secretsCreated: false, needsRecipientAdd: false, alreadyInitialised: true, generated: [], version: store.version };
    }
    const changes: Partial<Record<SecretName, string>> = {};
    for (const n of missingGenerated(emptyStore(clusterName, opts.now))) changes[n] = generate(n);
    const created = applyChanges(emptyStore(clusterName, opts.now), changes, opts.now);
    await writeStore(inventoryDir, key, created.store);
    return {
      ...base,
      secretsCreated: true,
      needsRecipientAdd: false,
      alreadyInitialised: false,
      version: created.store.version,
      generated: created.changed.filter(isGeneratedSecret),
    };
  });
}

// ─── the command use cases ─────────────────────────────────────────────────────────────────────

export interface SecretsCommandOptions {
  /** the inventory directory (cluster.yaml, secrets.age, secrets.recipients) */
  inventoryDir: string;
  env: NodeJS.ProcessEnv;
}

export async function runSecretsInit(
  opts: SecretsCommandOptions,
  ports: SecretsPorts = secretsPorts(),
): Promise<InitResult & { cluster: string; wifi: boolean; secretsFile: string; recipientsFile: string }> {
  const cluster = await ports.clusterSettings(opts.inventoryDir);
  const r = await initSecrets(opts.inventoryDir, cluster.name, { env: opts.env, now: ports.now() }, ports);
  return {
    cluster: cluster.name,
    wifi: cluster.wifi,
    ...r,
    secretsFile: secretsFilePath(opts.inventoryDir),
    recipientsFile: recipientsFilePath(opts.inventoryDir),
  };
}

export interface ShowResult {
  cluster: string;
  file: string;
  version: number;
  createdAt: string;
  updatedAt: string;
  key: string;
  publicKey: string;
  recipients: string[];
  secrets: SecretStatusRow[];
  revealed?: { name: SecretName; value: string };
  warnings: string[];
}

/** `secrets show [--reveal NAME]`: status rows; with `reveal`, that one value (let through the output mask). */
export async function runSecretsShow(opts: SecretsCommandOptions & { reveal?: string }, ports: SecretsPorts = secretsPorts()): Promise<ShowResult> {
  const reveal = opts.reveal;
  if (reveal !== undefined && !isSecretName(reveal)) {
    throw new InputError(`--reveal: unknown secret "${reveal}"`, { hint: `one of ${SECRET_NAMES.join(', ')}` });
  }
  const cluster = await ports.clusterSettings(opts.inventoryDir);
  const { store, keyLabel, recipient, warnings } = await readSecretsStore(opts.inventoryDir, cluster.name, { env: opts.env }, ports);
  let revealed: ShowResult['revealed'];
  if (reveal !== undefined) {
    const value = store.secrets[reveal]?.value;
    if (value === undefined) {
      throw new InputError(`${reveal} is not set in ${secretsFilePath(opts.inventoryDir)}`, {
        hint: reveal === 'wifi-psk' ? 'set it with `pi-image secrets set wifi-psk`' : `generate it with \`pi-image secrets rotate ${reveal}\``,
      });
    }
    allowToPrint(value);
    revealed = { name: reveal, value };
  }
  return {
    cluster: cluster.name,
    file: secretsFilePath(opts.inventoryDir),
    version: store.version,
    createdAt: store.createdAt,
    updatedAt: store.updatedAt,
    key: keyLabel,
    publicKey: recipient,
    recipients: await readRecipients(opts.inventoryDir),
    secrets: describeStore(store, { wifiConfigured: cluster.wifi }),
    ...(revealed ? { revealed } : {}),
    warnings,
  };
}

export interface RotateResult extends ChangeResult {
  cluster: string;
  file: string;
  /** what each rotation means for a running cluster */
  notes: Partial<Record<SecretName, string[]>>;
}

/** `secrets rotate NAME | --all`. */
export async function runSecretsRotate(
  opts: SecretsCommandOptions & { name?: string; all: boolean },
  ports: SecretsPorts = secretsPorts(),
): Promise<RotateResult> {
  if (opts.all === (opts.name !== undefined)) {
    throw new InputError('rotate needs exactly one of: a secret name, or --all', {
      hint: `pi-image secrets rotate ${GENERATED_SECRETS[0]}   or   pi-image secrets rotate --all`,
    });
  }
  const name = opts.name;
  if (name !== undefined && !isSecretName(name)) {
    throw new InputError(`unknown secret "${name}"`, { hint: `one of ${GENERATED_SECRETS.join(', ')}` });
  }
  const cluster = await ports.clusterSettings(opts.inventoryDir);
  const r = await rotateSecret(opts.inventoryDir, cluster.name, opts.all ? 'all' : (name as SecretName), { env: opts.env, now: ports.now() }, ports);
  return { ...r, cluster: cluster.name, file: secretsFilePath(opts.inventoryDir), notes: Object.fromEntries(r.changed.map((n) => [n, rotationNotes(n)])) };
}

/** Where `secrets set` reads the value: never from the command line. */
export type SecretValueSource = { kind: 'env'; name: string } | { kind: 'file'; path: string } | { kind: 'stdin' };

export interface SetResult extends ChangeResult {
  cluster: string;
  file: string;
  name: SecretName;
  /** length of the value stored (not the value) */
  length: number;
  wifi: boolean;
  notes: string[];
}

/** Drops ONE trailing newline (files and `echo` add one); keeps everything else as given. */
function stripFinalNewline(s: string): string {
  return s.replace(/\r?\n$/, '');
}

/** `secrets set wifi-psk` from an environment variable, a file (relative to `cwd`) or stdin. */
export async function runSecretsSet(
  opts: SecretsCommandOptions & { name: string; from: SecretValueSource; cwd: string },
  ports: SecretsPorts = secretsPorts(),
): Promise<SetResult> {
  const name = opts.name;
  if (!isSecretName(name)) throw new InputError(`unknown secret "${name}"`, { hint: 'only wifi-psk can be set' });
  const cluster = await ports.clusterSettings(opts.inventoryDir);
  let value: string;
  if (opts.from.kind === 'env') {
    const v = opts.env[opts.from.name];
    if (v === undefined || v === '') {
      throw new InputError(`--from-env: environment variable ${opts.from.name} is not set or empty`, {
        hint: `export ${opts.from.name} first, or use --from-file / stdin`,
      });
    }
    value = v;
  } else if (opts.from.kind === 'file') {
    try {
      value = stripFinalNewline(await readFile(path.resolve(opts.cwd, opts.from.path), 'utf8'));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new InputError(`--from-file: cannot read ${opts.from.path}: ${code ?? String(e)}`);
    }
  } else {
    if (!ports.readStdin) throw new InputError('no standard input to read the value from', { hint: 'use --from-file FILE or --from-env VAR' });
    value = stripFinalNewline(await ports.readStdin(`${name}: `));
  }
  if (value === '') throw new InputError(`no value for ${name} was given (empty input)`);
  const r = await setSecret(opts.inventoryDir, cluster.name, name, value, { env: opts.env, now: ports.now() }, ports);
  return { ...r, cluster: cluster.name, file: secretsFilePath(opts.inventoryDir), name, length: value.length, wifi: cluster.wifi, notes: rotationNotes(name) };
}

/** `secrets recipients add AGE1…`: a listed key is a no-op. */
export async function runSecretsRecipientsAdd(
  opts: SecretsCommandOptions & { recipient: string },
  ports: SecretsPorts = secretsPorts(),
): Promise<{ cluster: string; recipient: string; added: boolean; version: number; recipients: string[]; warnings: string[]; file: string; recipientsFile: string }> {
  const cluster = await ports.clusterSettings(opts.inventoryDir);
  const r = await addRecipient(opts.inventoryDir, cluster.name, opts.recipient, { env: opts.env, now: ports.now() }, ports);
  return { cluster: cluster.name, recipient: opts.recipient, ...r, file: secretsFilePath(opts.inventoryDir), recipientsFile: recipientsFilePath(opts.inventoryDir) };
}

/** `secrets recipients list`. */
export async function runSecretsRecipientsList(opts: { inventoryDir: string }): Promise<{ file: string; recipients: string[] }> {
  return { file: recipientsFilePath(opts.inventoryDir), recipients: await readRecipients(opts.inventoryDir) };
}
