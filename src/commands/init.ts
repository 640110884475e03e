import { isAbsolute, join } from 'node:path';
import type { CommandModule } from 'yargs';
import { printJson } from '../app/io.js';
import { type InitAnswers, initInventory } from '../app/init.js';
import { formatDiagnostic } from '../core/inventory/diagnostics.js';
import type { GlobalArgs } from './context.js';

interface InitArgs extends GlobalArgs {
  dir?: string;
  'cluster-name'?: string;
  servers?: number;
  agents?: number;
  prefix?: string;
  cidr?: string;
  dhcp?: boolean;
  gateway?: string;
  dns?: string[];
  'first-ip'?: string;
  endpoint?: string;
  'ssh-key': string[];
  user?: string;
  board?: 'pi4' | 'pi5';
  boot?: 'sd' | 'usb';
  'k3s-version'?: string;
  timezone?: string;
  yes: boolean;
}

export const initCommand: CommandModule<GlobalArgs, InitArgs> = {
  command: 'init [dir]',
  describe: 'scaffold a new inventory (cluster.yaml + one file per node): asks on a terminal, takes flags otherwise',
  builder: (y) =>
    y
      .positional('dir', { type: 'string', describe: 'directory to create (default: --inventory, i.e. nodes/); must not hold an inventory yet' })
      .option('cluster-name', { type: 'string', describe: 'cluster name (default pi-cluster)' })
      .option('servers', { type: 'number', describe: 'control-plane nodes: 1, 3 or 5 (default 1)' })
      .option('agents', { type: 'number', describe: 'worker nodes (default 2)' })
      .option('prefix', { type: 'string', describe: 'node names are <prefix>-1, <prefix>-2, … (default: the cluster name)' })
      .option('cidr', { type: 'string', describe: 'node network for static addresses (default 10.0.0.0/24)' })
      .option('dhcp', { type: 'boolean', describe: 'nodes take their addresses from DHCP (needs --endpoint)' })
      .option('gateway', { type: 'string', describe: 'default gateway (default: the first address of --cidr)' })
      .option('dns', { type: 'string', array: true, describe: 'DNS server, repeatable (default: the gateway)' })
      .option('first-ip', { type: 'string', describe: 'address of the first node; the others follow (default: the 11th address of --cidr)' })
      .option('endpoint', { type: 'string', describe: 'k3s.endpoint: DNS name or VIP the nodes join (needed with --dhcp)' })
      .option('ssh-key', { type: 'string', array: true, default: [], describe: 'public key file for the admin user, repeatable (default: a placeholder validate warns about)' })
      .option('user', { type: 'string', describe: 'admin user on every node (default pi-admin)' })
      .option('board', { choices: ['pi4', 'pi5'] as const, describe: 'board of every node (default pi5)' })
      .option('boot', { choices: ['sd', 'usb'] as const, describe: 'boot medium of every node (default sd)' })
      .option('k3s-version', { type: 'string', describe: 'pinned k3s release' })
      .option('timezone', { type: 'string', describe: 'IANA timezone (default UTC)' })
      .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'ask nothing, even on a terminal: flags and defaults only' })
      .example('$0 init', 'answer a few questions on a terminal, write nodes/')
      .example('$0 init site-b --servers 3 --agents 4 --cidr 192.168.50.0/24 --ssh-key ~/.ssh/ops.pub', 'no questions: flags and defaults')
      .example('$0 init lab --dhcp --endpoint k3s.lab.example --yes', 'DHCP network, defaults for the rest'),
  handler: async (argv) => {
    const out = argv.ctx.io;
    const target = argv.dir ?? argv.inventory;
    const dir = isAbsolute(target) ? target : join(out.cwd, target);
    const given: InitAnswers = {};
    if (argv['cluster-name'] !== undefined) given.clusterName = argv['cluster-name'];
    if (argv.servers !== undefined) given.servers = argv.servers;
    if (argv.agents !== undefined) given.agents = argv.agents;
    if (argv.prefix !== undefined) given.prefix = argv.prefix;
    if (argv.cidr !== undefined) given.cidr = argv.cidr;
    if (argv.dhcp !== undefined) given.dhcp = argv.dhcp;
    if (argv.gateway !== undefined) given.gateway = argv.gateway;
    if (argv.dns !== undefined) given.dns = argv.dns;
    if (argv['first-ip'] !== undefined) given.firstIp = argv['first-ip'];
    if (argv.endpoint !== undefined) given.endpoint = argv.endpoint;
    if (argv.user !== undefined) given.adminUser = argv.user;
    if (argv.board !== undefined) given.board = argv.board;
    if (argv.boot !== undefined) given.boot = argv.boot;
    if (argv['k3s-version'] !== undefined) given.k3sVersion = argv['k3s-version'];
    if (argv.timezone !== undefined) given.timezone = argv.timezone;
    const interactive = !argv.yes && argv.output !== 'json' ? out.prompt : undefined;
    const result = await initInventory({
      dir,
      cwd: out.cwd,
      env: out.env,
      given,
      sshKeyFiles: argv['ssh-key'],
      ...(interactive ? { prompt: interactive, say: (t: string) => out.err(t) } : {}),
    });
    const { validation, scaffold } = result;
    if (argv.output === 'json') {
      printJson(out, {
        dir: result.dir,
        files: result.files,
        nodes: scaffold.nodes,
        placeholderKey: scaffold.placeholderKey,
        valid: validation.errors.length === 0,
        errors: validation.errors,
        warnings: validation.warnings,
      });
      return;
    }
    out.out(`created ${result.dir}/ with ${result.files.join(', ')}\n`);
    for (const n of scaffold.nodes) out.out(`  ${n.hostname.padEnd(20)} ${n.role.padEnd(7)} ${n.ip}\n`);
    for (const d of validation.errors) out.err(`error: ${formatDiagnostic(d)}\n`);
    for (const d of validation.warnings) out.err(`warning: ${formatDiagnostic(d)}\n`);
    const inv = result.dir === 'nodes' ? '' : ` -i ${result.dir}`;
    out.out(
      scaffold.placeholderKey
        ? `next: put your SSH public key in ${result.dir}/cluster.yaml (admin.sshKeys), then \`pi-image validate${inv}\` and \`pi-image secrets init${inv}\`\n`
        : `next: \`pi-image secrets init${inv}\`, then \`pi-image build${inv} --all\`\n`,
    );
  },
};
