/**
 * `pi-image netboot`: export node images for network boot (TFTP boot folders, NFS roots, the
 * dnsmasq/exports snippets and the EEPROM guide). The plan is pure (src/core/netboot.ts); the
 * export itself comes in as a port (src/adapters/netboot.ts by default), so `pi-image rebuild
 * --netboot` runs this same use case for one node.
 */
import { join } from 'node:path';
import { exportNode, hostAddresses, type NodeExportResult, removeStaleStaging, writeSharedFiles } from '../adapters/netboot.js';
import { InputError } from '../core/errors.js';
import { cidrContains, parseCidr } from '../core/inventory/net.js';
import type { Inventory } from '../core/model.js';
import { type NetbootNodePlan, type NetbootPlan, planNetboot } from '../core/netboot.js';

/** What the netboot use case needs from the outside world. */
export interface NetbootPorts {
  /** stages and places tftp/<serial>/ and nfs/<node>/ for one node from its image */
  exportNode(node: NetbootNodePlan, image: string): Promise<NodeExportResult>;
  /** writes dnsmasq.d/pi-image.conf, exports and EEPROM.md; returns their paths */
  writeSharedFiles(plan: NetbootPlan): Promise<string[]>;
  /** whether the shared files exist already (exports below the root) */
  sharedFilesExist(root: string): Promise<boolean>;
  /** removes staging folders a killed export left behind; returns them */
  removeStaleStaging(root: string): Promise<string[]>;
  /** this host's IPv4 addresses, for the default --server */
  hostAddresses(): Promise<string[]>;
}

export function defaultNetbootPorts(): NetbootPorts {
  return {
    exportNode,
    writeSharedFiles,
    sharedFilesExist: async (root) => {
      const { stat } = await import('node:fs/promises');
      return stat(join(root, 'exports')).then(
        () => true,
        () => false,
      );
    },
    removeStaleStaging,
    hostAddresses,
  };
}

export interface NetbootOptions {
  inventory: Inventory;
  /** hostnames to export; undefined: every node with a serial */
  nodes?: readonly string[];
  /** absolute export root */
  root: string;
  /** IPv4 of the TFTP/NFS server; default: this host's only address in the cluster network */
  server?: string;
  /** absolute: where `<node>.img` are */
  buildDir: string;
  /** image per node instead of `<buildDir>/<node>.img` (rebuild passes the image it just built) */
  images?: Readonly<Record<string, string>>;
  /** `always` (default) rewrites the shared files; `if-missing` keeps existing ones (a rebuild changes neither serial nor paths) */
  sharedFiles?: 'always' | 'if-missing';
  /** progress and notes (stderr) */
  log(line: string): void;
}

export interface NetbootResult {
  root: string;
  server: string;
  nodes: NodeExportResult[];
  skipped: { node: string; reason: string }[];
  /** the shared files written (empty when kept) */
  files: string[];
  /** whether the shared files were written or kept */
  shared: 'written' | 'kept';
  /** staging folders of an earlier, interrupted export that were removed */
  removedStaging: string[];
}

/** The address the Pis reach this host on: the only one inside the cluster network. */
export async function defaultServer(ports: Pick<NetbootPorts, 'hostAddresses'>, cidr: string | undefined): Promise<string> {
  const addrs = await ports.hostAddresses();
  const net = cidr === undefined ? undefined : parseCidr(cidr);
  const inNet = net === undefined ? [] : addrs.filter((a) => cidrContains(net, a));
  if (inNet.length === 1 && inNet[0] !== undefined) return inNet[0];
  throw new InputError(
    inNet.length > 1
      ? `this host has several addresses in the cluster network ${cidr ?? ''} (${inNet.join(', ')}); say which one the Pis should use`
      : `this host has no address in the cluster network ${cidr ?? '(none configured)'}; say which address the Pis reach it on`,
    { hint: 'pass --server <IPv4 of this TFTP/NFS server>' },
  );
}

export async function runNetboot(opts: NetbootOptions, ports: NetbootPorts = defaultNetbootPorts()): Promise<NetbootResult> {
  const inv = opts.inventory;
  const server = opts.server ?? (await defaultServer(ports, inv.cluster.network.cidr));
  const plan = planNetboot(inv, { root: opts.root, server, ...(opts.nodes === undefined ? {} : { only: opts.nodes }) });
  for (const s of plan.skipped) opts.log(`${s.node === '(server)' ? '' : `skipping ${s.node}: `}${s.reason}`);
  if (plan.nodes.length === 0) {
    throw new InputError('no node to export for netboot', { hint: 'give nodes a `serial:` (and a `dataDisk:`) in their node files' });
  }
  const removedStaging = await ports.removeStaleStaging(plan.root);
  for (const d of removedStaging) opts.log(`removed ${d}: a staging folder left by an export that was stopped`);
  const nodes: NodeExportResult[] = [];
  for (const n of plan.nodes) {
    opts.log(`exporting ${n.node} (serial ${n.serial}) …`);
    nodes.push(await ports.exportNode(n, opts.images?.[n.node] ?? join(opts.buildDir, `${n.node}.img`)));
  }
  const keep = opts.sharedFiles === 'if-missing' && (await ports.sharedFilesExist(plan.root));
  const files = keep ? [] : await ports.writeSharedFiles(plan);
  return { root: plan.root, server: plan.server, nodes, skipped: plan.skipped, files, shared: keep ? 'kept' : 'written', removedStaging };
}
