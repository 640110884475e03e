/**
 * The `status` use case: read each node's first-boot status (/var/lib/pi-image/status.json, written
 * by the join script) and `cloud-init status` over SSH, all nodes in parallel, each under the one
 * deadline. A node that does not answer is reported as unreachable, never fails the others.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { loadInventory } from './inventory.js';
import type { SshAuth, SshAuthOptions, SshExecOptions, SshExecResult } from '../adapters/ssh.js';
import { unknownNodes, unknownNodesError } from '../core/node-selection.js';
import { InputError, PiImageError } from '../core/errors.js';
import type { SshTargetOptions } from './ssh-target.js';
import { type NodeStatus, parseJoinStatus, parseStatusProbe, STATUS_FILE, statusProbeCommand } from '../core/status.js';

export interface StatusOptions extends SshTargetOptions {
  inventoryDir: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  home: string;
  /** node hostnames; empty with `all` */
  nodes: readonly string[];
  all: boolean;
  /** where the status file is on the node (host: one node only) */
  remotePath: string;
}

export interface StatusPorts {
  ssh: {
    resolveAuth(o: SshAuthOptions): Promise<SshAuth>;
    exec(o: SshExecOptions): Promise<SshExecResult>;
  };
}

export interface StatusResult {
  cluster: string;
  nodes: NodeStatus[];
}

export async function statusPorts(): Promise<StatusPorts> {
  const ssh = await import('../adapters/ssh.js');
  return { ssh: { resolveAuth: ssh.resolveSshAuth, exec: ssh.sshExec } };
}

export async function runStatus(o: StatusOptions, ports: StatusPorts): Promise<StatusResult> {
  if (!Number.isInteger(o.sshPort) || o.sshPort < 1 || o.sshPort > 65535) {
    throw new InputError(`--ssh-port ${o.sshPort} is not a TCP port`, { hint: 'use 1-65535 (default 22)' });
  }
  if (o.timeoutMs <= 0) throw new InputError('--timeout must be more than 0', { hint: 'e.g. --timeout 15s' });
  const inventory = await loadInventory(o.inventoryDir, { cwd: o.cwd });
  const unknown = unknownNodes(inventory, o.nodes);
  if (unknown.length > 0) throw unknownNodesError(inventory, unknown);
  if (o.all && o.nodes.length > 0) throw new InputError('give node names or --all, not both', { hint: 'e.g. `pi-image status pi-cluster-2` or `pi-image status --all`' });
  const selected = o.all || o.nodes.length === 0 ? inventory.nodes : inventory.nodes.filter((n) => o.nodes.includes(n.hostname));
  if (o.host && selected.length !== 1) {
    throw new InputError('--host names one address: give exactly one node with it', { hint: 'e.g. `pi-image status pi-cluster-2 --host 192.168.1.52`' });
  }

  const auth = await ports.ssh.resolveAuth({
    ...(o.identity ? { identity: o.identity } : {}),
    env: o.env,
    cwd: o.cwd,
    home: o.home,
    ...(o.askPassphrase ? { askPassphrase: o.askPassphrase } : {}),
  });
  const knownHostsPath = (p: string): string => (isAbsolute(p) ? p : resolve(o.cwd, p));
  const khPath = knownHostsPath(o.knownHosts ?? join(o.home, '.config', 'pi-image', 'known_hosts'));
  const username = o.user ?? inventory.cluster.admin.user;
  const command = statusProbeCommand(o.remotePath);

  const nodes = await Promise.all(
    selected.map(async (n): Promise<NodeStatus> => {
      // a DHCP node is reached by its name (mDNS / the LAN's DNS)
      const host = o.host ?? (n.address.mode === 'static' ? n.address.address : n.hostname);
      let res: SshExecResult;
      try {
        res = await ports.ssh.exec({ host, port: o.sshPort, username, auth, knownHostsPath: khPath, command, timeoutMs: o.timeoutMs });
      } catch (error) {
        // local key problems are the operator's to fix once, not a per-node state
        if (error instanceof PiImageError && error.category !== 'cluster') throw error;
        return { node: n.hostname, host, reachable: false, error: error instanceof Error ? error.message : String(error) };
      }
      const probe = parseStatusProbe(res.stdout.toString('utf8'));
      const base = { node: n.hostname, host, reachable: true, ...(probe.cloudInit ? { cloudInit: probe.cloudInit } : {}) };
      if (res.exitCode !== 0 && probe.statusText === undefined) {
        return { ...base, error: `could not read ${o.remotePath} (exit ${res.exitCode}${res.stderr ? `: ${res.stderr.split('\n')[0]}` : ''})` };
      }
      if (probe.statusText === undefined) return base;
      const status = parseJoinStatus(probe.statusText);
      if (typeof status === 'string') return { ...base, error: status.replace(STATUS_FILE, o.remotePath) };
      return { ...base, status };
    }),
  );
  return { cluster: inventory.cluster.name, nodes };
}
