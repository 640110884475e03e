/**
 * Reads and writes build records (`<build-dir>/<node>.json`). The format and its checks are in
 * src/core/build-record.ts; this module only moves the bytes.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BuildRecord, parseBuildRecord, serializeBuildRecord } from '../core/build-record.js';
import { IoError } from '../core/errors.js';
import { atomicWriteFile } from './atomic-write.js';

/** Where the record of `node` lives in a build directory. */
export function recordPath(buildDir: string, node: string): string {
  return join(buildDir, `${node}.json`);
}

/** The record next to an image file: `x.img` → `x.json`. */
export function recordPathForImage(image: string): string {
  return `${image.replace(/\.img$/, '')}.json`;
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
    hint: 'check that the output directory is writable and the disk is not full (or pass --out DIR)',
  });
}
