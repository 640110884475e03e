/**
 * The `kubeconfig` use case: fetch k3s's admin kubeconfig from the first server over SSH (host key
 * pinned on first use), point it at the cluster's serverUrl, and write it as a file of its own or
 * merge it into an existing kubeconfig. SSH and the files come in as ports.
 *
 * Merging never overwrites another cluster's entry of the same name unless `force`; whenever an
 * existing file changes, its previous contents are kept next to it as `<file>.bak` (mode 0600).
 */
import { readFile } from 'node:fs/promises';
import { atomicWriteFile } from '../adapters/atomic-write.js';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { loadInventory } from './inventory.js';
import type { HostKeyInfo, SshAuth, SshAuthOptions, SshExecOptions, SshExecResult } from '../adapters/ssh.js';
import { ClusterError, InputError, IoError } from '../core/errors.js';
import { mergeKubeconfig, rewriteK3sKubeconfig, serializeKubeconfig } from '../core/verify/kubeconfig.js';

export const DEFAULT_REMOTE_KUBECONFIG = '/etc/rancher/k3s/k3s.yaml';

import type { SshTargetOptions } from './ssh-target.js';

export interface KubeconfigOptions extends SshTargetOptions {
  inventoryDir: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  home: string;
  merge: boolean;
  /** with merge: replace a same-named entry of another cluster */
  force: boolean;
  /** with merge: make the new context current */
  switchContext: boolean;
  /** name for cluster/user/context (default: the cluster name) */
  context?: string;
  out?: string;
  /** host default: the first server's static address, else the serverUrl's host */
  remotePath: string;
}

export interface KubeconfigPorts {
  ssh: {
    resolveAuth(o: SshAuthOptions): Promise<SshAuth>;
    exec(o: SshExecOptions): Promise<SshExecResult>;
    /** quotes one word for the remote POSIX shell */
    shellQuote(s: string): string;
  };
  files: {
    /** the file's text, or undefined when it does not exist */
    read(path: string): Promise<string | undefined>;
    /** atomic write, mode 0600 */
    writePrivate(path: string, text: string): Promise<void>;
  };
  /** operator-facing notes (first contact with a host) */
  notice(line: string): void;
}

export interface KubeconfigResult {
  context: string;
  file: string;
  merged: boolean;
  server: string;
  hostKey: HostKeyInfo;
  /** the previous contents of `file`, when merging changed it */
  backup?: string;
}

/** Writes `text` to `path` with mode 0600, atomically (never a half-written kubeconfig); new directories 0700. */
export async function writePrivateFile(path: string, text: string): Promise<void> {
  await atomicWriteFile(path, text, { mode: 0o600, dirMode: 0o700, hint: 'check the directory exists and is writable, or pass --out FILE' });
}

export async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IoError(`cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** The real ports: ssh2 (loaded on demand: a heavy library) and the file system. */
export async function kubeconfigPorts(notice: (line: string) => void): Promise<KubeconfigPorts> {
  const ssh = await import('../adapters/ssh.js');
  return {
    ssh: { resolveAuth: ssh.resolveSshAuth, exec: ssh.sshExec, shellQuote: ssh.shellQuote },
    files: { read: readTextIfExists, writePrivate: writePrivateFile },
    notice,
  };
}

export async function runKubeconfig(o: KubeconfigOptions, ports: KubeconfigPorts): Promise<KubeconfigResult> {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(o.cwd, p));
  if (!Number.isInteger(o.sshPort) || o.sshPort < 1 || o.sshPort > 65535) {
    throw new InputError(`--ssh-port ${o.sshPort} is not a TCP port`, { hint: 'use 1-65535 (default 22)' });
  }
  if (o.force && !o.merge) throw new InputError('--force only applies to --merge', { hint: 'without --merge, --out names a file of its own, which is replaced' });

  const inventory = await loadInventory(o.inventoryDir, { cwd: o.cwd });
  const name = o.context ?? inventory.cluster.name;
  const server = inventory.nodes.find((n) => n.role === 'server');
  let host = o.host;
  if (!host) {
    if (server?.address.mode === 'static') host = server.address.address;
    else host = new URL(inventory.cluster.k3s.serverUrl).hostname;
  }
  const username = o.user ?? inventory.cluster.admin.user;
  const auth = await ports.ssh.resolveAuth({
    ...(o.identity ? { identity: o.identity } : {}),
    env: o.env,
    cwd: o.cwd,
    home: o.home,
    ...(o.askPassphrase ? { askPassphrase: o.askPassphrase } : {}),
  });
  const knownHostsPath = abs(o.knownHosts ?? join(o.home, '.config', 'pi-image', 'known_hosts'));

  const remote = ports.ssh.shellQuote(o.remotePath);
  // k3s.yaml is 0600 root: sudo unless we already are root (a root login needs no sudo, which may be absent)
  const command = `if [ "$(id -u)" = 0 ]; then cat -- ${remote}; else sudo -n cat -- ${remote}; fi`;
  const res = await ports.ssh.exec({ host, port: o.sshPort, username, auth, knownHostsPath, command, timeoutMs: o.timeoutMs });
  if (res.hostKey.status === 'recorded') {
    ports.notice(`first contact with ${host}: recorded its ${res.hostKey.type} host key ${res.hostKey.fingerprint} in ${knownHostsPath}\n`);
  }
  const where = `${username}@${host}:${o.remotePath}`;
  if (res.exitCode !== 0) {
    const stderr = res.stderr.split('\n').slice(0, 3).join(' / ');
    const missing = /No such file/i.test(res.stderr);
    const sudo = /sudo/i.test(res.stderr);
    throw new ClusterError(`could not read ${where} (exit ${res.exitCode}: ${stderr || 'no error output'})`, {
      hint: missing
        ? `is k3s installed and started on ${host}, and is it a server? (agents have no k3s.yaml; check \`systemctl status k3s\`, or pass --remote-path)`
        : sudo
          ? `${username} needs password-less sudo on ${host} (cloud-init sets NOPASSWD for the admin user)`
          : `check that ${username} may read ${o.remotePath} on ${host}`,
    });
  }
  const doc = rewriteK3sKubeconfig(res.stdout.toString('utf8'), { name, serverUrl: inventory.cluster.k3s.serverUrl, source: where });

  const result = { context: name, merged: o.merge, server: inventory.cluster.k3s.serverUrl, hostKey: res.hostKey };
  if (o.merge) {
    const fromEnv = (o.env['KUBECONFIG'] ?? '').split(delimiter).filter((p) => p !== '');
    const target = abs(o.out ?? fromEnv[0] ?? join(o.home, '.kube', 'config'));
    const existing = await ports.files.read(target);
    const merged = mergeKubeconfig(existing, doc, { switchContext: o.switchContext, source: target, force: o.force });
    let backup: string | undefined;
    if (existing !== undefined && existing !== merged) {
      backup = `${target}.bak`;
      await ports.files.writePrivate(backup, existing);
    }
    await ports.files.writePrivate(target, merged);
    return { ...result, file: target, ...(backup ? { backup } : {}) };
  }
  const target = abs(o.out ?? join(o.home, '.kube', `${name}.yaml`));
  await ports.files.writePrivate(target, serializeKubeconfig(doc));
  return { ...result, file: target };
}
