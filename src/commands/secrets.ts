/**
 * `pi-image secrets init | show [--reveal NAME] | rotate <name>|--all | set wifi-psk | recipients add|list`
 * Thin layer over src/adapters/secrets.ts. Values are printed only by `show --reveal NAME`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { parse as parseYaml } from 'yaml';
import {
  addRecipient,
  allowToPrint,
  initSecrets,
  readRecipients,
  readSecretsStore,
  recipientsFilePath,
  rotateSecret,
  secretsFilePath,
  setSecret,
} from '../adapters/secrets.js';
import { displayPath } from '../app/inventory.js';
import { type Io, printJson } from '../app/io.js';
import { InputError, IoError } from '../core/errors.js';
import {
  GENERATED_SECRETS,
  SECRET_NAMES,
  type SecretName,
  describeStore,
  formatStatusTable,
  isSecretName,
  rotationNotes,
} from '../core/secrets.js';
import { type GlobalArgs, io } from './context.js';

/** An Io that can also hand over standard input (tests inject it; otherwise process.stdin). */
type IoWithStdin = Io & { readStdin?: () => Promise<string> };

/** The inventory directory as the adapters should see it (relative paths stay relative in messages). */
function inventoryDir(argv: GlobalArgs): string {
  // Relative to the process's cwd (so fs calls work) when inside it; absolute otherwise.
  return displayPath(path.resolve(io().cwd, argv.inventory), process.cwd()) || '.';
}

/**
 * The two facts the secrets commands need from cluster.yaml: the cluster name (it names the key
 * file) and whether Wi-Fi is configured. Read directly so the secrets commands work even while
 * other parts of the inventory are being fixed (loadInventory would refuse the whole inventory):
 * `secrets set wifi-psk` must work before the rest of cluster.yaml is finished.
 */
async function clusterInfo(dir: string): Promise<{ name: string; wifi: boolean }> {
  const file = path.join(dir, 'cluster.yaml');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new InputError(`${file} does not exist`, { hint: 'pass the inventory directory with --inventory (default: nodes)' });
    }
    throw new IoError(`cannot read ${file}: ${code ?? String(e)}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch {
    throw new InputError(`${file} is not valid YAML`, { hint: 'run `pi-image validate` for the exact line' });
  }
  const rec = (doc ?? {}) as Record<string, unknown>;
  const name = rec.name;
  if (typeof name !== 'string' || !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) {
    throw new InputError(`${file}: name is missing or not a valid cluster name`, {
      hint: 'set `name: <cluster-name>` (lower-case letters, digits, "-"); it names the key file ~/.config/pi-image/<name>.agekey',
    });
  }
  return { name, wifi: rec.wifi !== undefined && rec.wifi !== null };
}

function warn(lines: readonly string[]): void {
  for (const l of lines) io().err(`warning: ${l}\n`);
}

// ─── init ──────────────────────────────────────────────────────────────────────────────────────

const initCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'init',
  describe: 'create your age key (if none) and nodes/secrets.age with freshly generated secrets',
  handler: async (argv) => {
    const dir = inventoryDir(argv);
    const cluster = await clusterInfo(dir);
    const r = await initSecrets(dir, cluster.name, { env: io().env, now: new Date() });
    warn(r.warnings);
    if (argv.output === 'json') {
      printJson(io(), { cluster: cluster.name, ...r, secretsFile: secretsFilePath(dir) });
      return;
    }
    const o = io().out;
    if (r.keyCreated) {
      o(`created age key ${r.keyLabel} (mode 0600)\n`);
      o('  back it up (e.g. in a password manager): without it, or another recipient, nodes/secrets.age cannot be opened\n');
    } else {
      o(`using age key ${r.keyLabel}\n`);
    }
    o(`public key: ${r.recipient}\n`);
    if (r.needsRecipientAdd) {
      o(`${secretsFilePath(dir)} exists and is not encrypted to this new key.\n`);
      o(`ask someone who can decrypt it to run:  pi-image secrets recipients add ${r.recipient}\n`);
      return;
    }
    if (r.alreadyInitialised) {
      o(`${secretsFilePath(dir)} is already initialised (version ${r.version}) and opens with this key; nothing changed\n`);
      o('  see it with `pi-image secrets show`; replace values with `pi-image secrets rotate <name>|--all`\n');
      return;
    }
    o(`created ${secretsFilePath(dir)} (version ${r.version}) with ${r.generated.join(', ')}\n`);
    o(`recipients: ${recipientsFilePath(dir)} — commit both files; the key stays outside the repository\n`);
    if (cluster.wifi) o('cluster.yaml configures Wi-Fi: next, set its key with `pi-image secrets set wifi-psk`\n');
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
    const dir = inventoryDir(argv);
    const reveal = argv.reveal;
    if (reveal !== undefined && !isSecretName(reveal)) {
      throw new InputError(`--reveal: unknown secret "${reveal}"`, { hint: `one of ${SECRET_NAMES.join(', ')}` });
    }
    const cluster = await clusterInfo(dir);
    const { store, keyLabel, recipient, warnings } = await readSecretsStore(dir, cluster.name, { env: io().env });
    warn(warnings);
    const rows = describeStore(store, { wifiConfigured: cluster.wifi });
    let value: string | undefined;
    if (reveal !== undefined) {
      value = store.secrets[reveal]?.value;
      if (value === undefined) {
        throw new InputError(`${reveal} is not set in ${secretsFilePath(dir)}`, {
          hint: reveal === 'wifi-psk' ? 'set it with `pi-image secrets set wifi-psk`' : `generate it with \`pi-image secrets rotate ${reveal}\``,
        });
      }
      io().err(`warning: printing the value of ${reveal} (only that one); clear your terminal/scrollback afterwards\n`);
      allowToPrint(value);
    }
    if (argv.output === 'json') {
      const recipients = await readRecipients(dir);
      printJson(io(), {
        cluster: cluster.name,
        file: secretsFilePath(dir),
        version: store.version,
        createdAt: store.createdAt,
        updatedAt: store.updatedAt,
        key: keyLabel,
        publicKey: recipient,
        recipients,
        secrets: rows,
        ...(reveal !== undefined ? { revealed: { name: reveal, value } } : {}),
      });
      return;
    }
    if (reveal !== undefined) {
      // Value alone on stdout, so it can be piped: pi-image secrets show --reveal agent-token | …
      io().out(`${value}\n`);
      return;
    }
    io().out(`cluster ${cluster.name} · ${secretsFilePath(dir)} · key ${keyLabel}\n`);
    io().out(formatStatusTable(rows, store.version));
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
    const dir = inventoryDir(argv);
    if (argv.all === (argv.name !== undefined)) {
      throw new InputError('rotate needs exactly one of: a secret name, or --all', {
        hint: `pi-image secrets rotate ${GENERATED_SECRETS[0]}   or   pi-image secrets rotate --all`,
      });
    }
    const name = argv.name;
    if (name !== undefined && !isSecretName(name)) {
      throw new InputError(`unknown secret "${name}"`, { hint: `one of ${GENERATED_SECRETS.join(', ')}` });
    }
    const cluster = await clusterInfo(dir);
    const r = await rotateSecret(dir, cluster.name, argv.all ? 'all' : (name as SecretName), { env: io().env, now: new Date() });
    warn(r.warnings);
    const notes = Object.fromEntries(r.changed.map((n) => [n, rotationNotes(n)]));
    if (argv.output === 'json') {
      printJson(io(), { cluster: cluster.name, rotated: r.changed, fingerprints: r.fingerprints, version: r.version, notes });
      return;
    }
    const o = io().out;
    for (const n of r.changed) {
      const f = r.fingerprints[n];
      o(`rotated ${n}: fingerprint ${f?.before ?? '-'} -> ${f?.after ?? '-'}\n`);
    }
    o(`${secretsFilePath(dir)} is now version ${r.version} (encrypted to ${r.recipients.length} recipient${r.recipients.length === 1 ? '' : 's'}); commit it\n`);
    o('\nWhat this means for a running cluster (see docs/secrets.md):\n');
    for (const n of r.changed) for (const line of notes[n] ?? []) o(`  ${line}\n`);
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
async function readStdinDefault(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }
  io().err(prompt);
  return new Promise<string>((resolve, reject) => {
    let value = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      io().err('\n');
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

/** Drops ONE trailing newline (files and `echo` add one); keeps everything else as given. */
function stripFinalNewline(s: string): string {
  return s.replace(/\r?\n$/, '');
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
    const dir = inventoryDir(argv);
    if (argv.value !== undefined && argv.value.length > 0) {
      throw new InputError('a secret value is never taken from the command line (it would stay in shell history and `ps`)', {
        hint: 'pipe it in (`pi-image secrets set wifi-psk < file`), type it at the prompt, or use --from-file FILE / --from-env VAR',
      });
    }
    const name = argv.name;
    if (!isSecretName(name)) throw new InputError(`unknown secret "${name}"`, { hint: 'only wifi-psk can be set' });
    const cluster = await clusterInfo(dir);
    let value: string;
    if (argv.fromEnv !== undefined) {
      const v = io().env[argv.fromEnv];
      if (v === undefined || v === '') {
        throw new InputError(`--from-env: environment variable ${argv.fromEnv} is not set or empty`, {
          hint: `export ${argv.fromEnv} first, or use --from-file / stdin`,
        });
      }
      value = v;
    } else if (argv.fromFile !== undefined && argv.fromFile !== '-') {
      const file = path.resolve(io().cwd, argv.fromFile);
      try {
        value = stripFinalNewline(await readFile(file, 'utf8'));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new InputError(`--from-file: cannot read ${argv.fromFile}: ${code ?? String(e)}`);
      }
    } else {
      const reader = (io() as IoWithStdin).readStdin ?? (() => readStdinDefault(`${name}: `));
      value = stripFinalNewline(await reader());
    }
    if (value === '') throw new InputError(`no value for ${name} was given (empty input)`);
    const r = await setSecret(dir, cluster.name, name, value, { env: io().env, now: new Date() });
    warn(r.warnings);
    if (argv.output === 'json') {
      printJson(io(), { cluster: cluster.name, name, changed: r.changed.includes(name), fingerprint: r.fingerprints[name] ?? null, version: r.version });
      return;
    }
    if (r.changed.length === 0) {
      io().out(`${name} unchanged (same value); ${secretsFilePath(dir)} stays at version ${r.version}\n`);
      return;
    }
    const f = r.fingerprints[name];
    io().out(`set ${name} (length ${value.length}, fingerprint ${f?.after ?? '-'}); ${secretsFilePath(dir)} is now version ${r.version}\n`);
    if (!cluster.wifi) io().out('note: cluster.yaml has no wifi section, so no image uses it yet\n');
    for (const line of rotationNotes(name)) io().out(`${line}\n`);
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
    const dir = inventoryDir(argv);
    const cluster = await clusterInfo(dir);
    const r = await addRecipient(dir, cluster.name, argv.recipient, { env: io().env, now: new Date() });
    warn(r.warnings);
    if (argv.output === 'json') {
      printJson(io(), { cluster: cluster.name, recipient: argv.recipient, added: r.added, version: r.version, recipients: r.recipients });
      return;
    }
    io().out(
      `${r.added ? 'added' : 'already listed:'} ${argv.recipient}\n` +
        `${secretsFilePath(dir)} re-encrypted to ${r.recipients.length} recipients (version ${r.version}); commit it and ${recipientsFilePath(dir)}\n` +
        'note: removing someone later needs a rotation too: they may have kept the old values\n',
    );
  },
};

const recipientsListCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'list',
  describe: 'list the public keys nodes/secrets.age is encrypted to',
  handler: async (argv) => {
    const dir = inventoryDir(argv);
    const recipients = await readRecipients(dir);
    if (argv.output === 'json') {
      printJson(io(), { file: recipientsFilePath(dir), recipients });
      return;
    }
    if (recipients.length === 0) io().out(`no recipients in ${recipientsFilePath(dir)}\n`);
    for (const r of recipients) io().out(`${r}\n`);
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
