import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { loadInventory } from '../app/inventory.js';
import { printJson } from '../app/io.js';
import { ClusterError, InputError, IoError } from '../core/errors.js';
import { mergeKubeconfig, rewriteK3sKubeconfig, serializeKubeconfig } from '../core/verify/kubeconfig.js';
import { parseDuration } from '../core/verify/duration.js';
import { type GlobalArgs, io, lastNumber, lastString } from './context.js';

interface KubeconfigArgs extends GlobalArgs {
  merge: boolean;
  context?: string;
  out?: string;
  identity?: string;
  'known-hosts'?: string;
  host?: string;
  'ssh-port': number;
  user?: string;
  'remote-path': string;
  timeout: string;
  switch: boolean;
}

const DEFAULT_REMOTE = '/etc/rancher/k3s/k3s.yaml';


/** Writes `text` to `path` with mode 0600 via a temp file + rename (never a half-written kubeconfig). */
async function writePrivate(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.pi-image-${process.pid}.tmp`;
  try {
    await writeFile(tmp, text, { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw new IoError(`cannot write ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { hint: 'check the directory exists and is writable, or pass --out FILE' });
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IoError(`cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export const kubeconfigCommand: CommandModule<GlobalArgs, KubeconfigArgs> = {
  command: 'kubeconfig',
  describe: "fetch the cluster's admin kubeconfig from the first server over SSH (host key pinned on first use)",
  builder: (y) =>
    y
      .option('merge', { type: 'boolean', default: false, describe: 'merge into ~/.kube/config (or the first file of $KUBECONFIG, or --out) as a named context' })
      .option('context', { type: 'string', coerce: lastString, describe: 'name for the cluster/user/context (default: the cluster name)' })
      .option('out', { type: 'string', coerce: lastString, describe: 'file to write (default: ~/.kube/<name>.yaml; with --merge: the file to merge into)' })
      .option('switch', { type: 'boolean', default: true, describe: 'with --merge: make the new context current (--no-switch keeps the current one)' })
      .option('identity', { type: 'string', coerce: lastString, describe: 'SSH private key (default: $PI_IMAGE_SSH_KEY, then ~/.ssh/id_ed25519)' })
      .option('known-hosts', { type: 'string', coerce: lastString, describe: 'known_hosts file pi-image pins host keys in (default: ~/.config/pi-image/known_hosts)' })
      .option('host', { type: 'string', coerce: lastString, describe: "server address to SSH to (default: the first server's IP from the inventory)" })
      .option('ssh-port', { type: 'number', coerce: lastNumber, default: 22, describe: 'SSH port' })
      .option('user', { type: 'string', coerce: lastString, describe: "SSH user (default: the inventory's admin user)" })
      .option('remote-path', { type: 'string', coerce: lastString, default: DEFAULT_REMOTE, describe: 'where k3s wrote its kubeconfig on the server' })
      .option('timeout', { type: 'string', coerce: lastString, default: '30s', describe: 'SSH connect/command timeout' })
      .example('$0 kubeconfig --merge', 'add the cluster as a context to ~/.kube/config')
      .example('$0 kubeconfig --out pi.yaml', 'write a separate kubeconfig (mode 0600)'),
  handler: async (argv) => {
    // loaded here, not at start-up: these pull in heavy libraries every other command would pay for
    const { readPrivateKey, shellQuote, sshExec } = await import('../adapters/ssh.js');
    const out = io();
    const env = out.env;
    const home = env['HOME'] ?? homedir();
    const abs = (p: string): string => (isAbsolute(p) ? p : resolve(out.cwd, p));
    const timeoutMs = parseDuration(argv.timeout, '--timeout');
    if (!Number.isInteger(argv['ssh-port']) || argv['ssh-port'] < 1 || argv['ssh-port'] > 65535) {
      throw new InputError(`--ssh-port ${argv['ssh-port']} is not a TCP port`, { hint: 'use 1-65535 (default 22)' });
    }

    const inventory = await loadInventory(argv.inventory, { cwd: out.cwd });
    const name = argv.context ?? inventory.cluster.name;
    const server = inventory.nodes.find((n) => n.role === 'server');
    let host = argv.host;
    if (!host) {
      if (server?.address.mode === 'static') host = server.address.address;
      else host = new URL(inventory.cluster.k3s.serverUrl).hostname;
    }
    const username = argv.user ?? inventory.cluster.admin.user;

    const keyFrom = argv.identity ? '--identity' : env['PI_IMAGE_SSH_KEY'] ? '$PI_IMAGE_SSH_KEY' : '~/.ssh/id_ed25519';
    const keyPath = abs(argv.identity ?? env['PI_IMAGE_SSH_KEY'] ?? join(home, '.ssh', 'id_ed25519'));
    const privateKey = await readPrivateKey(keyPath, keyFrom);
    const knownHostsPath = abs(argv['known-hosts'] ?? join(home, '.config', 'pi-image', 'known_hosts'));

    const remote = shellQuote(argv['remote-path']);
    // k3s.yaml is 0600 root: sudo unless we already are root (a root login needs no sudo, which may be absent)
    const command = `if [ "$(id -u)" = 0 ]; then cat -- ${remote}; else sudo -n cat -- ${remote}; fi`;
    const passphrase = env['PI_IMAGE_SSH_PASSPHRASE'];
    const res = await sshExec({
      host,
      port: argv['ssh-port'],
      username,
      privateKey,
      ...(passphrase ? { passphrase } : {}),
      knownHostsPath,
      command,
      timeoutMs,
    });
    if (res.hostKey.status === 'recorded') {
      out.err(`first contact with ${host}: recorded its ${res.hostKey.type} host key ${res.hostKey.fingerprint} in ${knownHostsPath}\n`);
    }
    const where = `${username}@${host}:${argv['remote-path']}`;
    if (res.exitCode !== 0) {
      const stderr = res.stderr.split('\n').slice(0, 3).join(' / ');
      const missing = /No such file/i.test(res.stderr);
      const sudo = /sudo/i.test(res.stderr);
      throw new ClusterError(`could not read ${where} (exit ${res.exitCode}: ${stderr || 'no error output'})`, {
        hint: missing
          ? `is k3s installed and started on ${host}, and is it a server? (agents have no k3s.yaml; check \`systemctl status k3s\`, or pass --remote-path)`
          : sudo
            ? `${username} needs password-less sudo on ${host} (cloud-init sets NOPASSWD for the admin user)`
            : `check that ${username} may read ${argv['remote-path']} on ${host}`,
      });
    }
    const doc = rewriteK3sKubeconfig(res.stdout.toString('utf8'), { name, serverUrl: inventory.cluster.k3s.serverUrl, source: where });

    let target: string;
    if (argv.merge) {
      const fromEnv = (env['KUBECONFIG'] ?? '').split(delimiter).filter((p) => p !== '');
      target = abs(argv.out ?? fromEnv[0] ?? join(home, '.kube', 'config'));
      const existing = await readIfExists(target);
      await writePrivate(target, mergeKubeconfig(existing, doc, { switchContext: argv.switch, source: target }));
    } else {
      target = abs(argv.out ?? join(home, '.kube', `${name}.yaml`));
      await writePrivate(target, serializeKubeconfig(doc));
    }

    if (argv.output === 'json') {
      printJson(out, { context: name, file: target, merged: argv.merge, server: inventory.cluster.k3s.serverUrl, hostKey: res.hostKey });
    } else {
      out.err(`${argv.merge ? 'merged into' : 'wrote'} ${target} (mode 0600), server ${inventory.cluster.k3s.serverUrl}\n`);
      out.out(`${name}\n`);
    }
  },
};
