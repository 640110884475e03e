/**
 * `pi-image secrets init | show [--reveal NAME] | rotate <name>|--all | set wifi-psk | recipients add|list`
 * Flags → options → one call into src/app/secrets.ts → print. Values are printed only by
 * `show --reveal NAME`.
 */
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { displayPath } from '../app/inventory.js';
import { type Io, printJson } from '../app/io.js';
import {
  type SecretValueSource,
  runSecretsInit,
  runSecretsRecipientsAdd,
  runSecretsRecipientsList,
  runSecretsRotate,
  runSecretsSet,
  runSecretsShow,
  secretsPorts,
} from '../app/secrets.js';
import { InputError } from '../core/errors.js';
import { GENERATED_SECRETS, SECRET_NAMES, formatStatusTable } from '../core/secrets.js';
import type { GlobalArgs, RunContext } from './context.js';

/** An Io that can also hand over standard input (tests inject it; otherwise process.stdin). */
type IoWithStdin = Io & { readStdin?: () => Promise<string> };

/** The inventory directory as the adapters should see it (relative paths stay relative in messages). */
function inventoryDir(argv: GlobalArgs): string {
  // Relative to the process's cwd (so fs calls work) when inside it; absolute otherwise.
  return displayPath(path.resolve(argv.ctx.io.cwd, argv.inventory), process.cwd()) || '.';
}

/** The use cases' ports, with this run's cwd and standard input. */
function ports(ctx: RunContext): ReturnType<typeof secretsPorts> {
  const reader = (ctx.io as IoWithStdin).readStdin;
  // inventoryDir() is relative to the process's cwd, which loadClusterSettings uses by default
  return secretsPorts({ readStdin: reader ? () => reader() : (prompt) => readStdinDefault(ctx.io, prompt), now: () => new Date(ctx.clock.now()) });
}

function warn(io: Io, lines: readonly string[]): void {
  for (const l of lines) io.err(`warning: ${l}\n`);
}

// ─── init ──────────────────────────────────────────────────────────────────────────────────────

const initCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'init',
  describe: 'create your age key (if none) and nodes/secrets.age with freshly generated secrets',
  handler: async (argv) => {
    const r = await runSecretsInit({ inventoryDir: inventoryDir(argv), env: argv.ctx.io.env }, ports(argv.ctx));
    warn(argv.ctx.io, r.warnings);
    if (argv.output === 'json') {
      printJson(argv.ctx.io, r);
      return;
    }
    const o = argv.ctx.io.out;
    if (r.keyCreated) {
      o(`created age key ${r.keyLabel} (mode 0600)\n`);
      o('  back it up (e.g. in a password manager): without it, or another recipient, nodes/secrets.age cannot be opened\n');
    } else {
      o(`using age key ${r.keyLabel}\n`);
    }
    o(`public key: ${r.recipient}\n`);
    if (r.needsRecipientAdd) {
      o(`${r.secretsFile} exists and is not encrypted to this new key.\n`);
      o(`ask someone who can decrypt it to run:  pi-image secrets recipients add ${r.recipient}\n`);
      return;
    }
    if (r.alreadyInitialised) {
      o(`${r.secretsFile} is already initialised (version ${r.version}) and opens with this key; nothing changed\n`);
      o('  see it with `pi-image secrets show`; replace values with `pi-image secrets rotate <name>|--all`\n');
      return;
    }
    o(`created ${r.secretsFile} (version ${r.version}) with ${r.generated.join(', ')}\n`);
    o(`recipients: ${r.recipientsFile} — commit both files; the key stays outside the repository\n`);
    if (r.wifi) o('cluster.yaml configures Wi-Fi: next, set its key with `pi-image secrets set wifi-psk`\n');
  },
};

// ─── show ──────────────────────────────────────────────────────────────────────────────────────

interface ShowArgs extends GlobalArgs {
  reveal?: string;
}

const showCommand: CommandModule<GlobalArgs, ShowArgs> = {
  command: 'show',
  describe: 'list the secrets: status, length, fingerprint, version — never values (unless --reveal NAME)',
  builder: (y: Argv<GlobalArgs>) =>
    y.option('reveal', {
      type: 'string',
      describe: `print the value of ONE secret (${SECRET_NAMES.join(', ')}); it lands in your terminal/scrollback`,
    }) as Argv<ShowArgs>,
  handler: async (argv) => {
    const r = await runSecretsShow({ inventoryDir: inventoryDir(argv), env: argv.ctx.io.env, ...(argv.reveal === undefined ? {} : { reveal: argv.reveal }) }, ports(argv.ctx));
    warn(argv.ctx.io, r.warnings);
    if (r.revealed) argv.ctx.io.err(`warning: printing the value of ${r.revealed.name} (only that one); clear your terminal/scrollback afterwards\n`);
    if (argv.output === 'json') {
      const { warnings: _w, ...doc } = r;
      printJson(argv.ctx.io, doc);
      return;
    }
    if (r.revealed) {
      // Value alone on stdout, so it can be piped: pi-image secrets show --reveal agent-token | …
      argv.ctx.io.out(`${r.revealed.value}\n`);
      return;
    }
    argv.ctx.io.out(`cluster ${r.cluster} · ${r.file} · key ${r.key}\n`);
    argv.ctx.io.out(formatStatusTable(r.secrets, r.version));
  },
};

// ─── rotate ────────────────────────────────────────────────────────────────────────────────────

interface RotateArgs extends GlobalArgs {
  name?: string;
  all: boolean;
}

const rotateCommand: CommandModule<GlobalArgs, RotateArgs> = {
  command: 'rotate [name]',
  describe: `replace a generated secret with a new random value (${GENERATED_SECRETS.join(', ')}), or --all of them`,
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('name', { type: 'string', describe: 'the secret to rotate' })
      .option('all', { type: 'boolean', default: false, describe: 'rotate every generated secret' }) as unknown as Argv<RotateArgs>,
  handler: async (argv) => {
    const r = await runSecretsRotate(
      { inventoryDir: inventoryDir(argv), env: argv.ctx.io.env, all: argv.all, ...(argv.name === undefined ? {} : { name: argv.name }) },
      ports(argv.ctx),
    );
    warn(argv.ctx.io, r.warnings);
    if (argv.output === 'json') {
      printJson(argv.ctx.io, { cluster: r.cluster, rotated: r.changed, fingerprints: r.fingerprints, version: r.version, notes: r.notes });
      return;
    }
    const o = argv.ctx.io.out;
    for (const n of r.changed) {
      const f = r.fingerprints[n];
      o(`rotated ${n}: fingerprint ${f?.before ?? '-'} -> ${f?.after ?? '-'}\n`);
    }
    o(`${r.file} is now version ${r.version} (encrypted to ${r.recipients.length} recipient${r.recipients.length === 1 ? '' : 's'}); commit it\n`);
    o('\nWhat this means for a running cluster (see docs/secrets.md):\n');
    for (const n of r.changed) for (const line of r.notes[n] ?? []) o(`  ${line}\n`);
  },
};

// ─── set ───────────────────────────────────────────────────────────────────────────────────────

interface SetArgs extends GlobalArgs {
  name: string;
  value?: string[];
  fromFile?: string;
  fromEnv?: string;
}

/** Reads a value from the terminal without echo, or all of a piped stdin. */
async function readStdinDefault(io: Io, prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }
  io.err(prompt);
  return new Promise<string>((resolve, reject) => {
    let value = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      io.err('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done(); // Enter or Ctrl-D
        if (ch === '\u0003') return done(new InputError('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}


const setCommand: CommandModule<GlobalArgs, SetArgs> = {
  command: 'set <name> [value..]',
  describe: 'store a secret you provide (wifi-psk) from stdin, --from-file or --from-env — never as an argument',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('name', { type: 'string', choices: ['wifi-psk'], describe: 'the secret to set' })
      // Declared only to refuse it (and keep it out of yargs' "unknown argument" message).
      .positional('value', { type: 'string', array: true, hidden: true, describe: 'not accepted' })
      .option('from-file', { type: 'string', describe: 'read the value from this file ("-" = stdin); one final newline is dropped' })
      .option('from-env', { type: 'string', describe: 'read the value from this environment variable' })
      .conflicts('from-file', 'from-env') as unknown as Argv<SetArgs>,
  handler: async (argv) => {
    if (argv.value !== undefined && argv.value.length > 0) {
      throw new InputError('a secret value is never taken from the command line (it would stay in shell history and `ps`)', {
        hint: 'pipe it in (`pi-image secrets set wifi-psk < file`), type it at the prompt, or use --from-file FILE / --from-env VAR',
      });
    }
    const from: SecretValueSource =
      argv.fromEnv !== undefined
        ? { kind: 'env', name: argv.fromEnv }
        : argv.fromFile !== undefined && argv.fromFile !== '-'
          ? { kind: 'file', path: argv.fromFile }
          : { kind: 'stdin' };
    const r = await runSecretsSet({ inventoryDir: inventoryDir(argv), env: argv.ctx.io.env, cwd: argv.ctx.io.cwd, name: argv.name, from }, ports(argv.ctx));
    warn(argv.ctx.io, r.warnings);
    const name = r.name;
    if (argv.output === 'json') {
      printJson(argv.ctx.io, { cluster: r.cluster, name, changed: r.changed.includes(name), fingerprint: r.fingerprints[name] ?? null, version: r.version });
      return;
    }
    if (r.changed.length === 0) {
      argv.ctx.io.out(`${name} unchanged (same value); ${r.file} stays at version ${r.version}\n`);
      return;
    }
    const f = r.fingerprints[name];
    argv.ctx.io.out(`set ${name} (length ${r.length}, fingerprint ${f?.after ?? '-'}); ${r.file} is now version ${r.version}\n`);
    if (!r.wifi) argv.ctx.io.out('note: cluster.yaml has no wifi section, so no image uses it yet\n');
    for (const line of r.notes) argv.ctx.io.out(`${line}\n`);
  },
};

// ─── recipients ────────────────────────────────────────────────────────────────────────────────

interface RecipientAddArgs extends GlobalArgs {
  recipient: string;
}

const recipientsAddCommand: CommandModule<GlobalArgs, RecipientAddArgs> = {
  command: 'add <recipient>',
  describe: "add a teammate's age public key (age1…) and re-encrypt nodes/secrets.age to everyone listed",
  builder: (y: Argv<GlobalArgs>) =>
    y.positional('recipient', { type: 'string', demandOption: true, describe: 'age public key' }) as unknown as Argv<RecipientAddArgs>,
  handler: async (argv) => {
    const r = await runSecretsRecipientsAdd({ inventoryDir: inventoryDir(argv), env: argv.ctx.io.env, recipient: argv.recipient }, ports(argv.ctx));
    warn(argv.ctx.io, r.warnings);
    if (argv.output === 'json') {
      printJson(argv.ctx.io, { cluster: r.cluster, recipient: r.recipient, added: r.added, version: r.version, recipients: r.recipients });
      return;
    }
    if (!r.added) {
      argv.ctx.io.out(`already listed: ${r.recipient}\nnothing changed: ${r.file} stays at version ${r.version}\n`);
      return;
    }
    argv.ctx.io.out(
      `added ${r.recipient}\n` +
        `${r.file} re-encrypted to ${r.recipients.length} recipients (version ${r.version}); commit it and ${r.recipientsFile}\n` +
        'note: removing someone later needs a rotation too: they may have kept the old values\n',
    );
  },
};

const recipientsListCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'list',
  describe: 'list the public keys nodes/secrets.age is encrypted to',
  handler: async (argv) => {
    const { file, recipients } = await runSecretsRecipientsList({ inventoryDir: inventoryDir(argv) });
    if (argv.output === 'json') {
      printJson(argv.ctx.io, { file, recipients });
      return;
    }
    if (recipients.length === 0) argv.ctx.io.out(`no recipients in ${file}\n`);
    for (const r of recipients) argv.ctx.io.out(`${r}\n`);
  },
};

const recipientsCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'recipients <action>',
  describe: 'who can decrypt nodes/secrets.age (nodes/secrets.recipients)',
  builder: (y: Argv<GlobalArgs>) =>
    y.command(recipientsAddCommand).command(recipientsListCommand).demandCommand(1, 'recipients needs add or list'),
  handler: () => undefined,
};

// ─── secrets ───────────────────────────────────────────────────────────────────────────────────

export const secretsCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'secrets <action>',
  describe: 'cluster secrets, encrypted with age in nodes/secrets.age (init, show, rotate, set, recipients)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .command(initCommand)
      .command(showCommand)
      .command(rotateCommand)
      .command(setCommand)
      .command(recipientsCommand)
      .demandCommand(1, 'secrets needs a subcommand: init, show, rotate, set or recipients'),
  handler: () => undefined,
};
