#!/usr/bin/env node
/**
 * pi-image command-line entry point. The ONE place where errors are caught and mapped to exit codes:
 *   0 ok · 1 a check failed (verify, boot-test, diff found changes, images verify, a failed drill) · 2 bad input · 3 environment
 *   (missing tool, key, disk space) · 4 I/O or device · 5 cluster · 70 internal (printed with a stack)
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs, { type Argv, type CommandModule, type MiddlewareFunction } from 'yargs';
import { type Io, processIo } from './app/io.js';
import { toolVersion } from './app/version.js';
import { SecretValues, withSecretValues } from './adapters/secret-values.js';
import { withTrace } from './adapters/trace.js';
import { redact } from './core/redact.js';
import { installInterruptHandlers } from './adapters/terminal.js';
import { EXIT_CODES, IoError, PiImageError } from './core/errors.js';
import { errorJson, wantsJson } from './core/error-json.js';
import { commandsFor } from './commands/index.js';
import type { RunContext } from './commands/context.js';
import { lastValueWins } from './core/last-value.js';
import { systemClock } from './adapters/clock.js';
import type { Clock } from './core/clock.js';
import { DEFAULT_INVENTORY_DIR } from './core/defaults.js';
import { completeWords } from './commands/completion.js';
import { COMPLETION_KEY } from './core/completion.js';

/** The words after --get-yargs-completions (program name first), for completion; [] otherwise. */
function completionWords(argv: readonly string[]): string[] {
  const at = argv.indexOf(`--${COMPLETION_KEY}`);
  return at === -1 ? [] : argv.slice(at + 1);
}

/** Marks a yargs usage problem (unknown command, missing argument) so it maps to exit code 2. */
class UsageError extends PiImageError {
  constructor(message: string) {
    super('input', message, { hint: 'run `pi-image --help` or `pi-image <command> --help`' });
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'it is a directory',
  ELOOP: 'too many levels of symbolic links (a loop)',
  EEXIST: 'it already exists',
  ENOTEMPTY: 'the directory is not empty',
  EMFILE: 'too many open files',
  EIO: 'input/output error (a failing disk or card?)',
  EXDEV: 'it is on another file system',
  EBUSY: 'the device or file is busy',
};

/**
 * A file-system error that escaped the adapters (it carries an errno code and usually a path) is a
 * problem of the machine or of a path the user gave, not a bug: an I/O error (exit 4) naming the path.
 */
function systemError(error: unknown): PiImageError | undefined {
  const e = error as (NodeJS.ErrnoException & { dest?: string }) | undefined;
  if (!(e instanceof Error) || typeof e.code !== 'string' || !/^E[A-Z0-9]+$/.test(e.code) || typeof e.syscall !== 'string') return undefined;
  const what = ERRNO_TEXT[e.code] ?? e.code;
  const path = e.path === undefined ? '' : ` ${e.path}${e.dest === undefined ? '' : ` → ${e.dest}`}`;
  const hint =
    e.code === 'ENOSPC' || e.code === 'EDQUOT'
      ? 'free some space there or choose another directory (--build-dir; --out for render and kubeconfig), then run the command again'
      : e.code === 'EROFS' || e.code === 'EACCES' || e.code === 'EPERM'
        ? 'choose a writable directory (--build-dir, --out, --root) or fix its permissions'
        : 'check the path and run the command again';
  return new IoError(`cannot ${e.syscall}${path}: ${what} (${e.code})`, { hint, cause: e });
}

/** The chain of `cause`s under an error (tool output, errno), printed with -v. */
function causes(error: unknown): string[] {
  const out: string[] = [];
  let cur = error instanceof Error ? error.cause : undefined;
  while (cur !== undefined && out.length < 5) {
    out.push(cur instanceof Error ? `${cur.name}: ${cur.message}` : String(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return out;
}

/**
 * Prints an error and returns its exit code. Text on stderr; with `-o json` also one JSON document
 * `{ "error": { category, exitCode, message, details, hint } }` on stdout (docs/cli.md). `-v` adds
 * the chain of causes (the failing tool's own message, the errno).
 */
function report(io: Io, thrown: unknown, opts: { json: boolean; verbose: boolean }): number {
  const error = systemError(thrown) ?? thrown;
  // a command that printed its report (verify, diff, validate …) only sets the exit code
  if (error instanceof PiImageError && error.reported) return error.exitCode;
  const because = opts.verbose ? causes(error) : [];
  if (opts.json) {
    const doc = errorJson(error);
    io.out(`${JSON.stringify(because.length ? { error: { ...doc.error, causes: because } } : doc, null, 2)}\n`);
  }
  if (error instanceof PiImageError) {
    io.err(`error: ${error.message}\n`);
    for (const line of error.details) io.err(`  ${line}\n`);
    for (const line of because) io.err(`  caused by: ${line}\n`);
    if (error.hint) io.err(`hint: ${error.hint}\n`);
    if (error.category === 'internal' && error.stack) io.err(`${error.stack}\n`);
    return error.exitCode;
  }
  const e = error instanceof Error ? error : new Error(String(error));
  io.err(`internal error: ${e.message}\n${e.stack ?? ''}\n`);
  io.err('hint: this is a bug in pi-image; please report it with the output above\n');
  return EXIT_CODES.internal;
}

/**
 * The yargs parser of pi-image with its global options, the last-value-wins middleware and the
 * given commands. Exported for tests that inspect parsing (tests/unit/cli-repeated-flags.test.ts).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function createParser(argv: readonly string[], cmds: CommandModule<any, any>[]): Argv {
  return yargs([...argv])
    .scriptName('pi-image')
    .usage('$0 <command> [options]\n\nTurn a cluster inventory into self-provisioning Raspberry Pi OS images for k3s.')
    .option('inventory', {
      alias: 'i',
      type: 'string',
      default: DEFAULT_INVENTORY_DIR,
      describe: 'inventory directory (cluster.yaml + one <hostname>.yaml per node)',
      global: true,
    })
    .option('output', {
      alias: 'o',
      choices: ['text', 'json'] as const,
      default: 'text' as const,
      describe: 'output format',
      global: true,
    })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'trace on stderr every program run, API request, SSH command, download and file written (secrets masked), progress as plain lines, and the causes of an error', global: true })
    // last value wins for every option of every command (src/core/last-value.ts)
    .middleware(lastValueWins as unknown as MiddlewareFunction, true)
    .command(cmds)
    .demandCommand(1, 'pi-image needs a command')
    .strict()
    .recommendCommands()
    .version(toolVersion())
    .alias('version', 'V')
    .help()
    .alias('help', 'h')
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((msg, err) => {
      // yargs calls this for usage problems (msg set; err set when a .check() threw) and for errors
      // thrown by command handlers (msg null). Only the latter may be internal errors.
      if (err instanceof PiImageError || (err && !msg)) throw err;
      throw new UsageError(msg ?? String(err));
    }) as unknown as Argv;
}

/** Runs the CLI with the given arguments; resolves to the exit code. Never calls process.exit. */
export async function runCli(argv: readonly string[], rawIo: Io = processIo(), clock: Clock = systemClock): Promise<number> {
  // Last line of defence: any secret value this run decrypted is masked in everything it prints.
  const secrets = new SecretValues();
  const mask = (t: string) => {
    const values = secrets.values();
    return values.length ? redact(t, values) : t;
  };
  // with -o json a run prints one document: a command that printed its report before failing keeps
  // it as the document (its outcome is inside), and the error goes to stderr only
  let wroteStdout = false;
  const verbose = argv.some((a) => a === '-v' || a === '--verbose' || /^-[a-zA-Z]*v[a-zA-Z]*$/.test(a));
  const io: Io = {
    ...rawIo,
    // with -v, progress comes as plain lines, so the trace lines do not tear a redrawn bar
    isTTY: rawIo.isTTY && !verbose,
    out: (t) => {
      wroteStdout = true;
      rawIo.out(mask(t));
    },
    err: (t) => rawIo.err(mask(t)),
  };
  const ctx: RunContext = { io, clock };
  let exitCode: number;
  const parser = createParser(argv, await commandsFor(completionWords(argv).length ? completionWords(argv).slice(1) : argv))
    // answers `--get-yargs-completions` for the scripts of `pi-image completion` (hidden command)
    .completion('__complete', false, completeWords(io.cwd, completionWords(argv)));

  kubectlStyleExamples(parser);
  try {
    let printed = '';
    // no arguments at all: the help, as kubectl and git do (exit 0); the run context reaches every handler as argv.ctx
    const parse = () =>
      parser.parseAsync(argv.length === 0 ? ['--help'] : [...argv], { ctx }, (_err, _argv, output) => {
        printed = output;
      });
    await withSecretValues(secrets, () => (verbose ? withTrace((line) => io.err(line), parse) : parse()));
    if (printed) io.out(printed.endsWith('\n') ? printed : `${printed}\n`);
    exitCode = EXIT_CODES.ok;
  } catch (error) {
    exitCode = report(io, error, { json: wantsJson(argv) && !wroteStdout, verbose });
  }
  rawIo.close?.();
  return exitCode;
}

/**
 * Help examples as kubectl prints them: the description as a `# comment` line, the command on a
 * line of its own. yargs puts them side by side in two columns, the command column at most half the
 * width, which wraps long commands in the middle (and breaks copy-paste). An example without a
 * description takes the whole width in yargs, so each example becomes two of those.
 */
function kubectlStyleExamples(parser: Argv): void {
  const example = parser.example.bind(parser) as (cmd: string, description: string) => Argv;
  (parser as unknown as { example: (cmd: string, description?: string) => Argv }).example = (cmd, description) => {
    if (description) example(`# ${description}`, '');
    return example(cmd, '');
  };
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  installInterruptHandlers();
  runCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
