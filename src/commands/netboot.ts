import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { loadInventory } from '../app/inventory.js';
import { printJson } from '../app/io.js';
import { exportNode, hostAddresses, writeSharedFiles, type NodeExportResult } from '../adapters/netboot.js';
import { InputError, IoError } from '../core/errors.js';
import { cidrContains, parseCidr } from '../core/inventory/net.js';
import { planNetboot } from '../core/netboot.js';
import { type GlobalArgs, io } from './context.js';

interface NetbootArgs extends GlobalArgs {
  node?: string;
  all: boolean;
  root: string;
  server?: string;
  'build-dir': string;
}

export const netbootCommand: CommandModule<GlobalArgs, NetbootArgs> = {
  command: 'netboot [node]',
  describe: 'export node images for network boot: TFTP boot folders, NFS roots, dnsmasq + exports snippets',
  builder: (y) =>
    y
      .positional('node', { type: 'string', describe: 'node hostname (or --all)' })
      .option('all', { type: 'boolean', default: false, describe: 'every node with a Pi serial' })
      .option('root', { type: 'string', demandOption: true, describe: 'export directory on the boot server, e.g. /srv/netboot' })
      .option('server', { type: 'string', describe: 'IPv4 address of this TFTP/NFS server (default: this host\'s address in the cluster network)' })
      .option('build-dir', { type: 'string', default: join('build', 'images'), describe: 'where node images are' })
      .check((a) => {
        if ((a.node === undefined) === !a.all) throw new Error('give a node name or --all (not both)');
        return true;
      })
      .example('$0 netboot --all --root /srv/netboot --server 10.0.0.2', 'export every node with a serial')
      .example('$0 netboot pi-cluster-3 --root /srv/netboot -o json', 'one node, machine-readable'),
  handler: async (argv) => {
    const out = io();
    const inv = await loadInventory(argv.inventory, { cwd: out.cwd });
    const root = resolve(out.cwd, argv.root);
    await checkExportRoot(root, argv.root);
    const server = argv.server ?? (await defaultServer(inv.cluster.network.cidr));
    const plan = planNetboot(inv, { root, server, ...(argv.node === undefined ? {} : { only: [argv.node] }) });
    for (const s of plan.skipped) out.err(`${s.node === '(server)' ? '' : `skipping ${s.node}: `}${s.reason}\n`);
    if (plan.nodes.length === 0) {
      throw new InputError('no node to export for netboot', { hint: 'give nodes a `serial:` (and a `dataDisk:`) in their node files' });
    }
    const buildDir = isAbsolute(argv['build-dir']) ? argv['build-dir'] : resolve(out.cwd, argv['build-dir']);
    const results: NodeExportResult[] = [];
    for (const n of plan.nodes) {
      if (argv.output !== 'json') out.err(`exporting ${n.node} (serial ${n.serial}) …\n`);
      results.push(await exportNode(n, join(buildDir, `${n.node}.img`)));
    }
    const shared = await writeSharedFiles(plan);
    if (argv.output === 'json') {
      printJson(out, {
        root: plan.root,
        server: plan.server,
        nodes: results.map((r) => ({ ...r, rootfs: { ...r.rootfs, ms: Math.round(r.rootfs.ms) } })),
        skipped: plan.skipped,
        files: shared,
      });
      return;
    }
    for (const r of results) {
      out.out(`${r.node}: tftp ${r.tftpDir}/ (${r.bootFiles} files), nfs ${r.nfsDir}/ (${r.rootfs.files} files, ${r.rootfs.dirs} dirs, ${r.rootfs.symlinks} symlinks, ${(r.rootfs.ms / 1000).toFixed(1)} s)\n`);
    }
    out.out(`wrote ${shared.join(', ')}\n`);
    out.out(`next: see ${join(plan.root, 'EEPROM.md')} and docs/runbooks/netboot.md\n`);
  },
};

/** --root must be a writable directory, or not exist yet (it is created): a clear error before any work. */
async function checkExportRoot(root: string, given: string): Promise<void> {
  let st;
  try {
    st = await stat(root);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') throw new InputError(`--root ${given}: a part of the path is a file, not a directory`, { hint: 'pass --root DIR, the export directory (e.g. /srv/netboot)' });
    throw new IoError(`--root ${given}: cannot read it (${code})`, { cause: error });
  }
  if (!st.isDirectory()) throw new InputError(`--root ${given} is a file, not a directory`, { hint: 'pass --root DIR, the export directory (e.g. /srv/netboot); it is created when missing' });
  try {
    await access(root, constants.W_OK);
  } catch (error) {
    throw new IoError(`--root ${given} is not writable (${(error as NodeJS.ErrnoException).code})`, {
      hint: 'run as a user who may write there, or choose another --root',
      cause: error,
    });
  }
}

async function defaultServer(cidr: string | undefined): Promise<string> {
  const addrs = await hostAddresses();
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
