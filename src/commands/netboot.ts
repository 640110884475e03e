import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { loadInventory } from '../app/inventory.js';
import { printJson } from '../app/io.js';
import { runNetboot } from '../app/netboot.js';
import { InputError, IoError } from '../core/errors.js';
import type { GlobalArgs } from './context.js';
import { buildDirOption } from './options.js';

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
      .option('build-dir', buildDirOption('where node images are'))
      .check((a) => {
        if ((a.node === undefined) === !a.all) throw new Error('give a node name or --all (not both)');
        return true;
      })
      .example('$0 netboot --all --root /srv/netboot --server 10.0.0.2', 'export every node with a serial')
      .example('$0 netboot pi-cluster-3 --root /srv/netboot -o json', 'one node, machine-readable'),
  handler: async (argv) => {
    const out = argv.ctx.io;
    const inventory = await loadInventory(argv.inventory, { cwd: out.cwd });
    await checkExportRoot(resolve(out.cwd, argv.root), argv.root);
    const r = await runNetboot({
      inventory,
      ...(argv.node === undefined ? {} : { nodes: [argv.node] }),
      root: resolve(out.cwd, argv.root),
      ...(argv.server === undefined ? {} : { server: argv.server }),
      buildDir: isAbsolute(argv['build-dir']) ? argv['build-dir'] : resolve(out.cwd, argv['build-dir']),
      log: (line) => out.err(`${line}\n`),
    });
    if (argv.output === 'json') {
      printJson(out, {
        root: r.root,
        server: r.server,
        nodes: r.nodes.map((n) => ({ ...n, rootfs: { ...n.rootfs, ms: Math.round(n.rootfs.ms) } })),
        skipped: r.skipped,
        files: r.files,
        removedStaging: r.removedStaging,
      });
      return;
    }
    for (const n of r.nodes) {
      out.out(`${n.node}: tftp ${n.tftpDir}/ (${n.bootFiles} files), nfs ${n.nfsDir}/ (${n.rootfs.files} files, ${n.rootfs.dirs} dirs, ${n.rootfs.symlinks} symlinks, ${(n.rootfs.ms / 1000).toFixed(1)} s)\n`);
    }
    out.out(`wrote ${r.files.join(', ')}\n`);
    out.out(`next: see ${join(r.root, 'EEPROM.md')} and docs/runbooks/netboot.md\n`);
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
