/**
 * SSH to a node (ssh2): run one command and collect its output, with the host key checked against
 * an OpenSSH-format known_hosts file pi-image keeps for itself (~/.config/pi-image/known_hosts):
 *   - first contact: the key is accepted and recorded (trust on first use), fingerprint reported;
 *   - a different key later: ClusterError, nothing is sent (a reflashed node has new host keys:
 *     the hint says which line to remove once you know why it changed).
 * Authentication as OpenSSH does it: the keys of ssh-agent ($SSH_AUTH_SOCK) first, then the key
 * file (--identity or the configured key). An encrypted key file takes its passphrase from
 * $PI_IMAGE_SSH_PASSPHRASE or, on a terminal, from a prompt; it is asked for only when the agent
 * did not get us in. Key problems on this side (a .pub file, not a key, encrypted with no
 * passphrase, a wrong passphrase) are EnvironmentErrors (exit 3) named before any connection;
 * a refusal by the server is a ClusterError (exit 5).
 * One deadline (timeoutMs) covers connect, handshake, authentication and the command, minus the
 * time spent waiting for the operator to type a passphrase.
 * The command's stdout may be a secret (k3s.yaml holds the admin client key): it is returned, never
 * logged or put into an error. stderr (short, from cat/sudo) is quoted in errors.
 */
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import ssh2, { type AnyAuthMethod, type AuthenticationType, type ConnectConfig, type NextAuthHandler } from 'ssh2';

// ssh2 is CommonJS: Node's ESM loader gives no named export `utils` (tsx and vitest would), so the
// built CLI takes both from the default export
const { Client, utils } = ssh2;
import { ClusterError, EnvironmentError } from '../core/errors.js';
import { elapsed, trace } from './trace.js';

/** Why an SSH exchange failed, for callers that retry (boot-test waits through a booting guest). */
export type SshFailure = 'refused' | 'unreachable' | 'closed' | 'timeout' | 'host-key-changed' | 'exec';

/** A failed SSH exchange (not a failed command: that is a result with its exit code). */
export class SshError extends ClusterError {
  readonly reason: SshFailure;
  constructor(reason: SshFailure, message: string, opts: { hint?: string } = {}) {
    super(message, opts);
    this.reason = reason;
  }
}

export interface HostKeyInfo {
  type: string;
  /** SHA256:… as `ssh-keygen -lf` prints it */
  fingerprint: string;
  /** known: matched the file; recorded: first contact, now written to the file; unchecked: no file (throwaway VMs) */
  status: 'known' | 'recorded' | 'unchecked';
}

/** How to log in: an ssh-agent socket and/or a key file (either may be absent, not both). */
export interface SshAuth {
  /** $SSH_AUTH_SOCK, when it names a socket */
  agent?: string;
  key?: SshKeyFile;
}

export interface SshKeyFile {
  path: string;
  /** where the path came from, for messages: --identity, $PI_IMAGE_SSH_KEY, ~/.ssh/id_ed25519 */
  from: string;
  data: Buffer;
  encrypted: boolean;
  /** for an encrypted key: $PI_IMAGE_SSH_PASSPHRASE, else asked on the terminal when needed */
  passphrase?: () => Promise<string | undefined>;
}

export interface SshExecOptions {
  host: string;
  port: number;
  username: string;
  auth: SshAuth;
  /** the known_hosts file host keys are pinned in; undefined only for throwaway VMs (not checked) */
  knownHostsPath: string | undefined;
  command: string;
  timeoutMs: number;
}

export interface SshExecResult {
  stdout: Buffer;
  stderr: string;
  exitCode: number;
  hostKey: HostKeyInfo;
}

/** The name OpenSSH uses in known_hosts: `host`, or `[host]:port` for a port other than 22. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Key type from an SSH public key blob (its first length-prefixed string). */
export function keyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

interface KnownEntry {
  line: number;
  type: string;
  key: string;
}

/** Entries for `name` in an OpenSSH known_hosts text (plain host patterns; hashed lines are skipped). */
export function knownEntries(text: string, name: string): KnownEntry[] {
  const out: KnownEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('@')) return;
    const [hosts, type, key] = line.split(/\s+/);
    if (!hosts || !type || !key) return;
    if (hosts.split(',').includes(name)) out.push({ line: i + 1, type, key });
  });
  return out;
}

async function readKnownHosts(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new EnvironmentError(`cannot read the known hosts file ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: 'fix its permissions or pass --known-hosts FILE',
    });
  }
}

const KEY_HINT = 'pass --identity FILE or set $PI_IMAGE_SSH_KEY to the private key whose public half is in cluster.yaml admin.sshKeys, or load it into ssh-agent (ssh-add)';

/** Reads a private key file; a missing key is an EnvironmentError naming where it looked. */
export async function readPrivateKey(path: string, from: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new EnvironmentError(`no SSH private key at ${path} (${from}: ${code})`, { hint: KEY_HINT });
  }
}

/** Checks a key file without its passphrase: a private key (maybe encrypted), or one clear error. */
export function inspectPrivateKey(path: string, from: string, data: Buffer): { encrypted: boolean } {
  const parsed = utils.parseKey(data);
  if (parsed instanceof Error) {
    if (/no passphrase given/i.test(parsed.message)) return { encrypted: true };
    throw new EnvironmentError(`${path} (${from}) is not an SSH private key (${parsed.message})`, { hint: KEY_HINT });
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || !key.isPrivateKey()) {
    const privateHalf = path.endsWith('.pub') ? path.slice(0, -'.pub'.length) : undefined;
    throw new EnvironmentError(`${path} (${from}) is a public key; SSH needs the private key`, {
      hint: privateHalf ? `pass the private half: --identity ${privateHalf}` : KEY_HINT,
    });
  }
  return { encrypted: false };
}

/** The passphrase of an encrypted key, checked: wrong or missing is an EnvironmentError (exit 3). */
async function unlockKey(key: SshKeyFile): Promise<{ data: Buffer; passphrase?: string }> {
  if (!key.encrypted) return { data: key.data };
  const passphrase = key.passphrase ? await key.passphrase() : undefined;
  if (passphrase === undefined || passphrase === '') {
    throw new EnvironmentError(`${key.path} (${key.from}) is encrypted and no passphrase was given`, {
      hint: 'set $PI_IMAGE_SSH_PASSPHRASE, run on a terminal to be asked, or load the key into ssh-agent (ssh-add)',
    });
  }
  const parsed = utils.parseKey(key.data, passphrase);
  if (parsed instanceof Error) {
    throw new EnvironmentError(`wrong passphrase for ${key.path} (${key.from})`, {
      hint: 'check $PI_IMAGE_SSH_PASSPHRASE (or what you typed); `ssh-keygen -y -f KEY` tests a passphrase',
    });
  }
  return { data: key.data, passphrase };
}

/** Runs `command` on the host and collects its output; see the module comment for keys and host keys. */
export async function sshExec(opts: SshExecOptions): Promise<SshExecResult> {
  const name = knownHostsName(opts.host, opts.port);
  const where = `${opts.username}@${name}`;
  if (!opts.auth.agent && !opts.auth.key) throw new EnvironmentError(`no SSH key to log in to ${where} with`, { hint: KEY_HINT });
  // without an agent the key is needed anyway: unlock it before connecting (a prompt cannot race the deadline)
  let unlocked = !opts.auth.agent && opts.auth.key ? await unlockKey(opts.auth.key) : undefined;
  const known = opts.knownHostsPath === undefined ? [] : knownEntries(await readKnownHosts(opts.knownHostsPath), name);
  let presented: { type: string; b64: string; fp: string } | undefined;
  let mismatch = false;

  const conn = new Client();
  const tried: string[] = [];
  let keyError: unknown;
  const config: ConnectConfig = {
    host: opts.host,
    port: opts.port,
    username: opts.username,
    // our own deadline below covers the whole exchange; ssh2's own would also count a passphrase prompt
    readyTimeout: 2_147_483_647,
    hostVerifier: (key: Buffer): boolean => {
      presented = { type: keyType(key), b64: key.toString('base64'), fp: fingerprint(key) };
      if (known.length === 0) return true; // first contact: recorded once the connection is up
      const p = presented;
      if (known.some((k) => k.type === p.type && k.key === p.b64)) return true;
      mismatch = true;
      return false;
    },
  };
  if (known.length > 0) {
    // ask for the key type(s) on record, so a host with several keys is compared like for like
    const algs = [...new Set(known.flatMap((k) => (k.type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [k.type])))];
    config.algorithms = { serverHostKey: algs as NonNullable<NonNullable<ConnectConfig['algorithms']>['serverHostKey']> };
  }

  const started = performance.now();
  trace(`ssh ${where}: connecting (${[opts.auth.agent ? 'ssh-agent' : '', opts.auth.key ? `key ${opts.auth.key.path}` : ''].filter(Boolean).join(', then ')})`);
  return await new Promise<SshExecResult>((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let left = opts.timeoutMs;
    let armedAt = 0;
    const fail = (e: unknown): void => {
      if (settled) return;
      settled = true;
      trace(`ssh ${where}: failed after ${elapsed(started)}`);
      clearTimeout(timer);
      conn.end();
      conn.destroy();
      reject(e);
    };
    const arm = (): void => {
      armedAt = Date.now();
      timer = setTimeout(
        () => fail(new SshError('timeout', `ssh ${where}: no answer within ${Math.round(opts.timeoutMs / 100) / 10} s (--timeout)`, { hint: 'is the node up and sshd running? check the address with --host, or raise --timeout' })),
        Math.max(1, left),
      );
    };
    const pause = (): void => {
      clearTimeout(timer);
      left -= Date.now() - armedAt;
    };
    arm();

    // agent first, then the key file (its passphrase asked for only now, with the deadline paused)
    const steps: (() => Promise<AnyAuthMethod | false>)[] = [];
    if (opts.auth.agent) steps.push(async () => (tried.push('the keys of ssh-agent'), { type: 'agent', username: opts.username, agent: opts.auth.agent! }));
    if (opts.auth.key) {
      const key = opts.auth.key;
      steps.push(async () => {
        try {
          if (!unlocked) {
            pause();
            try {
              unlocked = await unlockKey(key);
            } finally {
              if (!settled) arm();
            }
          }
        } catch (error) {
          keyError = error;
          return false;
        }
        tried.push(key.path);
        return { type: 'publickey', username: opts.username, key: unlocked.data, ...(unlocked.passphrase ? { passphrase: unlocked.passphrase } : {}) };
      });
    }
    config.authHandler = (_left: AuthenticationType[] | null, _partial: boolean | null, next: NextAuthHandler): void => {
      const step = steps.shift();
      if (!step) return next(false as unknown as AuthenticationType);
      step().then(
        (m) => next((m === false ? false : m) as unknown as AuthenticationType),
        (e: unknown) => fail(e),
      );
    };

    conn.on('error', (err: Error & { level?: string; code?: string }) => {
      if (mismatch && presented) {
        const lines = known.map((k) => k.line).join(', ');
        fail(
          new SshError('host-key-changed', `the host key of ${name} CHANGED: it presented ${presented.type} ${presented.fp}, ${opts.knownHostsPath} line ${lines} has another — refusing to connect`, {
            hint: `this happens when a node is reflashed (new host keys) — or when something is impersonating it. If you know why, delete line ${lines} of ${opts.knownHostsPath} and run again to record the new key.`,
          }),
        );
        return;
      }
      if (err.level === 'agent') return; // the agent failed us: ssh2 goes on with the key file
      if (err.level === 'client-authentication') {
        if (!/All configured authentication methods failed/i.test(err.message)) return; // one method failed; the next follows
        if (keyError !== undefined) {
          fail(keyError);
          return;
        }
        fail(
          new SshError('refused', `ssh ${where}: the server refused ${tried.length > 0 ? tried.join(' and ') : 'every key'} (authentication failed)`, {
            hint: 'use the key whose public half is in cluster.yaml admin.sshKeys (--identity FILE / $PI_IMAGE_SSH_KEY, or ssh-add it), and the right user (--user)',
          }),
        );
        return;
      }
      const code = err.code ?? (err.level === 'client-timeout' ? 'timeout' : err.message);
      const reason: SshFailure = ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(err.code ?? '') ? 'unreachable' : 'closed';
      fail(new SshError(reason, `cannot ssh to ${where} (${code})`, { hint: 'is the node up, on the network and running sshd? the address comes from the first server in the inventory (override with --host / --ssh-port)' }));
    });

    conn.on('ready', () => {
      const record = async (): Promise<HostKeyInfo> => {
        const p = presented!;
        if (opts.knownHostsPath === undefined) return { type: p.type, fingerprint: p.fp, status: 'unchecked' };
        if (known.length > 0) return { type: p.type, fingerprint: p.fp, status: 'known' };
        await mkdir(dirname(opts.knownHostsPath), { recursive: true, mode: 0o700 });
        await appendFile(opts.knownHostsPath, `${name} ${p.type} ${p.b64}\n`, { mode: 0o600 });
        return { type: p.type, fingerprint: p.fp, status: 'recorded' };
      };
      trace(`ssh ${where}: logged in with ${tried[tried.length - 1] ?? 'a key'}; host key ${presented?.type ?? '?'} ${presented?.fp ?? ''}; running: ${opts.command.length > 300 ? `${opts.command.slice(0, 300)}…` : opts.command}`);
      conn.exec(opts.command, (err, stream) => {
        if (err) {
          fail(new SshError('exec', `ssh ${where}: could not run the command (${err.message})`));
          return;
        }
        const out: Buffer[] = [];
        let errText = '';
        stream.on('data', (d: Buffer) => out.push(d));
        stream.stderr.on('data', (d: Buffer) => (errText += d.toString('utf8')));
        stream.on('close', (code: number | null) => {
          clearTimeout(timer);
          record().then(
            (hostKey) => {
              if (settled) return;
              settled = true;
              conn.end();
              trace(`ssh ${where}: exit ${code ?? '?'}, ${Buffer.concat(out).length} bytes out, ${elapsed(started)}`);
              resolve({ stdout: Buffer.concat(out), stderr: errText.trim(), exitCode: code ?? -1, hostKey });
            },
            (e: unknown) => fail(e),
          );
        });
      });
    });
    conn.connect(config);
  });
}

/** Single-quotes a string for a POSIX shell. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Whether `path` is a unix socket (an ssh-agent). */
async function isSocket(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isSocket();
  } catch {
    return false;
  }
}

export interface SshAuthOptions {
  /** --identity, resolved against cwd */
  identity?: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
  home: string;
  /** asks on the terminal without echo; absent when there is no terminal */
  askPassphrase?: (question: string) => Promise<string>;
}

/**
 * The credentials to log in with, as OpenSSH picks them: ssh-agent ($SSH_AUTH_SOCK) when it runs,
 * and the key file (--identity, then $PI_IMAGE_SSH_KEY, then ~/.ssh/id_ed25519). With an agent, the
 * default key file may be absent; a named one (--identity, $PI_IMAGE_SSH_KEY) must exist.
 */
export async function resolveSshAuth(o: SshAuthOptions): Promise<SshAuth> {
  const envKey = o.env['PI_IMAGE_SSH_KEY'];
  const from = o.identity ? '--identity' : envKey ? '$PI_IMAGE_SSH_KEY' : '~/.ssh/id_ed25519';
  const raw = o.identity ?? envKey ?? join(o.home, '.ssh', 'id_ed25519');
  const path = isAbsolute(raw) ? raw : resolve(o.cwd, raw);
  const sock = o.env['SSH_AUTH_SOCK'];
  const agent = sock && (await isSocket(sock)) ? sock : undefined;
  let data: Buffer;
  try {
    data = await readPrivateKey(path, from);
  } catch (error) {
    if (agent && from === '~/.ssh/id_ed25519') return { agent };
    throw error;
  }
  const { encrypted } = inspectPrivateKey(path, from, data);
  const envPass = o.env['PI_IMAGE_SSH_PASSPHRASE'];
  const ask = o.askPassphrase;
  const passphrase = encrypted
    ? async (): Promise<string | undefined> => (envPass !== undefined ? envPass : ask ? await ask(`Enter passphrase for key '${path}': `) : undefined)
    : undefined;
  return { ...(agent ? { agent } : {}), key: { path, from, data, encrypted, ...(passphrase ? { passphrase } : {}) } };
}

/** The key file alone (no agent), as `ssh -i FILE -o IdentitiesOnly=yes` uses it; passphrase from $PI_IMAGE_SSH_PASSPHRASE. */
export async function keyFileAuth(path: string, from: string, env: NodeJS.ProcessEnv): Promise<SshAuth> {
  const data = await readPrivateKey(path, from);
  const { encrypted } = inspectPrivateKey(path, from, data);
  const pass = env['PI_IMAGE_SSH_PASSPHRASE'];
  return { key: { path, from, data, encrypted, ...(encrypted ? { passphrase: async () => pass } : {}) } };
}
