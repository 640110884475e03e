/**
 * The one place pi-image starts other programs (execa wrapper).
 *
 * - A missing program becomes an EnvironmentError ("`mcopy` is not installed") whose hint names the
 *   Debian package to install (see TOOL_PACKAGES).
 * - A non-zero exit becomes an IoError naming the program and its trimmed stderr. Arguments are
 *   NOT put into messages (they may hold paths with secrets or tokens); callers that know stderr may
 *   echo a secret pass `redact: [secret, …]` and every occurrence is replaced by `***`.
 * - With `-v` every program run is traced (adapters/trace.ts): its command line, exit code and time,
 *   with the `redact` strings and the run's secret values masked.
 *
 * Usage:
 *   const { stdout } = await run('sfdisk', ['--json', image]);
 *   const bytes = (await runBuffer('mtype', ['-i', `${img}@@${off}`, '::/config.txt'])).stdout;
 *   const child = spawnStream('xz', ['-dc']);   // streaming stdin → stdout, await child.done
 */
import { execa, type ResultPromise } from 'execa';
import type { Readable, Writable } from 'node:stream';
import { EnvironmentError, IoError } from '../core/errors.js';
import { commandLine, elapsed, trace } from './trace.js';

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
  'mkfs.xfs': 'xfsprogs',
  'mkfs.btrfs': 'btrfs-progs',
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
  dnsmasq: 'dnsmasq-base',
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
  age: 'age',
  python3: 'python3',
  mmdebstrap: 'mmdebstrap',
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
      detached: true,
      ...(opts.timeoutMs === undefined ? {} : { timeout: opts.timeoutMs }),
    });
  const untrack = track(child.pid);
  const started = performance.now();
  trace(`${commandLine(cmd, args)}  (streaming)`, opts.redact);
  // once the program has exited its pid may be handed to another program: no group signal after that
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const done = child.then((r) => {
    untrack();
    trace(`${cmd} ended: exit ${r.exitCode ?? r.signal ?? '?'}, ${elapsed(started)}`);
    checkResult(cmd, opts, { failed: r.failed, code: r.code, exitCode: r.exitCode, stderr: String(r.stderr ?? ''), timedOut: r.timedOut, isTerminated: r.isTerminated, signal: r.signal });
  });
  // avoid unhandled EPIPE when the program dies early; the real error comes from `done`
  child.stdin.on('error', () => undefined);
  return {
    stdin: child.stdin,
    stdout: child.stdout,
    done,
    kill: () => {
      if (exited) return;
      child.kill();
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    },
  };
}

// ── child processes: every one is killed on every exit path ─────────────────────────────────────

/**
 * Programs pi-image started and that still run. Each is started as the leader of its own process
 * group (`detached`), so killing the group also stops what it started (`sh -c 'xz … > out'` → xz).
 * They are killed when pi-image exits (normally, by an error, or on SIGINT/SIGTERM/SIGHUP: see
 * killAllChildren and image-files' signal cleanup), so no xz/zstd/debugfs/dd/qemu is left running,
 * reparented and holding a deleted temp file.
 */
const liveChildren = new Set<number>();
let exitHookInstalled = false;

function track(pid: number | undefined): () => void {
  if (pid === undefined) return () => undefined;
  liveChildren.add(pid);
  if (!exitHookInstalled) {
    process.on('exit', killAllChildren);
    exitHookInstalled = true;
  }
  return () => {
    liveChildren.delete(pid);
  };
}

/** SIGKILLs the process group led by `pid` (or the process alone when it leads none). Synchronous. */
export function killProcessGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/** Kills (SIGKILL) the process group of every program still running. Synchronous: safe in exit and signal handlers. */
export function killAllChildren(): void {
  for (const pid of liveChildren) killProcessGroup(pid);
  liveChildren.clear();
}

/** True while a process with this pid runs (also another user's: EPERM); the one check for stale locks and temp files. */
export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Process ids of the programs pi-image started that still run (for tests and diagnostics). */
export function runningChildren(): number[] {
  return [...liveChildren];
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
  const sub = execa(cmd, [...args], {
    reject: false,
    encoding,
    stripFinalNewline: false,
    maxBuffer: 1024 * 1024 * 1024,
    ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
    env: opts.env,
    cwd: opts.cwd,
    detached: true,
    ...(opts.timeoutMs === undefined ? {} : { timeout: opts.timeoutMs }),
  });
  const untrack = track(sub.pid);
  const started = performance.now();
  let r;
  try {
    r = await sub;
  } finally {
    untrack();
    trace(`${commandLine(cmd, args)}  (exit ${r?.exitCode ?? r?.signal ?? '?'}, ${elapsed(started)})`, opts.redact);
    // a timed-out or failed `sh -c` may leave what it started: stop the whole group
    if (sub.pid !== undefined) {
      try {
        process.kill(-sub.pid, 'SIGKILL');
      } catch {
        /* the group is gone: the normal case */
      }
    }
  }
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
