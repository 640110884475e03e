/**
 * Files in the ext4 root partition of a raw image, through e2fsprogs' `debugfs`
 * (`debugfs -w -f script "img?offset=N"`): no root, no loop device.
 *
 * `ext4Apply` batches every change of a bake into ONE debugfs run (a 70 MiB file takes well under
 * a second), creating parent directories (mkdir -p), replacing existing files, and setting mode,
 * uid and gid explicitly. debugfs exits 0 even when a command fails, so the same run ends with a
 * `stat` of every written path and the result is checked (type, mode, owner, size); a mismatch
 * becomes an IoError carrying debugfs' own messages.
 *
 * Contents are staged in a private temporary directory (0700, files 0600) that is always removed.
 * A `copy` op names a file on the build machine instead: debugfs reads it itself, so a large
 * payload (the k3s binary, image tarballs) is neither read into memory nor staged again.
 */
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix, resolve } from 'node:path';
import { InputError, IoError } from '../core/errors.js';
import { run, runBuffer, type RunOptions } from './process.js';

/** The ext4 filesystem inside an image: the file plus the partition's byte offset. */
export interface Ext4Volume {
  image: string;
  offset: number;
}

export type Ext4Op =
  | { kind: 'file'; path: string; contents: string | Uint8Array; mode: number; uid?: number; gid?: number }
  /** a regular file whose contents are the file `source` on the build machine */
  | { kind: 'copy'; path: string; source: string; mode: number; uid?: number; gid?: number }
  | { kind: 'dir'; path: string; mode?: number; uid?: number; gid?: number }
  | { kind: 'symlink'; path: string; target: string; uid?: number; gid?: number }
  | { kind: 'remove'; path: string };

export interface Ext4ApplyOptions {
  /**
   * Timestamp (seconds since the epoch) for every inode created or changed, for reproducible
   * images (passed to debugfs as E2FSPROGS_FAKE_TIME). Default: now.
   */
  epoch?: number;
}

export interface Ext4Stat {
  inode: number;
  type: 'regular' | 'directory' | 'symlink' | 'other';
  /** permission bits, e.g. 0o600 */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** for short ("fast") symlinks */
  linkTarget?: string;
}

function target(v: Ext4Volume): string {
  return `${v.image}?offset=${v.offset}`;
}

/** Validates and normalises an absolute rootfs path (`/etc//x/` → `/etc/x`). */
export function ext4Path(p: string): string {
  if (!p.startsWith('/')) throw new InputError(`root filesystem path "${p}" must be absolute (start with /)`);
  if (/["\0\n\r\\]/.test(p)) {
    throw new InputError(`root filesystem path "${p}" contains a quote, backslash or control character`, {
      hint: 'debugfs cannot address such names; rename the file',
    });
  }
  const norm = posix.normalize(p).replace(/\/+$/, '');
  if (norm.split('/').includes('..')) throw new InputError(`root filesystem path "${p}" must not contain ".."`);
  return norm === '' ? '/' : norm;
}

function q(s: string): string {
  return `"${s}"`;
}

/** Parent directories of `p`, outermost first (`/a/b/c` → `/a`, `/a/b`). */
export function parents(p: string): string[] {
  const parts = p.split('/').filter((s) => s !== '');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(`/${parts.slice(0, i).join('/')}`);
  return out;
}

interface Expectation {
  path: string;
  type: Ext4Stat['type'];
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
}

/**
 * Pure: the debugfs command script for `ops`. `staged[i]` is the local file holding the contents
 * of `ops[i]` when it is a `file` or a `copy` (for a copy: its source), and `sizes[i]` the size
 * expected for a `copy`. Returns the script and the `stat` checks appended at its end.
 */
export function buildDebugfsScript(
  ops: readonly Ext4Op[],
  staged: readonly (string | undefined)[],
  sizes: readonly (number | undefined)[] = [],
): { script: string; expect: Expectation[] } {
  const lines: string[] = [];
  const made = new Set<string>(['/']);
  const expect = new Map<string, Expectation>();
  const mkdirP = (dir: string): void => {
    for (const d of [...parents(dir), dir]) {
      if (made.has(d)) continue;
      lines.push(`mkdir ${q(d)}`); // "already exists" for existing directories is expected
      made.add(d);
    }
  };
  const owner = (p: string, uid: number | undefined, gid: number | undefined): void => {
    lines.push(`sif ${q(p)} uid ${uid ?? 0}`, `sif ${q(p)} gid ${gid ?? 0}`);
  };
  ops.forEach((op, i) => {
    const p = ext4Path(op.path);
    if (p === '/') throw new InputError('cannot write to "/" itself in the root filesystem');
    switch (op.kind) {
      case 'dir': {
        mkdirP(p);
        const mode = op.mode ?? 0o755;
        lines.push(`sif ${q(p)} mode 0${(0o040000 | (mode & 0o7777)).toString(8)}`);
        owner(p, op.uid, op.gid);
        expect.set(p, { path: p, type: 'directory', mode: mode & 0o7777, uid: op.uid ?? 0, gid: op.gid ?? 0 });
        break;
      }
      case 'file':
      case 'copy': {
        const local = staged[i];
        if (local === undefined) throw new Error(`internal: no staged file for ${p}`);
        if (/["\0\n\r]/.test(local)) {
          throw new InputError(`cannot copy ${local} into the root filesystem: its path contains a quote or control character`, {
            hint: 'debugfs cannot read such names; rename the file or move it to a plain directory',
          });
        }
        mkdirP(posix.dirname(p));
        lines.push(`rm ${q(p)}`, `write ${q(local)} ${q(p)}`);
        lines.push(`sif ${q(p)} mode 0${(0o100000 | (op.mode & 0o7777)).toString(8)}`);
        owner(p, op.uid, op.gid);
        const size =
          op.kind === 'copy' ? sizes[i] : typeof op.contents === 'string' ? Buffer.byteLength(op.contents) : op.contents.byteLength;
        expect.set(p, { path: p, type: 'regular', mode: op.mode & 0o7777, uid: op.uid ?? 0, gid: op.gid ?? 0, ...(size === undefined ? {} : { size }) });
        break;
      }
      case 'symlink': {
        if (/["\0\n\r\\]/.test(op.target) || op.target === '') {
          throw new InputError(`symlink target "${op.target}" for ${p} is empty or contains a quote/control character`);
        }
        mkdirP(posix.dirname(p));
        lines.push(`rm ${q(p)}`, `symlink ${q(p)} ${q(op.target)}`);
        owner(p, op.uid, op.gid);
        expect.set(p, { path: p, type: 'symlink', uid: op.uid ?? 0, gid: op.gid ?? 0, size: Buffer.byteLength(op.target) });
        break;
      }
      case 'remove':
        lines.push(`rm ${q(p)}`);
        expect.delete(p);
        break;
    }
  });
  const checks = [...expect.values()];
  for (const e of checks) lines.push(`stat ${q(e.path)}`);
  return { script: `${lines.join('\n')}\n`, expect: checks };
}

/** debugfs messages that are expected while applying a script (see buildDebugfsScript). */
const BENIGN = [
  /^debugfs \d/, // version banner
  /directory already exists/i, // mkdir -p over an existing directory
  /^rm: File not found by ext2_lookup/, // replacing a file that did not exist
];

/** Size of the host file a `copy` op reads; IoError naming it when it is missing or not a file. */
async function sourceSize(source: string, dest: string, v: Ext4Volume): Promise<number> {
  const what = `cannot copy ${source} to ${dest} in the root filesystem of ${v.image}`;
  const hint = 'check that the file exists and is readable (air-gap files: k3s.airgapDir in cluster.yaml)';
  let st;
  try {
    st = await stat(source);
  } catch (cause) {
    throw new IoError(`${what}: ${(cause as NodeJS.ErrnoException).code ?? 'unreadable'}`, { hint, cause });
  }
  if (!st.isFile()) throw new IoError(`${what}: not a regular file`, { hint });
  return st.size;
}

/** Applies all `ops` in one debugfs run and checks the result. */
export async function ext4Apply(v: Ext4Volume, ops: readonly Ext4Op[], opts: Ext4ApplyOptions = {}): Promise<void> {
  if (ops.length === 0) return;
  const stage = await mkdtemp(join(tmpdir(), 'pi-image-ext4-'));
  try {
    await chmod(stage, 0o700);
    const staged: (string | undefined)[] = [];
    const sizes: (number | undefined)[] = [];
    for (const [i, op] of ops.entries()) {
      staged.push(undefined);
      sizes.push(undefined);
      if (op.kind === 'copy') {
        staged[i] = resolve(op.source);
        sizes[i] = await sourceSize(staged[i], op.path, v);
      } else if (op.kind === 'file') {
        const local = join(stage, String(i));
        await writeFile(local, op.contents, { mode: 0o600 });
        staged[i] = local;
      }
    }
    const { script, expect } = buildDebugfsScript(ops, staged, sizes);
    const scriptPath = join(stage, 'script');
    await writeFile(scriptPath, script, { mode: 0o600 });
    const env: Record<string, string> = opts.epoch === undefined ? {} : { E2FSPROGS_FAKE_TIME: String(Math.floor(opts.epoch)) };
    const res = await run('debugfs', ['-w', '-f', scriptPath, target(v)], {
      env,
      what: `writing the root filesystem of ${v.image}`,
      redact: [stage],
    });
    const problems = res.stderr
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !BENIGN.some((re) => re.test(l)))
      .map((l) => l.split(stage).join('<staged>'));
    const stats = parseStats(res.stdout);
    const mismatches = compare(expect, stats);
    if (problems.length > 0 || mismatches.length > 0) {
      throw new IoError(`writing the root filesystem of ${v.image} failed`, {
        details: [...mismatches, ...problems.map((p) => `debugfs: ${p}`)].slice(0, 30),
        hint: 'check that the image is a Raspberry Pi OS image with room left on p2 and that no path is both a file and a directory',
      });
    }
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

function compare(expect: readonly Expectation[], stats: readonly Ext4Stat[]): string[] {
  if (stats.length !== expect.length) {
    return [`expected ${expect.length} written path(s) to exist afterwards, found ${stats.length}`];
  }
  const out: string[] = [];
  expect.forEach((e, i) => {
    const s = stats[i];
    if (s === undefined) return;
    const diff: string[] = [];
    if (s.type !== e.type) diff.push(`type ${s.type} (want ${e.type})`);
    if (e.mode !== undefined && s.mode !== e.mode) diff.push(`mode ${s.mode.toString(8)} (want ${e.mode.toString(8)})`);
    if (e.uid !== undefined && s.uid !== e.uid) diff.push(`uid ${s.uid} (want ${e.uid})`);
    if (e.gid !== undefined && s.gid !== e.gid) diff.push(`gid ${s.gid} (want ${e.gid})`);
    if (e.size !== undefined && s.size !== e.size) diff.push(`size ${s.size} (want ${e.size})`);
    if (diff.length > 0) out.push(`${e.path}: ${diff.join(', ')}`);
  });
  return out;
}

/** Pure: parses the output of one or more debugfs `stat` commands, in order. */
export function parseStats(stdout: string): Ext4Stat[] {
  const out: Ext4Stat[] = [];
  const blocks = stdout.split(/^(?=Inode: \d+\s+Type:)/m).filter((b) => /^Inode: \d+/.test(b));
  for (const b of blocks) {
    const head = /^Inode: (\d+)\s+Type: (\S+)\s+Mode:\s+(\d+)/.exec(b);
    const owner = /User:\s+(\d+)\s+Group:\s+(\d+)/.exec(b);
    const size = /Size: (\d+)/.exec(b.slice(b.indexOf('User:')));
    if (head === null || owner === null) continue;
    const t = head[2];
    const type: Ext4Stat['type'] =
      t === 'regular' ? 'regular' : t === 'directory' ? 'directory' : t === 'symlink' ? 'symlink' : 'other';
    const st: Ext4Stat = {
      inode: Number(head[1]),
      type,
      mode: parseInt(head[3] ?? '0', 8),
      uid: Number(owner[1]),
      gid: Number(owner[2]),
      size: Number(size?.[1] ?? 0),
    };
    const link = /Fast link dest: "(.*)"/.exec(b);
    if (link?.[1] !== undefined) st.linkTarget = link[1];
    out.push(st);
  }
  return out;
}

async function debugfsRead(v: Ext4Volume, command: string, opts: RunOptions): Promise<{ stdout: Uint8Array; errors: string[] }> {
  const res = await runBuffer('debugfs', ['-R', command, target(v)], opts);
  const errors = res.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^debugfs \d/.test(l));
  return { stdout: res.stdout, errors };
}

/**
 * Runs read-only debugfs commands in one process (a script on stdin); returns each command's output.
 * For walks that would otherwise start one debugfs per path.
 */
export async function ext4Batch(v: Ext4Volume, commands: readonly string[], what: string): Promise<string[]> {
  if (commands.length === 0) return [];
  const { stdout } = await runBuffer('debugfs', ['-f', '-', target(v)], { input: commands.join('\n') + '\n', what });
  const text = Buffer.from(stdout).toString('utf8');
  // debugfs echoes each command as "debugfs: <command>" before its output
  const sections = text.split(/^debugfs: /m).slice(1);
  if (sections.length !== commands.length) {
    throw new IoError(`debugfs (${what}) answered ${sections.length} of ${commands.length} commands`);
  }
  return sections.map((s) => s.slice(s.indexOf('\n') + 1));
}

/** Copies the whole filesystem into the existing directory `dest` (`debugfs rdump`; owners and modes are the caller's to set). */
export async function ext4Rdump(v: Ext4Volume, dest: string): Promise<void> {
  const { stdout, stderr } = await run('debugfs', ['-R', `rdump / ${dest}`, target(v)], { what: `extracting the root filesystem of ${v.image}` });
  const problems = `${stdout}\n${stderr}`.split('\n').filter((l) => /rdump: |while /.test(l));
  if (problems.length > 0) throw new IoError(`extracting the root filesystem of ${v.image} failed`, { details: problems.slice(0, 10) });
}

/** Metadata of `path` (not following a final symlink), or undefined when it does not exist. */
export async function ext4Stat(v: Ext4Volume, path: string): Promise<Ext4Stat | undefined> {
  const p = ext4Path(path);
  const { stdout, errors } = await debugfsRead(v, `stat ${q(p)}`, { what: `reading ${p} in ${v.image}` });
  const st = parseStats(Buffer.from(stdout).toString('utf8'))[0];
  if (st !== undefined) return st;
  if (errors.some((e) => /File not found/i.test(e))) return undefined;
  throw new IoError(`cannot read ${p} in the root filesystem of ${v.image}`, { details: errors });
}

/** Reads a regular file's bytes (follows no symlinks). Throws IoError when it is missing. */
export async function ext4ReadFile(v: Ext4Volume, path: string): Promise<Buffer> {
  const p = ext4Path(path);
  const st = await ext4Stat(v, p);
  if (st === undefined) throw new IoError(`${p} does not exist in the root filesystem of ${v.image}`);
  if (st.type !== 'regular') throw new IoError(`${p} in the root filesystem of ${v.image} is a ${st.type}, not a file`);
  const { stdout, errors } = await debugfsRead(v, `cat ${q(p)}`, { what: `reading ${p} in ${v.image}` });
  if (stdout.byteLength !== st.size) {
    throw new IoError(`reading ${p} from ${v.image} returned ${stdout.byteLength} of ${st.size} bytes`, { details: errors });
  }
  return Buffer.from(stdout);
}

/** Names in a directory (without `.` and `..`). */
export async function ext4List(v: Ext4Volume, dir: string): Promise<string[]> {
  const p = ext4Path(dir);
  const { stdout, errors } = await debugfsRead(v, `ls -p ${q(p)}`, { what: `listing ${p} in ${v.image}` });
  if (errors.length > 0) throw new IoError(`cannot list ${p} in the root filesystem of ${v.image}`, { details: errors });
  // `ls -p` lines: /inode/mode/uid/gid/name/size/
  return Buffer.from(stdout)
    .toString('utf8')
    .split('\n')
    .map((l) => /^\/\d+\/\d+\/\d+\/\d+\/(.*)\/\d*\/$/.exec(l.trim())?.[1])
    .filter((n): n is string => n !== undefined && n !== '.' && n !== '..');
}

/**
 * Whether the base carries Raspberry Pi's userconf-pi (the first-boot user rename): its
 * /usr/bin/cancel-rename, or its userconfig.service unit.
 */
export async function hasUserconfPi(v: Ext4Volume): Promise<boolean> {
  for (const p of ['/usr/bin/cancel-rename', '/usr/lib/systemd/system/userconfig.service', '/lib/systemd/system/userconfig.service']) {
    if ((await ext4Stat(v, p)) !== undefined) return true;
  }
  return false;
}

/**
 * Refuses a base without cloud-init: pi-image provisions nodes through a NoCloud seed, which needs
 * /etc/cloud/cloud.cfg in the root filesystem.
 */
export async function requireCloudInit(v: Ext4Volume): Promise<void> {
  const st = await ext4Stat(v, '/etc/cloud/cloud.cfg');
  if (st === undefined || st.type === 'directory' || st.type === 'other') {
    throw new InputError(`base image ${v.image} has no cloud-init (/etc/cloud/cloud.cfg is missing in its root filesystem)`, {
      hint: 'use Raspberry Pi OS Lite arm64 from the 2025-11-24 release or later, which ships cloud-init (see `pi-image images list`)',
    });
  }
}
