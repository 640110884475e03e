/**
 * The secrets files of an inventory:
 *   <inventory>/secrets.age         age-encrypted (ASCII-armored) JSON store, encrypted to every
 *                                   public key in secrets.recipients plus the writer's own key
 *   <inventory>/secrets.recipients  public keys, one per line, `#` comments
 *   <inventory>/.secrets.lock       held (src/adapters/lock.ts) across every read-modify-write of
 *                                   either file, so concurrent changes never lose one another
 *
 * Nothing here prints, and no message carries a secret value or key material. Every value read or
 * written is registered with src/adapters/secret-values.ts for the CLI's output mask.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Decrypter, Encrypter, armor } from 'age-encryption';
import { EnvironmentError, InputError, IoError } from '../core/errors.js';
import { type SecretsStore, parseStore, serializeStore } from '../core/secrets.js';
import type { LoadedKey } from './age-key.js';
import { withLock } from './lock.js';
import { rememberSecretValues } from './secret-values.js';
import { atomicWriteFile } from './atomic-write.js';

const INVENTORY_WRITABLE = 'check that the inventory directory exists and is writable';

export const SECRETS_FILE = 'secrets.age';
export const RECIPIENTS_FILE = 'secrets.recipients';
export const SECRETS_LOCK_FILE = '.secrets.lock';

export function secretsFilePath(inventoryDir: string): string {
  return path.join(inventoryDir, SECRETS_FILE);
}
export function recipientsFilePath(inventoryDir: string): string {
  return path.join(inventoryDir, RECIPIENTS_FILE);
}

/**
 * Runs `fn` holding the store's lock: one writer at a time for secrets.age and secrets.recipients.
 * A second process waits (up to `waitMs`, default 120 s) and then fails naming the holder.
 */
export function withStoreLock<T>(inventoryDir: string, what: string, fn: () => Promise<T>, waitMs?: number): Promise<T> {
  return withLock(
    path.join(inventoryDir, SECRETS_LOCK_FILE),
    { what, ...(waitMs === undefined ? {} : { waitMs }) },
    () => fn(),
  );
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

/** Appends one public key (with a comment line) to secrets.recipients, creating it when absent. */
export async function appendRecipient(inventoryDir: string, recipient: string, comment: string): Promise<void> {
  const file = recipientsFilePath(inventoryDir);
  let existing: string;
  try {
    existing = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new IoError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    existing = '# age public keys that can decrypt secrets.age (one per line). Managed by `pi-image secrets recipients add`.\n';
  }
  const sep = existing === '' || existing.endsWith('\n') ? '' : '\n';
  await atomicWriteFile(file, `${existing}${sep}# ${comment}\n${recipient}\n`, { mode: 0o644, hint: INVENTORY_WRITABLE });
}

// ─── the encrypted file ────────────────────────────────────────────────────────────────────────

function rememberValues(store: SecretsStore): void {
  rememberSecretValues(Object.values(store.secrets).flatMap((e) => (e?.value ? [e.value] : [])));
}

/** Whether secrets.age exists (a store was initialised here). */
export async function storeExists(inventoryDir: string): Promise<boolean> {
  try {
    await readFile(secretsFilePath(inventoryDir));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new IoError(`cannot read ${secretsFilePath(inventoryDir)}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** Reads and decrypts the store; undefined when the file does not exist. */
export async function readStore(inventoryDir: string, key: LoadedKey, clusterName: string): Promise<SecretsStore | undefined> {
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

/**
 * Encrypts the store to all recipients (own key first) and writes it atomically, verified by a
 * round trip. Lists the writer's own key in secrets.recipients when it is not there yet.
 * Call it holding withStoreLock.
 */
export async function writeStore(inventoryDir: string, key: LoadedKey, store: SecretsStore): Promise<string[]> {
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
  await atomicWriteFile(secretsFilePath(inventoryDir), armored, { mode: 0o644, hint: INVENTORY_WRITABLE });
  return recipients;
}
