import { homedir } from 'node:os';
import type { CommandModule } from 'yargs';
import { printJson } from '../app/io.js';
import { DEFAULT_REMOTE_KUBECONFIG, kubeconfigPorts, runKubeconfig } from '../app/kubeconfig.js';
import { parseDuration } from '../core/verify/duration.js';
import type { GlobalArgs } from './context.js';
import { sshTarget, sshTargetOptions, type SshTargetArgs } from './options.js';

interface KubeconfigArgs extends GlobalArgs, SshTargetArgs {
  merge: boolean;
  force: boolean;
  context?: string;
  out?: string;
  host?: string;
  'remote-path': string;
  timeout: string;
  switch: boolean;
}

export const kubeconfigCommand: CommandModule<GlobalArgs, KubeconfigArgs> = {
  command: 'kubeconfig',
  describe: "fetch the cluster's admin kubeconfig from the first server over SSH (host key pinned on first use)",
  builder: (y) =>
    y
      .option('merge', { type: 'boolean', default: false, describe: 'merge into ~/.kube/config (or the first file of $KUBECONFIG, or --out) as a named context; the old file is kept as <file>.bak' })
      .option('force', { type: 'boolean', default: false, describe: 'with --merge: replace a same-named context or cluster that points at another cluster' })
      .option('context', { type: 'string', describe: 'name for the cluster/user/context (default: the cluster name)' })
      .option('out', { type: 'string', describe: 'file to write (default: ~/.kube/<name>.yaml; with --merge: the file to merge into)' })
      .option('switch', { type: 'boolean', default: true, describe: 'with --merge: make the new context current (--no-switch keeps the current one)' })
      .options(sshTargetOptions())
      .option('host', { type: 'string', describe: "server address to SSH to (default: the first server's IP from the inventory)" })
      .option('remote-path', { type: 'string', default: DEFAULT_REMOTE_KUBECONFIG, describe: 'where k3s wrote its kubeconfig on the server' })
      .option('timeout', { type: 'string', default: '30s', describe: 'deadline for connecting, logging in and reading the file' })
      .example('$0 kubeconfig --merge', 'add the cluster as a context to ~/.kube/config')
      .example('$0 kubeconfig --out pi.yaml', 'write a separate kubeconfig (mode 0600)'),
  handler: async (argv) => {
    const out = argv.ctx.io;
    const result = await runKubeconfig(
      {
        inventoryDir: argv.inventory,
        cwd: out.cwd,
        env: out.env,
        home: out.env['HOME'] ?? homedir(),
        merge: argv.merge,
        force: argv.force,
        switchContext: argv.switch,
        remotePath: argv['remote-path'],
        ...sshTarget(argv, out, parseDuration(argv.timeout, '--timeout')),
        ...(argv.context ? { context: argv.context } : {}),
        ...(argv.out ? { out: argv.out } : {}),
      },
      await kubeconfigPorts((line) => out.err(line)),
    );
    if (argv.output === 'json') {
      printJson(out, result);
    } else {
      out.err(`${result.merged ? 'merged into' : 'wrote'} ${result.file} (mode 0600), server ${result.server}${result.backup ? `; the previous file is in ${result.backup}` : ''}\n`);
      out.out(`${result.context}\n`);
    }
  },
};
