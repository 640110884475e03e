/**
 * Reads and writes build records (`<build-dir>/<node>.json`). The format and its checks are in
 * src/core/build-record.ts; this module only moves the bytes.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type BuildRecord, parseBuildRecord, serializeBuildRecord } from '../core/build-record.js';
import { IoError } from '../core/errors.js';
import { atomicTempPath, atomicWriteFile, fsyncDir } from './atomic-write.js';
import { trace } from './trace.js';

/** Where the record of `node` lives in a build directory. */
export function recordPath(buildDir: string, node: string): string {
  return join(buildDir, `${node}.json`);
}

/** The record next to an image file: `x.img`, `x.img.zst`, `x.img.xz` → `x.json`. */
export function recordPathForImage(image: string): string {
  return `${image.replace(/\.img(\.(zst|xz))?$/, '')}.json`;
}

/** Reads a build record; undefined when the file does not exist; InputError when it is not a valid record. */
export async function readBuildRecord(path: string): Promise<BuildRecord | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IoError(`cannot read build record ${path}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
  }
  return parseBuildRecord(text, path);
}

/** Writes a build record atomically (mode 0644: it holds no secret, only HMAC digests of secret files). */
export async function writeBuildRecord(path: string, record: BuildRecord): Promise<void> {
  await atomicWriteFile(path, serializeBuildRecord(record), {
    mode: 0o644,
    hint: 'check that the output directory is writable and the disk is not full (or pass --build-dir DIR)',
  });
}

export interface BuildOutputs {
  /** the finished image under its temp name (left for the caller to remove when this throws) */
  imageTmp: string;
  /** where the image goes */
  image: string;
  record: BuildRecord;
  recordPath: string;
  /** files that belong to the image (its block map): put in place with it, the earlier ones back if the record cannot be */
  companions?: readonly { tmp: string; path: string }[];
  /** other forms of the same image (`.img` for a compressed build, …): removed once the pair is in place */
  replaces?: readonly string[];
}

/**
 * Puts a new image and its build record in place as a pair: the record is written completely under
 * a temp name first (a record that cannot be written stops here and the old pair stays), the old
 * image is set aside, the new image and the record are renamed into place, and if the record's
 * rename fails the old image comes back. Never a new image beside an old record, nor a record
 * describing an image that is not there. Other forms of the image (the raw one after a compressed
 * build, or the reverse) are removed afterwards, so no stale image stays beside the record.
 */
export async function commitBuildOutputs(o: BuildOutputs): Promise<void> {
  const hint = 'check that the output directory is writable and the disk is not full (or pass --build-dir DIR); the earlier image and record are unchanged';
  const fail = (what: string, cause: unknown): IoError =>
    new IoError(`cannot write build record ${o.recordPath}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}${what}`, { hint, cause });
  const recordTmp = atomicTempPath(o.recordPath);
  try {
    const fh = await open(recordTmp, 'wx', 0o644);
    try {
      await fh.writeFile(serializeBuildRecord(o.record));
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (cause) {
    await rm(recordTmp, { force: true }).catch(() => undefined);
    throw fail('', cause);
  }
  // the image and its companions: each earlier file is set aside first, and comes back on failure
  const moves = [{ tmp: o.imageTmp, path: o.image }, ...(o.companions ?? [])].map((m) => ({ ...m, backup: `${m.path}.old-${process.pid}`, hadOld: false, moved: false }));
  const undo = async (): Promise<void> => {
    for (const m of [...moves].reverse()) {
      if (m.moved) await rename(m.path, m.tmp).catch(() => undefined);
      if (m.hadOld) await rename(m.backup, m.path).catch(() => undefined);
      m.moved = false;
      m.hadOld = false;
    }
  };
  try {
    for (const m of moves) {
      try {
        await rename(m.path, m.backup);
        m.hadOld = true;
      } catch (cause) {
        if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw cause;
      }
      await rename(m.tmp, m.path);
      m.moved = true;
    }
    try {
      await rename(recordTmp, o.recordPath);
    } catch (cause) {
      // the new image must not stay beside the old record: put the old image back
      await undo();
      throw fail(' (the new image was not kept)', cause);
    }
  } catch (cause) {
    await undo();
    await rm(recordTmp, { force: true }).catch(() => undefined);
    if (cause instanceof IoError) throw cause;
    throw new IoError(`cannot put ${o.image} in place: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { hint, cause });
  }
  for (const m of moves) if (m.hadOld) await rm(m.backup, { force: true });
  for (const other of o.replaces ?? []) if (other !== o.image) await rm(other, { force: true });
  await fsyncDir(dirname(o.recordPath));
  trace(`committed ${[o.image, ...(o.companions ?? []).map((c) => c.path), o.recordPath].join(', ')}${moves.some((m) => m.hadOld) ? ' (replacing the earlier build)' : ''}`);
}
