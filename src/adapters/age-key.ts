/**
 * The age key store: where this environment's age identity (private key) is, loading it, and
 * creating it. The key lives outside the repository, looked up in this order:
 *   1. $PI_IMAGE_AGE_KEY        — the key itself (CI)
 *   2. $PI_IMAGE_AGE_KEY_FILE   — a file holding it
 *   3. $XDG_CONFIG_HOME/pi-image/<cluster>.agekey (default ~/.config/pi-image/<cluster>.agekey),
 *      created mode 0600 by `pi-image secrets init`, never overwritten.
 * No message carries key material.
 */
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { EnvironmentError, InputError, IoError } from '../core/errors.js';
import { run } from './process.js';

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
export async function createKey(clusterName: string, opts: { env: NodeJS.ProcessEnv; now: Date }): Promise<CreatedKey> {
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

/**
 * The git work tree that contains `file` when git would track it: `file` lies under a directory
 * with a `.git` and `git check-ignore` does not ignore it. undefined otherwise (also without git).
 */
export async function unignoredInWorkTree(file: string): Promise<string | undefined> {
  let dir = path.dirname(path.resolve(file));
  let root: string | undefined;
  for (;;) {
    try {
      await stat(path.join(dir, '.git'));
      root = dir;
      break;
    } catch {
      const up = path.dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  if (root === undefined) return undefined;
  try {
    // exit 0: ignored; 1: not ignored; anything else (no git, not a repository): assume not ignored
    const r = await run('git', ['-C', root, 'check-ignore', '-q', '--', path.resolve(file)], { okExitCodes: [0, 1] });
    return r.exitCode === 0 ? undefined : root;
  } catch {
    return root;
  }
}
