/**
 * Secrets at rest: `<inventory>/secrets.age`, an age-encrypted (ASCII-armored) JSON store, encrypted
 * to every public key in `<inventory>/secrets.recipients` plus the current key's own.
 *
 * The age identity (private key) lives outside the repository, looked up in this order:
 *   1. $PI_IMAGE_AGE_KEY        — the key itself (CI)
 *   2. $PI_IMAGE_AGE_KEY_FILE   — a file holding it
 *   3. $XDG_CONFIG_HOME/pi-image/<cluster>.agekey (default ~/.config/pi-image/<cluster>.agekey),
 *      created mode 0600 by `pi-image secrets init`, never overwritten.
 *
 * Generated values come from node:crypto randomBytes; nothing here prints, and no message carries a
 * secret value or key material.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { Decrypter, Encrypter, armor, generateIdentity, identityToRecipient } from 'age-encryption';
import { EnvironmentError, InputError, IoError } from '../core/errors.js';
import { rememberSecretValues } from './secret-values.js';
import type { Secrets } from '../core/model.js';
import {
  GENERATED_BYTES,
  GENERATED_SECRETS,
  type GeneratedSecretName,
  type SecretName,
  type SecretsStore,
  applyChanges,
  emptyStore,
  fingerprint,
  isGeneratedSecret,
  missingGenerated,
  parseStore,
  secretsDigest,
  serializeStore,
  toSecrets,
  wifiPskProblem,
} from '../core/secrets.js';

export const SECRETS_FILE = 'secrets.age';
export const RECIPIENTS_FILE = 'secrets.recipients';

export interface SecretsEnvOptions {
  env: NodeJS.ProcessEnv;
}
export interface SecretsChangeOptions extends SecretsEnvOptions {
  /** time recorded as created/rotated/updated; the caller's clock */
  now: Date;
}

export function secretsFilePath(inventoryDir: string): string {
  return path.join(inventoryDir, SECRETS_FILE);
}
export function recipientsFilePath(inventoryDir: string): string {
  return path.join(inventoryDir, RECIPIENTS_FILE);
}

// ─── where the key is ──────────────────────────────────────────────────────────────────────────

export type KeyLocation =
  | { kind: 'env'; label: '$PI_IMAGE_AGE_KEY' }
  | { kind: 'file'; label: string; path: string; from: 'PI_IMAGE_AGE_KEY_FILE' | 'default' };

/** Default key path: $XDG_CONFIG_HOME/pi-image/<cluster>.agekey, else $HOME/.config/pi-image/… */
export function defaultKeyPath(clusterName: string, env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || homedir(), '.config');
  return path.join(base, 'pi-image', `${clusterName}.agekey`);
}

/** Which key this environment selects (does not look at the file system). */
export function resolveKeyLocation(clusterName: string, env: NodeJS.ProcessEnv): KeyLocation {
  if (env.PI_IMAGE_AGE_KEY && env.PI_IMAGE_AGE_KEY.trim() !== '') return { kind: 'env', label: '$PI_IMAGE_AGE_KEY' };
  const fromEnv = env.PI_IMAGE_AGE_KEY_FILE;
  if (fromEnv && fromEnv.trim() !== '') {
    return { kind: 'file', label: fromEnv, path: path.resolve(fromEnv), from: 'PI_IMAGE_AGE_KEY_FILE' };
  }
  const p = defaultKeyPath(clusterName, env);
  return { kind: 'file', label: p, path: p, from: 'default' };
}

export interface LoadedKey {
  location: KeyLocation;
  identities: string[];
  /** public key (age1…) of the first identity: safe to print and share */
  recipient: string;
  /** e.g. the key file is readable by others */
  warnings: string[];
}

/** No key where this environment says it is (so `secrets init` may create it). */
export class MissingKeyError extends EnvironmentError {}

function missingKeyError(clusterName: string, env: NodeJS.ProcessEnv, loc: KeyLocation): MissingKeyError {
  const looked =
    loc.kind === 'file' && loc.from === 'PI_IMAGE_AGE_KEY_FILE'
      ? [`$PI_IMAGE_AGE_KEY_FILE=${loc.label} (no such file)`]
      : [
          '$PI_IMAGE_AGE_KEY (not set)',
          '$PI_IMAGE_AGE_KEY_FILE (not set)',
          `${defaultKeyPath(clusterName, env)} (no such file)`,
        ];
  return new MissingKeyError(`no age key for cluster "${clusterName}": looked in ${looked.join(', ')}`, {
    hint:
      'run `pi-image secrets init` to create one, or point $PI_IMAGE_AGE_KEY_FILE at an existing key ' +
      '(a teammate who can decrypt nodes/secrets.age must then add your public key with `pi-image secrets recipients add`)',
  });
}

/** Parses key text the way age-keygen writes it: `#` comments, one AGE-SECRET-KEY-… per line. */
async function parseIdentities(text: string, label: string): Promise<{ identities: string[]; recipient: string }> {
  const identities = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const bad = identities.some((l) => !l.startsWith('AGE-SECRET-KEY-'));
  if (identities.length === 0 || bad) {
    throw new EnvironmentError(`the key in ${label} is not an age identity`, {
      hint: 'expected lines starting with AGE-SECRET-KEY-1 (comments start with #), as written by `pi-image secrets init` or age-keygen',
    });
  }
  let recipient: string;
  try {
    recipient = await identityToRecipient(identities[0]!);
    for (const id of identities.slice(1)) await identityToRecipient(id);
  } catch {
    throw new EnvironmentError(`the key in ${label} is not a valid age identity (bad encoding or checksum)`, {
      hint: 'restore the key file from your backup, or create a new key with `pi-image secrets init` and have a teammate add it',
    });
  }
  return { identities, recipient };
}

/** Loads the age identity this environment selects; EnvironmentError naming where it looked when absent. */
export async function loadKey(clusterName: string, env: NodeJS.ProcessEnv): Promise<LoadedKey> {
  const location = resolveKeyLocation(clusterName, env);
  if (location.kind === 'env') {
    const parsed = await parseIdentities(env.PI_IMAGE_AGE_KEY ?? '', location.label);
    return { location, ...parsed, warnings: [] };
  }
  let text: string;
  const warnings: string[] = [];
  try {
    const st = await stat(location.path);
    if (!st.isFile()) throw new EnvironmentError(`the age key ${location.label} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      warnings.push(
        `the age key ${location.label} is readable by other users (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${location.label}`,
      );
    }
    text = await readFile(location.path, 'utf8');
  } catch (e) {
    if (e instanceof EnvironmentError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw missingKeyError(clusterName, env, location);
    throw new IoError(`cannot read the age key ${location.label}: ${code ?? String(e)}`, {
      hint: 'check the file permissions (it should be yours, mode 0600)',
    });
  }
  const parsed = await parseIdentities(text, location.label);
  return { location, ...parsed, warnings };
}

export interface CreatedKey {
  path: string;
  recipient: string;
}

/**
 * Creates a new age identity at the selected key file (mode 0600, its directory 0700).
 * Refuses when the key comes from $PI_IMAGE_AGE_KEY or the file already exists: a key is never
 * overwritten (that would lock you out of nodes/secrets.age).
 */
export async function createKey(clusterName: string, opts: SecretsChangeOptions): Promise<CreatedKey> {
  const loc = resolveKeyLocation(clusterName, opts.env);
  if (loc.kind === 'env') {
    throw new InputError('$PI_IMAGE_AGE_KEY is set: pi-image does not create a key file while a key is given in the environment', {
      hint: 'unset PI_IMAGE_AGE_KEY to create a key file, or use the key you have',
    });
  }
  const identity = await generateIdentity();
  const recipient = await identityToRecipient(identity);
  const text = [
    `# created: ${opts.now.toISOString()}`,
    `# cluster: ${clusterName}`,
    `# public key: ${recipient}`,
    identity,
    '',
  ].join('\n');
  try {
    await mkdir(path.dirname(loc.path), { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new IoError(`cannot create the directory for the age key ${loc.label}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let handle;
  try {
    // O_EXCL: fails if the file exists, even if it appeared a moment ago.
    handle = await open(loc.path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      throw new InputError(`an age key already exists at ${loc.label}; pi-image never overwrites a key`, {
        hint: 'use it as it is, or move it away yourself first (anything encrypted only to it becomes unreadable)',
      });
    }
    throw new IoError(`cannot create the age key ${loc.label}: ${code ?? String(e)}`);
  }
  try {
    await handle.writeFile(text, 'utf8');
    await handle.chmod(0o600); // the umask may have narrowed, never widened, but be explicit
  } finally {
    await handle.close();
  }
  return { path: loc.path, recipient };
}

// ─── recipients ────────────────────────────────────────────────────────────────────────────────

const RECIPIENT_RE = /^age1[02-9ac-hj-np-z]+$/;

/** Checks that a string is an age recipient the library can encrypt to; throws InputError. */
export function checkRecipient(r: string, where: string): void {
  let ok = RECIPIENT_RE.test(r);
  if (ok) {
    try {
      new Encrypter().addRecipient(r);
    } catch {
      ok = false;
    }
  }
  if (!ok) {
    if (/^AGE-SECRET-KEY-/i.test(r.trim())) {
      // Never echo a private key, even one given in the wrong place.
      throw new InputError(`${where}: that is a PRIVATE age key (AGE-SECRET-KEY-…); give the public key (age1…)`, {
        hint: 'the public key is on the `# public key:` line of the key file; if the private key was shared or committed, treat it as leaked',
      });
    }
    throw new InputError(`${where}: "${r.length > 80 ? `${r.slice(0, 80)}…` : r}" is not an age public key`, {
      hint: 'an age public key starts with age1 (X25519) or age1pq1 (post-quantum); the private key (AGE-SECRET-KEY-…) never goes here',
    });
  }
}

/** Public keys in <inventory>/secrets.recipients (one per line, # comments); [] when the file is absent. */
export async function readRecipients(inventoryDir: string): Promise<string[]> {
  const file = recipientsFilePath(inventoryDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new IoError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const out: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    if (line.startsWith('AGE-SECRET-KEY-')) {
      // Do not echo it: it is a private key in the wrong (committed!) file.
      throw new InputError(`${file}:${i + 1} holds a PRIVATE age key; only public keys (age1…) belong there`, {
        hint: `remove that line, treat the key as leaked: create a new one (pi-image secrets init) and rotate the secrets`,
      });
    }
    checkRecipient(line, `${file}:${i + 1}`);
    if (!out.includes(line)) out.push(line);
  });
  return out;
}

async function appendRecipient(inventoryDir: string, recipient: string, comment: string): Promise<void> {
  const file = recipientsFilePath(inventoryDir);
  let existing: string;
  try {
    existing = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new IoError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    existing = '# age public keys that can decrypt secrets.age (one per line). Managed by `pi-image secrets recipients add`.\n';
  }
  const sep = existing === '' || existing.endsWith('\n') ? '' : '\n';
  await atomicWrite(file, `${existing}${sep}# ${comment}\n${recipient}\n`, 0o644);
}

// ─── the encrypted file ────────────────────────────────────────────────────────────────────────

async function atomicWrite(file: string, contents: string, mode: number): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, contents, { mode });
    await chmod(tmp, mode);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new IoError(`cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: 'check that the inventory directory exists and is writable',
    });
  }
}

// ─── values seen in this process, for the CLI's last-line-of-defence redaction ───────────────

function rememberValues(store: SecretsStore): void {
  rememberSecretValues(Object.values(store.secrets).flatMap((entry) => (entry?.value ? [entry.value] : [])));
}

export { allowToPrint, resetSecretValuesSeen, secretValuesSeen } from './secret-values.js';

/** Reads and decrypts the store; undefined when the file does not exist. */
async function readStore(inventoryDir: string, key: LoadedKey, clusterName: string): Promise<SecretsStore | undefined> {
  const file = secretsFilePath(inventoryDir);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IoError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const corrupted = (what: string) =>
    new InputError(`${file} is corrupted (${what})`, {
      hint: `restore it from version control (git checkout -- ${file}); if it is lost, \`pi-image secrets init\` after moving it away creates new secrets (running nodes keep the old ones)`,
    });
  let ciphertext: Uint8Array;
  const text = bytes.toString('latin1');
  try {
    ciphertext = text.trimStart().startsWith('-----BEGIN AGE ENCRYPTED FILE-----') ? armor.decode(text) : new Uint8Array(bytes);
  } catch {
    throw corrupted('bad ASCII armor');
  }
  const d = new Decrypter();
  for (const id of key.identities) d.addIdentity(id);
  let plaintext: string;
  try {
    plaintext = await d.decrypt(ciphertext, 'text');
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/no identity matched/i.test(msg)) {
      throw new EnvironmentError(`${file} cannot be decrypted with the key in ${key.location.label}`, {
        hint:
          `that key is not one of the file's recipients. Use the right key ($PI_IMAGE_AGE_KEY_FILE / $PI_IMAGE_AGE_KEY), ` +
          `or ask someone who can decrypt it to run \`pi-image secrets recipients add ${key.recipient}\``,
      });
    }
    // Header or payload failed authentication, truncated file, not an age file at all.
    throw corrupted(/invalid version|invalid header|stanza/i.test(msg) ? 'not an age file or damaged header' : 'authentication failed: the file was modified or truncated');
  }
  const store = parseStore(plaintext, file);
  rememberValues(store);
  if (store.cluster !== clusterName) {
    throw new InputError(`${file} belongs to cluster "${store.cluster}", but cluster.yaml names "${clusterName}"`, {
      hint: 'use the secrets file of this cluster, or fix `name:` in cluster.yaml',
    });
  }
  return store;
}

/** Encrypts the store to all recipients (own key first) and writes it atomically, verified by a round trip. */
async function writeStore(inventoryDir: string, key: LoadedKey, store: SecretsStore): Promise<string[]> {
  rememberValues(store);
  const listed = await readRecipients(inventoryDir);
  const recipients = [key.recipient, ...listed.filter((r) => r !== key.recipient)];
  if (!listed.includes(key.recipient)) {
    await appendRecipient(inventoryDir, key.recipient, `key of ${store.cluster} from ${key.location.label === '$PI_IMAGE_AGE_KEY' ? '$PI_IMAGE_AGE_KEY' : 'pi-image secrets'} (added ${store.updatedAt})`);
  }
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  const plaintext = serializeStore(store);
  const armored = armor.encode(await e.encrypt(plaintext));
  // Round trip before replacing the old file: never write something we cannot read back.
  const d = new Decrypter();
  for (const id of key.identities) d.addIdentity(id);
  if ((await d.decrypt(armor.decode(armored), 'text')) !== plaintext) {
    throw new IoError('encrypting the secrets store did not round-trip; nothing was written');
  }
  await atomicWrite(secretsFilePath(inventoryDir), armored, 0o644);
  return recipients;
}

function generate(name: GeneratedSecretName): string {
  return randomBytes(GENERATED_BYTES[name]).toString('hex');
}

// ─── the API ───────────────────────────────────────────────────────────────────────────────────

export interface LoadedSecrets {
  secrets: Secrets;
  /** store version: bumped on every change */
  version: number;
  /** sha256 over the secret values (see secretsDigest): changed/unchanged without revealing them */
  digest: string;
  /** secrets generated by this call (only with create: true) */
  generated: GeneratedSecretName[];
  /** whether this call created nodes/secrets.age */
  createdFile: boolean;
  /** non-fatal problems to show the user (e.g. key file mode) */
  warnings: string[];
}

/**
 * Loads the secrets of a cluster. With `create`, generates the generated secrets that are missing
 * (all of them when nodes/secrets.age does not exist yet) and writes the file; without it, a missing
 * file or secret is an InputError. `wifiRequired`: the cluster has Wi-Fi, so the PSK must be set.
 * The key itself is never created here (that is `pi-image secrets init`).
 */
export async function loadOrCreateSecrets(
  inventoryDir: string,
  clusterName: string,
  opts: { env: NodeJS.ProcessEnv; now: Date; create: boolean; wifiRequired: boolean },
): Promise<LoadedSecrets> {
  const key = await loadKey(clusterName, opts.env);
  const file = secretsFilePath(inventoryDir);
  const existing = await readStore(inventoryDir, key, clusterName);
  if (!existing && !opts.create) {
    throw new InputError(`${file} does not exist`, { hint: 'run `pi-image secrets init` to create the cluster secrets' });
  }
  let store = existing ?? emptyStore(clusterName, opts.now);
  let generated: GeneratedSecretName[] = [];
  if (opts.create) {
    const missing = missingGenerated(store);
    if (missing.length > 0) {
      const changes: Partial<Record<SecretName, string>> = {};
      for (const n of missing) changes[n] = generate(n);
      store = applyChanges(store, changes, opts.now).store;
      await writeStore(inventoryDir, key, store);
      generated = missing;
    }
  }
  const secrets = toSecrets(store, { wifiRequired: opts.wifiRequired, label: file });
  return {
    secrets,
    version: store.version,
    digest: secretsDigest(secrets),
    generated,
    createdFile: !existing && generated.length > 0,
    warnings: key.warnings,
  };
}

export interface ChangeResult {
  changed: SecretName[];
  /** fingerprints (first 8 hex of sha256) of each changed value, before and after — never values */
  fingerprints: Partial<Record<SecretName, { before?: string; after: string }>>;
  version: number;
  recipients: string[];
  warnings: string[];
}

function fingerprintsOf(before: SecretsStore, after: SecretsStore, changed: SecretName[]): ChangeResult['fingerprints'] {
  const out: ChangeResult['fingerprints'] = {};
  for (const n of changed) {
    const a = after.secrets[n];
    if (!a) continue;
    const b = before.secrets[n];
    out[n] = b ? { before: fingerprint(b.value), after: fingerprint(a.value) } : { after: fingerprint(a.value) };
  }
  return out;
}

async function requireStore(inventoryDir: string, key: LoadedKey, clusterName: string): Promise<SecretsStore> {
  const store = await readStore(inventoryDir, key, clusterName);
  if (!store) {
    throw new InputError(`${secretsFilePath(inventoryDir)} does not exist`, { hint: 'run `pi-image secrets init` first' });
  }
  return store;
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
): Promise<ChangeResult> {
  if (which !== 'all' && !isGeneratedSecret(which)) {
    throw new InputError(`${which} is not generated by pi-image and cannot be rotated`, {
      hint: 'set a new Wi-Fi key with `pi-image secrets set wifi-psk` (stdin, --from-file or --from-env)',
    });
  }
  const key = await loadKey(clusterName, opts.env);
  const store = await requireStore(inventoryDir, key, clusterName);
  const names: GeneratedSecretName[] = which === 'all' ? [...GENERATED_SECRETS] : [which];
  const changes: Partial<Record<SecretName, string>> = {};
  for (const n of names) changes[n] = generate(n);
  const next = applyChanges(store, changes, opts.now);
  return changeResult(store, next, await writeStore(inventoryDir, key, next.store), key);
}

/** Stores a value given by the user (today: the Wi-Fi PSK, validated for WPA2). */
export async function setSecret(
  inventoryDir: string,
  clusterName: string,
  name: SecretName,
  value: string,
  opts: SecretsChangeOptions,
): Promise<ChangeResult> {
  if (name !== 'wifi-psk') {
    throw new InputError(`${name} is generated by pi-image and cannot be set by hand`, {
      hint: `replace it with a new random value: pi-image secrets rotate ${name}`,
    });
  }
  const problem = wifiPskProblem(value);
  if (problem) throw new InputError(`the wifi-psk given ${problem}`, { hint: 'a WPA2 passphrase is 8–63 printable ASCII characters, or 64 hex digits' });
  const key = await loadKey(clusterName, opts.env);
  const store = await requireStore(inventoryDir, key, clusterName);
  const next = applyChanges(store, { [name]: value }, opts.now);
  const recipients = next.changed.length > 0 ? await writeStore(inventoryDir, key, next.store) : await readRecipients(inventoryDir);
  return changeResult(store, next, recipients, key);
}

/** What rotate and set report: which secrets changed, their before/after fingerprints, the new version. */
function changeResult(before: SecretsStore, next: { store: SecretsStore; changed: SecretName[] }, recipients: string[], key: LoadedKey): ChangeResult {
  return {
    changed: next.changed,
    fingerprints: fingerprintsOf(before, next.store, next.changed),
    version: next.store.version,
    recipients,
    warnings: key.warnings,
  };
}

/**
 * Adds a public key to secrets.recipients and re-encrypts secrets.age to everyone listed
 * (version + 1, values unchanged). Needs a key that can decrypt the file today.
 */
export async function addRecipient(
  inventoryDir: string,
  clusterName: string,
  recipient: string,
  opts: SecretsChangeOptions,
): Promise<{ added: boolean; version: number; recipients: string[]; warnings: string[] }> {
  checkRecipient(recipient, 'recipients add');
  const key = await loadKey(clusterName, opts.env);
  const store = await requireStore(inventoryDir, key, clusterName);
  const listed = await readRecipients(inventoryDir);
  const added = !listed.includes(recipient);
  if (added) await appendRecipient(inventoryDir, recipient, `added ${opts.now.toISOString()}`);
  // Re-encrypt even when it was listed already: the file may predate the line.
  const next: SecretsStore = { ...store, version: store.version + 1, updatedAt: opts.now.toISOString() };
  const recipients = await writeStore(inventoryDir, key, next);
  return { added, version: next.version, recipients, warnings: key.warnings };
}

/** The decrypted store, for `secrets show` (status rows; the command reveals one value on request). */
export async function readSecretsStore(
  inventoryDir: string,
  clusterName: string,
  opts: SecretsEnvOptions,
): Promise<{ store: SecretsStore; keyLabel: string; recipient: string; warnings: string[] }> {
  const key = await loadKey(clusterName, opts.env);
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
 */
export async function initSecrets(inventoryDir: string, clusterName: string, opts: SecretsChangeOptions): Promise<InitResult> {
  const loc = resolveKeyLocation(clusterName, opts.env);
  let keyCreated = false;
  let key: LoadedKey;
  try {
    key = await loadKey(clusterName, opts.env);
  } catch (e) {
    if (!(e instanceof MissingKeyError) || loc.kind !== 'file') throw e;
    await createKey(clusterName, opts);
    keyCreated = true;
    key = await loadKey(clusterName, opts.env);
  }
  const file = secretsFilePath(inventoryDir);
  let exists = true;
  try {
    await stat(file);
  } catch {
    exists = false;
  }
  const base = { keyCreated, keyLabel: key.location.label, recipient: key.recipient, warnings: key.warnings };
  if (exists) {
    let store: SecretsStore | undefined;
    try {
      store = await readStore(inventoryDir, key, clusterName);
    } catch (e) {
      if (e instanceof EnvironmentError && keyCreated) {
        return { ...base, secretsCreated: false, needsRecipientAdd: true, alreadyInitialised: false, generated: [] };
      }
      throw e;
    }
    return { ...base, secretsCreated: false, needsRecipientAdd: false, alreadyInitialised: true, generated: [], ...(store ? { version: store.version } : {}) };
  }
  const loaded = await loadOrCreateSecrets(inventoryDir, clusterName, { env: opts.env, now: opts.now, create: true, wifiRequired: false });
  return { ...base, secretsCreated: true, needsRecipientAdd: false, alreadyInitialised: false, version: loaded.version, generated: loaded.generated };
}
