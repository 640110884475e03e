/**
 * The one place pi-image starts other programs (execa wrapper).
 *
 * - A missing program becomes an EnvironmentError ("`mcopy` is not installed") whose hint names the
 *   Debian package to install (see TOOL_PACKAGES).
 * - A non-zero exit becomes an IoError naming the program and its trimmed stderr. Arguments are
 *   NOT put into messages (they may hold paths with secrets or tokens); callers that know stderr may
 *   echo a secret pass `redact: [secret, …]` and every occurrence is replaced by `***`.
 *
 * Usage:
 *   const { stdout } = await run('sfdisk', ['--json', image]);
 *   const bytes = (await runBuffer('mtype', ['-i', `${img}@@${off}`, '::/config.txt'])).stdout;
 *   const child = spawnStream('xz', ['-dc']);   // streaming stdin → stdout, await child.done
 */
import { execa, type ResultPromise } from 'execa';
import type { Readable, Writable } from 'node:stream';
import { EnvironmentError, IoError } from '../core/errors.js';

/** Program → Debian package that provides it (used for install hints). */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  mcopy: 'mtools',
  mdir: 'mtools',
  mmd: 'mtools',
  mtype: 'mtools',
  mdel: 'mtools',
  mlabel: 'mtools',
  mattrib: 'mtools',
  debugfs: 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  'fsck.ext4': 'e2fsprogs',
  'mkfs.ext4': 'e2fsprogs',
  mke2fs: 'e2fsprogs',
  dumpe2fs: 'e2fsprogs',
  resize2fs: 'e2fsprogs',
  'mkfs.vfat': 'dosfstools',
  'mkfs.fat': 'dosfstools',
  'fsck.vfat': 'dosfstools',
  'fsck.fat': 'dosfstools',
  sfdisk: 'fdisk',
  fdisk: 'fdisk',
  lsblk: 'util-linux',
  blockdev: 'util-linux',
  xz: 'xz-utils',
  zstd: 'zstd',
  gzip: 'gzip',
  cp: 'coreutils',
  dd: 'coreutils',
  truncate: 'coreutils',
  sha256sum: 'coreutils',
  'qemu-system-aarch64': 'qemu-system-arm',
  'qemu-img': 'qemu-utils',
  dnsmasq: 'dnsmasq',
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
  age: 'age',
  mmdebstrap: 'mmdebstrap',
  debootstrap: 'debootstrap',
};

/** `apt-get install <pkg>` for a known program, a generic hint otherwise. */
export function installHint(tool: string): string {
  const pkg = TOOL_PACKAGES[tool];
  return pkg === undefined
    ? `install \`${tool}\` and make sure it is on PATH`
    : `apt-get install ${pkg}`;
}

export interface RunOptions {
  /** data written to the program's stdin */
  input?: string | Uint8Array;
  /** extra environment variables (merged over process.env) */
  env?: Record<string, string>;
  cwd?: string;
  /** strings replaced by `***` in error messages (tokens, passwords, secret paths) */
  redact?: readonly string[];
  /** kill the program after this many milliseconds (IoError "timed out") */
  timeoutMs?: number;
  /** exit codes that count as success (default [0]); e.g. e2fsck uses 1 for "fixed" */
  okExitCodes?: readonly number[];
  /** short description used in messages instead of the bare program name, e.g. "writing the boot partition" */
  what?: string;
}

export interface RunResult<T extends string | Uint8Array = string> {
  stdout: T;
  stderr: string;
  exitCode: number;
}

/** Run a program to completion and return its output as text. */
export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult<string>> {
  const r = await exec(cmd, args, opts, 'utf8');
  return { stdout: String(r.stdout), stderr: r.stderr, exitCode: r.exitCode };
}

/** Like `run`, but stdout is returned as bytes (file contents from mtype/debugfs cat). */
export async function runBuffer(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult<Uint8Array>> {
  const r = await exec(cmd, args, opts, 'buffer');
  const out = r.stdout;
  return { stdout: out instanceof Uint8Array ? out : new Uint8Array(), stderr: r.stderr, exitCode: r.exitCode };
}

/** True when `cmd` can be started (looks it up on PATH). */
export async function hasTool(cmd: string): Promise<boolean> {
  const r = await execa('sh', ['-c', 'command -v "$1" >/dev/null 2>&1', 'sh', cmd], { reject: false });
  return r.exitCode === 0;
}

/** Throws the EnvironmentError for the first program in `cmds` that is not installed. */
export async function requireTools(cmds: readonly string[]): Promise<void> {
  for (const cmd of cmds) {
    if (!(await hasTool(cmd))) throw missingTool(cmd);
  }
}

export interface StreamingProcess {
  stdin: Writable;
  stdout: Readable;
  /** resolves when the program exited successfully; rejects with EnvironmentError / IoError */
  done: Promise<void>;
  /** stop the program (e.g. when the consumer failed) */
  kill(): void;
}

/**
 * Start a filter program (e.g. `xz -dc`) with piped stdin/stdout for streaming; stderr is collected
 * for the error message. Always await `done` (or call `kill`) so no process is left behind.
 */
export function spawnStream(cmd: string, args: readonly string[], opts: RunOptions = {}): StreamingProcess {
  const child: ResultPromise<{ stdin: 'pipe'; stdout: 'pipe'; stderr: 'pipe'; buffer: { stdout: false }; reject: false }> =
    execa(cmd, [...args], {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: { stdout: false },
      reject: false,
      env: opts.env,
      cwd: opts.cwd,
      ...(opts.timeoutMs === undefined ? {} : { timeout: opts.timeoutMs }),
    });
  const done = child.then((r) => {
    checkResult(cmd, opts, { failed: r.failed, code: r.code, exitCode: r.exitCode, stderr: String(r.stderr ?? ''), timedOut: r.timedOut, isTerminated: r.isTerminated, signal: r.signal });
  });
  // avoid unhandled EPIPE when the program dies early; the real error comes from `done`
  child.stdin.on('error', () => undefined);
  return {
    stdin: child.stdin,
    stdout: child.stdout,
    done,
    kill: () => {
      child.kill();
    },
  };
}

// ── internals ────────────────────────────────────────────────────────────────────────────────────

interface Outcome {
  failed: boolean;
  code: string | undefined;
  exitCode: number | undefined;
  stderr: string;
  timedOut: boolean;
  isTerminated: boolean;
  signal: string | undefined;
}

async function exec(
  cmd: string,
  args: readonly string[],
  opts: RunOptions,
  encoding: 'utf8' | 'buffer',
): Promise<{ stdout: string | Uint8Array; stderr: string; exitCode: number }> {
  const r = await execa(cmd, [...args], {
    reject: false,
    encoding,
    stripFinalNewline: false,
    maxBuffer: 1024 * 1024 * 1024,
    ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
    env: opts.env,
    cwd: opts.cwd,
    ...(opts.timeoutMs === undefined ? {} : { timeout: opts.timeoutMs }),
  });
  const stderr = typeof r.stderr === 'string' ? r.stderr : Buffer.from(r.stderr ?? new Uint8Array()).toString('utf8');
  const exitCode = r.exitCode ?? -1;
  const ok = opts.okExitCodes ?? [0];
  checkResult(cmd, opts, {
    failed: r.timedOut || r.isTerminated || r.exitCode === undefined || !ok.includes(exitCode),
    code: r.code,
    exitCode: r.exitCode,
    stderr,
    timedOut: r.timedOut,
    isTerminated: r.isTerminated,
    signal: r.signal,
  });
  return { stdout: r.stdout ?? '', stderr, exitCode };
}

function checkResult(cmd: string, opts: RunOptions, r: Outcome): void {
  if (r.code === 'ENOENT') throw missingTool(cmd);
  if (!r.failed) return;
  const what = opts.what === undefined ? `\`${cmd}\`` : `\`${cmd}\` (${opts.what})`;
  const detail = redact(trimStderr(r.stderr), opts.redact ?? []);
  let reason: string;
  if (r.timedOut) reason = `timed out after ${opts.timeoutMs ?? 0} ms`;
  else if (r.code !== undefined && r.code !== '' && r.exitCode === undefined) reason = `could not be started (${r.code})`;
  else if (r.isTerminated && r.signal !== undefined) reason = `was killed by ${r.signal}`;
  else reason = `failed with exit code ${r.exitCode ?? '?'}`;
  throw new IoError(`${what} ${reason}${detail === '' ? '' : `: ${detail}`}`);
}

function missingTool(cmd: string): EnvironmentError {
  return new EnvironmentError(`\`${cmd}\` is not installed`, { hint: installHint(cmd) });
}

/** Last few non-empty stderr lines, at most 1000 characters. */
export function trimStderr(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '');
  const tail = lines.slice(-8).join('\n');
  return tail.length > 1000 ? `…${tail.slice(-1000)}` : tail;
}

function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s !== '') out = out.split(s).join('***');
  return out;
}
