/**
 * Evidence folders: `<root>/<YYYY-MM-DD>-<name>[-N]/` holding a few files (diff reviews, rebuild
 * drills). The folder is created exclusively (a concurrent run takes the next number), every file is
 * written atomically, and every text passes through `redact` with the secret values given.
 */
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { evidenceFolderName } from '../core/evidence.js';
import { IoError } from '../core/errors.js';
import { redact } from '../core/redact.js';
import { atomicWriteFile } from './atomic-write.js';

export interface EvidenceFolder {
  /** directory the dated folders go into */
  root: string;
  /** folder name after the date, e.g. `diff-all`, `rebuild-pi-cluster-3` */
  name: string;
  /** the date in the folder name (UTC) */
  date: Date;
  /** file name → contents */
  files: Record<string, string>;
  /** every secret value that may occur in the files: each is masked before anything is written */
  secretValues?: readonly string[];
  /** hint when the root cannot be created */
  hint?: string;
}

/** Creates the next free evidence folder and writes the files into it; returns the folder. */
export async function writeEvidenceFolder(e: EvidenceFolder): Promise<string> {
  try {
    await mkdir(e.root, { recursive: true });
  } catch (cause) {
    throw new IoError(`cannot create evidence directory ${e.root}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, {
      hint: e.hint ?? 'pass --evidence-dir DIR pointing at a writable directory',
      cause,
    });
  }
  let existing: Set<string>;
  try {
    existing = new Set(await readdir(e.root));
  } catch (cause) {
    throw new IoError(`cannot read the evidence directory ${e.root}: ${(cause as Error).message}`, { cause });
  }
  let folder: string | undefined;
  while (folder === undefined) {
    const candidate = evidenceFolderName(e.date, e.name, (f) => existing.has(f));
    try {
      await mkdir(join(e.root, candidate));
      folder = join(e.root, candidate);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new IoError(`cannot create ${join(e.root, candidate)}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
      }
      existing.add(candidate); // created meanwhile by someone else: take the next number
    }
  }
  const values = e.secretValues ?? [];
  for (const [name, text] of Object.entries(e.files)) {
    await atomicWriteFile(join(folder, name), values.length ? redact(text, values) : text);
  }
  return folder;
}
