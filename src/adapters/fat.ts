/**
 * Files in the FAT boot partition of a raw image, through mtools (`mcopy -i "img@@<offset>"`).
 * No root and no loop device needed. FAT has no owners or Unix modes: modes of RenderedFiles are
 * ignored here (Raspberry Pi OS mounts /boot/firmware with fmask 0022 → files read as 0755).
 *
 * Paths are absolute inside the partition, e.g. `/cmdline.txt`, `/overlays/foo.dtbo`. FAT compares
 * names case-insensitively.
 */
import { mkdtemp, rm, utimes, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { InputError, IoError } from '../core/errors.js';
import { run, runBuffer, type RunOptions } from './process.js';

/** The FAT filesystem inside an image: the file plus the partition's byte offset. */
export interface FatVolume {
  image: string;
  offset: number;
}

export interface FatFile {
  path: string;
  contents: string | Uint8Array;
}

export interface FatWriteOptions {
  /** modification time for every written file (reproducible images); default: now */
  mtime?: Date;
}

const ENV: Record<string, string> = { MTOOLS_SKIP_CHECK: '1' };

function drive(v: FatVolume): string {
  return `${v.image}@@${v.offset}`;
}

function mopts(what: string, mtime?: Date): RunOptions {
  // mtools stamps new directory entries with SOURCE_DATE_EPOCH when set (reproducible images)
  const env = mtime === undefined ? ENV : { ...ENV, SOURCE_DATE_EPOCH: String(Math.floor(mtime.getTime() / 1000)) };
  return { env, what };
}

/** Normalises `/a//b/` → `/a/b` and rejects paths mtools would misread. */
export function fatPath(p: string): string {
  if (!p.startsWith('/')) throw new InputError(`boot partition path "${p}" must be absolute (start with /)`);
  if (/[\0\n\r*?"<>|:\\]/.test(p)) {
    throw new InputError(`boot partition path "${p}" contains a character FAT cannot store`, {
      hint: 'use letters, digits, ".", "-", "_" and "/"',
    });
  }
  const norm = posix.normalize(p).replace(/\/+$/, '');
  if (norm.split('/').includes('..')) throw new InputError(`boot partition path "${p}" must not contain ".."`);
  return norm === '' ? '/' : norm;
}

/** Every path in the filesystem (directories end with `/`), lower-cased for comparison. */
export async function fatListAll(v: FatVolume): Promise<Set<string>> {
  const { stdout } = await run('mdir', ['-/', '-b', '-i', drive(v), '::/'], mopts('listing the boot partition'));
  const out = new Set<string>();
  for (const line of stdout.split('\n')) {
    const l = line.trim();
    if (l.startsWith('::')) out.add(l.slice(2).toLowerCase());
  }
  return out;
}

/** Entries directly in `dir` (names; directories end with `/`). Throws IoError when `dir` is missing. */
export async function fatList(v: FatVolume, dir = '/'): Promise<string[]> {
  const d = fatPath(dir);
  const { stdout } = await run('mdir', ['-b', '-i', drive(v), `::${d}`], mopts(`listing ${d} on the boot partition`));
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('::'))
    .map((l) => l.slice(2))
    .map((l) => (l.startsWith(d === '/' ? '/' : `${d}/`) ? l.slice(d === '/' ? 1 : d.length + 1) : l));
}

/** True when `path` exists (file or directory). */
export async function fatExists(v: FatVolume, path: string): Promise<boolean> {
  const p = fatPath(path).toLowerCase();
  const all = await fatListAll(v);
  return all.has(p) || all.has(`${p}/`) || p === '/';
}

/** Reads a file's bytes. */
export async function fatReadFile(v: FatVolume, path: string): Promise<Buffer> {
  const p = fatPath(path);
  const { stdout } = await runBuffer('mcopy', ['-n', '-i', drive(v), `::${p}`, '-'], mopts(`reading ${p} from the boot partition`));
  return Buffer.from(stdout);
}

/** Copies one file out of the partition to `dest` on the build machine. */
export async function fatCopyOut(v: FatVolume, path: string, dest: string): Promise<void> {
  const p = fatPath(path);
  await run('mcopy', ['-n', '-i', drive(v), `::${p}`, dest], mopts(`copying ${p} out of the boot partition`));
}

/** Copies the whole partition (directories included, modification times kept) into the existing directory `dest`. */
export async function fatCopyTreeOut(v: FatVolume, dest: string): Promise<void> {
  await run('mcopy', ['-s', '-n', '-m', '-i', drive(v), '::/*', `${dest}/`], mopts(`copying the boot partition of ${v.image}`));
}

/** Reads a text file (UTF-8). */
export async function fatReadText(v: FatVolume, path: string): Promise<string> {
  return (await fatReadFile(v, path)).toString('utf8');
}

/** Creates `dir` and its missing parents (mkdir -p). `known` is a fatListAll result to reuse. */
export async function fatMkdirP(v: FatVolume, dir: string, known?: Set<string>, opts: FatWriteOptions = {}): Promise<void> {
  const existing = known ?? (await fatListAll(v));
  const parts = fatPath(dir).split('/').filter((s) => s !== '');
  let cur = '';
  for (const part of parts) {
    cur += `/${part}`;
    const key = cur.toLowerCase();
    if (existing.has(`${key}/`)) continue;
    if (existing.has(key)) throw new IoError(`cannot create directory ${cur} on the boot partition of ${v.image}: a file has that name`);
    await run('mmd', ['-i', drive(v), `::${cur}`], mopts(`creating ${cur} on the boot partition`, opts.mtime));
    existing.add(`${key}/`);
  }
}

/**
 * Writes files (creating parent directories, replacing existing files). Contents are staged in a
 * private temporary directory (mode 0700) that is removed afterwards, since they may be secret.
 */
export async function fatWriteFiles(v: FatVolume, files: readonly FatFile[], opts: FatWriteOptions = {}): Promise<void> {
  if (files.length === 0) return;
  const existing = await fatListAll(v);
  const stage = await mkdtemp(join(tmpdir(), 'pi-image-fat-'));
  try {
    await chmod(stage, 0o700);
    let i = 0;
    for (const f of files) {
      const p = fatPath(f.path);
      if (existing.has(`${p.toLowerCase()}/`)) {
        throw new IoError(`cannot write ${p} on the boot partition of ${v.image}: a directory has that name`);
      }
      await fatMkdirP(v, posix.dirname(p), existing, opts);
      const local = join(stage, String(i++));
      await writeFile(local, f.contents, { mode: 0o600 });
      const args = ['-o', '-i', drive(v)];
      if (opts.mtime !== undefined) {
        await utimes(local, opts.mtime, opts.mtime);
        args.push('-m');
      }
      await run('mcopy', [...args, local, `::${p}`], mopts(`writing ${p} to the boot partition`, opts.mtime));
      existing.add(p.toLowerCase());
    }
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

