import { homedir } from 'node:os';
import type { CommandModule } from 'yargs';
import { printJson } from '../app/io.js';
import { runStatus, statusPorts } from '../app/status.js';
import { renderStatusTable, STATUS_FILE } from '../core/status.js';
import { parseDuration } from '../core/verify/duration.js';
import type { GlobalArgs } from './context.js';
import { sshTarget, sshTargetOptions, type SshTargetArgs } from './options.js';
import { ChecksFailedError } from '../core/errors.js';

interface StatusArgs extends GlobalArgs, SshTargetArgs {
  node?: string[];
  all: boolean;
  host?: string;
  'remote-path': string;
  timeout: string;
}

export const statusCommand: CommandModule<GlobalArgs, StatusArgs> = {
  command: 'status [node..]',
  describe: "what each node's first boot is doing: join phase, attempts, last error, joined at, cloud-init (read over SSH)",
  builder: (y) =>
    y
      .positional('node', { type: 'string', array: true, describe: 'node hostnames (default: every node)' })
      .option('all', { type: 'boolean', default: false, describe: 'every node of the inventory (the default)' })
      .options(sshTargetOptions())
      .option('host', { type: 'string', describe: "with one node: the address to SSH to (default: the node's inventory address)" })
      .option('remote-path', { type: 'string', default: STATUS_FILE, describe: 'where the join script writes its status on the node' })
      .option('timeout', { type: 'string', default: '15s', describe: 'deadline per node for connecting, logging in and reading' })
      .example('$0 status', 'every node, as a table')
      .example('$0 status pi-cluster-4 -o json', 'one node, machine-readable'),
  handler: async (argv) => {
    const out = argv.ctx.io;
    const result = await runStatus(
      {
        inventoryDir: argv.inventory,
        cwd: out.cwd,
        env: out.env,
        home: out.env['HOME'] ?? homedir(),
        nodes: argv.node ?? [],
        all: argv.all,
        remotePath: argv['remote-path'],
        ...sshTarget(argv, out, parseDuration(argv.timeout, '--timeout')),
      },
      await statusPorts(),
    );
    if (argv.output === 'json') printJson(out, result);
    else out.out(renderStatusTable(result.nodes));
    // like verify: the command ran, but not every node could tell its status
    if (result.nodes.some((n) => !n.reachable || !n.status)) throw new ChecksFailedError('some nodes did not report a status', { reported: true });
  },
};
