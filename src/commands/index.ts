/**
 * Every pi-image command, in the order `--help` lists them (the operator's day, start to end).
 *
 * Commands load lazily: start-up imports none of the command modules. `--help` shows the
 * `command` and `describe` given here; running (or completing) a command imports its module and
 * that module's dependencies only (`pi-image validate` never loads the Kubernetes client, ssh2 or
 * the image code). `command` and `describe` repeat the module's own; tests/unit/cli.test.ts keeps
 * the two in step.
 */
import type { CommandModule } from 'yargs';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCommand = CommandModule<any, any>;

export interface CommandEntry {
  /** the first word: what the user types */
  name: string;
  /** yargs command string and summary, as in the module */
  command: string;
  describe: string;
  load: () => Promise<AnyCommand>;
}

export const commandEntries: readonly CommandEntry[] = [
  {
    name: 'init',
    command: 'init [dir]',
    describe: 'scaffold a new inventory (cluster.yaml + one file per node): asks on a terminal, takes flags otherwise',
    load: async () => (await import('./init.js')).initCommand,
  },
  {
    name: 'validate',
    command: 'validate',
    describe: 'check the inventory (YAML syntax, schema, cross-field rules) and report every problem',
    load: async () => (await import('./validate.js')).validateCommand,
  },
  {
    name: 'secrets',
    command: 'secrets <action>',
    describe: 'cluster secrets, encrypted with age in nodes/secrets.age (init, show, rotate, set, recipients)',
    load: async () => (await import('./secrets.js')).secretsCommand,
  },
  {
    name: 'render',
    command: 'render [nodes..]',
    describe: 'render the cloud-init seed and k3s join files of nodes into build/<node>/ for review',
    load: async () => (await import('./render.js')).renderCommand,
  },
  {
    name: 'images',
    command: 'images <command>',
    describe: 'manage cached base images (list, fetch, import, verify)',
    load: async () => (await import('./images.js')).imagesCommand,
  },
  {
    name: 'build',
    command: 'build [nodes..]',
    describe: 'bake a ready-to-flash image per node (no root needed): build/images/<node>.img + <node>.json',
    load: async () => (await import('./build.js')).buildCommand,
  },
  {
    name: 'diff',
    command: 'diff [node]',
    describe: 'what reflashing would change on a node (rendered now vs its last build, secrets masked), or on the cluster (kubectl diff)',
    load: async () => (await import('./diff.js')).diffCommand,
  },
  {
    name: 'boot-test',
    command: 'boot-test <node>',
    describe: 'boot a node image under qemu-system-aarch64 and check over SSH that it provisioned itself',
    load: async () => (await import('./boot-test.js')).bootTestCommand,
  },
  {
    name: 'flash',
    command: 'flash [node]',
    describe: 'write a node image to an SD card or USB drive, then read it back and verify it',
    load: async () => (await import('./flash.js')).flashCommand,
  },
  {
    name: 'netboot',
    command: 'netboot [node]',
    describe: 'export node images for network boot: TFTP boot folders, NFS roots, dnsmasq + exports snippets',
    load: async () => (await import('./netboot.js')).netbootCommand,
  },
  {
    name: 'kubeconfig',
    command: 'kubeconfig',
    describe: "fetch the cluster's admin kubeconfig from the first server over SSH (host key pinned on first use)",
    load: async () => (await import('./kubeconfig.js')).kubeconfigCommand,
  },
  {
    name: 'status',
    command: 'status [node..]',
    describe: "what each node's first boot is doing: join phase, attempts, last error, joined at, cloud-init (read over SSH)",
    load: async () => (await import('./status.js')).statusCommand,
  },
  {
    name: 'verify',
    command: 'verify',
    describe: 'check the running cluster against the inventory (nodes registered, Ready, roles, k3s version, arch, labels, taints, baseline manifests)',
    load: async () => (await import('./verify.js')).verifyCommand,
  },
  {
    name: 'rebuild',
    command: 'rebuild <node>',
    describe: 'timed rebuild drill: cordon + drain, build, flash (or netboot export), wait until the node is back and passes its checks, uncordon; writes evidence',
    load: async () => (await import('./rebuild.js')).rebuildCommand,
  },
  {
    name: 'completion',
    command: 'completion [shell]',
    describe: 'print the shell completion script (bash or zsh) for commands, options and values',
    load: async () => (await import('./completion.js')).completionCommand,
  },
];

/** Global options that take a value: a command name never follows them directly. */
const GLOBAL_WITH_VALUE = new Set(['-i', '--inventory', '-o', '--output']);

/** The command a command line names (the first word that is not an option or an option's value). */
export function invokedCommand(argv: readonly string[]): CommandEntry | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return undefined;
    if (GLOBAL_WITH_VALUE.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    return commandEntries.find((e) => e.name === a);
  }
  return undefined;
}

/**
 * The command modules for one run: the invoked command's real module, a summary-only stand-in for
 * every other one (enough for `--help` and for yargs to recognise the name).
 */
export async function commandsFor(argv: readonly string[]): Promise<AnyCommand[]> {
  const invoked = invokedCommand(argv);
  return Promise.all(
    commandEntries.map(async (e) =>
      e === invoked ? e.load() : { command: e.command, describe: e.describe, builder: {}, handler: () => undefined },
    ),
  );
}

/** Every command module, loaded (tests that walk all commands). */
export async function loadAllCommands(): Promise<AnyCommand[]> {
  return Promise.all(commandEntries.map((e) => e.load()));
}
