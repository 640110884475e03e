/**
 * SSH to a node (ssh2): run one command and collect its output, with the host key checked against
 * an OpenSSH-format known_hosts file pi-image keeps for itself (~/.config/pi-image/known_hosts):
 *   - first contact: the key is accepted and recorded (trust on first use), fingerprint reported;
 *   - a different key later: ClusterError, nothing is sent (a reflashed node has new host keys:
 *     the hint says which line to remove once you know why it changed).
 * The command's stdout may be a secret (k3s.yaml holds the admin client key): it is returned, never
 * logged or put into an error. stderr (short, from cat/sudo) is quoted in errors.
 */
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Client, type ConnectConfig } from 'ssh2';
import { ClusterError, EnvironmentError } from '../core/errors.js';

export interface HostKeyInfo {
  type: string;
  /** SHA256:… as `ssh-keygen -lf` prints it */
  fingerprint: string;
  /** known: matched the file; recorded: first contact, now written to the file */
  status: 'known' | 'recorded';
}

export interface SshExecOptions {
  host: string;
  port: number;
  username: string;
  privateKey: Buffer;
  passphrase?: string;
  knownHostsPath: string;
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

/** Reads a private key file; a missing key is an EnvironmentError naming where it looked. */
export async function readPrivateKey(path: string, from: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new EnvironmentError(`no SSH private key at ${path} (${from}: ${code})`, {
      hint: 'pass --identity FILE or set $PI_IMAGE_SSH_KEY to the key whose public half is in cluster.yaml admin.sshKeys',
    });
  }
}

/** Runs `command` on the host and collects its output; see the module comment for host keys. */
export async function sshExec(opts: SshExecOptions): Promise<SshExecResult> {
  const name = knownHostsName(opts.host, opts.port);
  const known = knownEntries(await readKnownHosts(opts.knownHostsPath), name);
  let presented: { type: string; b64: string; fp: string } | undefined;
  let mismatch = false;

  const conn = new Client();
  const config: ConnectConfig = {
    host: opts.host,
    port: opts.port,
    username: opts.username,
    privateKey: opts.privateKey,
    readyTimeout: opts.timeoutMs,
    hostVerifier: (key: Buffer): boolean => {
      presented = { type: keyType(key), b64: key.toString('base64'), fp: fingerprint(key) };
      if (known.length === 0) return true; // first contact: recorded once the connection is up
      const p = presented;
      if (known.some((k) => k.type === p.type && k.key === p.b64)) return true;
      mismatch = true;
      return false;
    },
  };
  if (opts.passphrase !== undefined) config.passphrase = opts.passphrase;
  if (known.length > 0) {
    // ask for the key type(s) on record, so a host with several keys is compared like for like
    const algs = [...new Set(known.flatMap((k) => (k.type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [k.type])))];
    config.algorithms = { serverHostKey: algs as NonNullable<NonNullable<ConnectConfig['algorithms']>['serverHostKey']> };
  }

  const where = `${opts.username}@${name}`;
  return await new Promise<SshExecResult>((resolve, reject) => {
    let settled = false;
    const fail = (e: unknown): void => {
      if (settled) return;
      settled = true;
      conn.end();
      reject(e);
    };
    const timer = setTimeout(() => fail(new ClusterError(`ssh ${where}: no answer within ${Math.round(opts.timeoutMs / 1000)} s`, { hint: 'is the node up and sshd running? check the address with --host' })), opts.timeoutMs + 1000);

    conn.on('error', (err: Error & { level?: string; code?: string }) => {
      clearTimeout(timer);
      if (mismatch && presented) {
        const lines = known.map((k) => k.line).join(', ');
        fail(
          new ClusterError(`the host key of ${name} CHANGED: it presented ${presented.type} ${presented.fp}, ${opts.knownHostsPath} line ${lines} has another — refusing to connect`, {
            hint: `this happens when a node is reflashed (new host keys) — or when something is impersonating it. If you know why, delete line ${lines} of ${opts.knownHostsPath} and run again to record the new key.`,
          }),
        );
        return;
      }
      if (err.level === 'client-authentication') {
        fail(new ClusterError(`ssh ${where}: the server refused the key (authentication failed)`, {
          hint: 'use the key whose public half is in cluster.yaml admin.sshKeys (--identity FILE / $PI_IMAGE_SSH_KEY), and the right user (--user)',
        }));
        return;
      }
      if (/passphrase/i.test(err.message) || /Cannot parse privateKey/i.test(err.message)) {
        fail(new EnvironmentError(`the SSH key cannot be used: ${err.message}`, { hint: 'set $PI_IMAGE_SSH_PASSPHRASE for an encrypted key, or pass an unencrypted key with --identity' }));
        return;
      }
      const code = err.code ?? (err.level === 'client-timeout' ? 'timeout' : err.message);
      fail(new ClusterError(`cannot ssh to ${where} (${code})`, { hint: 'is the node up, on the network and running sshd? the address comes from the first server in the inventory (override with --host / --ssh-port)' }));
    });

    conn.on('ready', () => {
      const record = async (): Promise<HostKeyInfo> => {
        const p = presented!;
        if (known.length > 0) return { type: p.type, fingerprint: p.fp, status: 'known' };
        await mkdir(dirname(opts.knownHostsPath), { recursive: true, mode: 0o700 });
        await appendFile(opts.knownHostsPath, `${name} ${p.type} ${p.b64}\n`, { mode: 0o600 });
        return { type: p.type, fingerprint: p.fp, status: 'recorded' };
      };
      conn.exec(opts.command, (err, stream) => {
        if (err) {
          clearTimeout(timer);
          fail(new ClusterError(`ssh ${where}: could not run the command (${err.message})`));
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
