/**
 * `pi-image images list|fetch|import|verify`: the base-image cache.
 *   list                      catalogue entries and imported images, with cache state
 *   fetch [name] [--force]    download + verify + extract into the cache (resumes a partial download)
 *   import <file> --name N    copy/decompress a local image into the cache, recording its sha256
 *   verify [name]             re-hash cached images (exit 1 when one does not match)
 */
import { isAbsolute, resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { printJson, type Io } from '../app/io.js';
import { EXIT_CODES } from '../core/errors.js';
import type { CatalogueEntry } from '../core/catalogue.js';
import { loadCatalogue, loadCatalogueEntry } from '../adapters/catalogue-files.js';
import { createProgress } from '../adapters/progress.js';
import {
  cacheDir,
  cachedImagePath,
  fetchImage,
  importImage,
  listCachedImages,
  readCacheRecord,
  verifyCachedImage,
  type CacheRecord,
  type Progress,
  type VerifyResult,
} from '../adapters/download.js';
import { formatBytes } from '../adapters/image-files.js';
import { type GlobalArgs, io, setExitCode } from './context.js';

export const DEFAULT_BASE_IMAGE = 'raspios-lite-arm64-trixie';

interface ImagesArgs extends GlobalArgs {
  cache?: string;
}

function cachePath(argv: ImagesArgs, out: Io): string {
  if (argv.cache !== undefined) return isAbsolute(argv.cache) ? argv.cache : resolve(out.cwd, argv.cache);
  return cacheDir(out.env);
}

/** A bar per phase (download, decompress, hash) on a terminal; in logs a line every 10 % or 15 s. */
function progressOf(out: Io): { onProgress: (p: Progress) => void; done: () => void; stop: () => void } {
  const progress = createProgress(out, { everyPercent: 10, everyMs: 15_000 });
  const phases = progress.phases();
  return { onProgress: phases.update, done: phases.done, stop: progress.stop };
}

const withCache = <T>(y: Argv<T>): Argv<T & { cache: string | undefined }> =>
  y.option('cache', {
    type: 'string',
    describe: 'cache directory (default: $PI_IMAGE_CACHE, $XDG_CACHE_HOME/pi-image or ~/.cache/pi-image)',
  }) as Argv<T & { cache: string | undefined }>;

const listCommand: CommandModule<GlobalArgs, ImagesArgs> = {
  command: 'list',
  describe: 'list catalogue base images and what is cached',
  builder: (y) => withCache(y),
  handler: async (argv) => {
    const out = io();
    const dir = cachePath(argv, out);
    const entries = await loadCatalogue();
    const cached = await listCachedImages(dir);
    const rows = [
      ...entries.map((e) => row(e.name, e, cached.find((c) => c.name === e.name))),
      ...cached.filter((c) => !entries.some((e) => e.name === c.name)).map((c) => row(c.name, undefined, c)),
    ];
    if (argv.output === 'json') {
      printJson(out, { cache: dir, images: rows });
      return;
    }
    out.out(`cache: ${dir}\n`);
    for (const r of rows) {
      const state = r.cached ? `cached ${formatBytes(r.size ?? 0)}${r.verifiedAt ? `, verified ${r.verifiedAt}` : ''}` : 'not cached';
      out.out(`${r.name.padEnd(32)} ${(r.release ?? '').padEnd(11)} ${state}${r.description ? `  ${r.description}` : ''}\n`);
    }
  },
};

function row(name: string, e: CatalogueEntry | undefined, c: CacheRecord | undefined): Record<string, unknown> & { name: string; cached: boolean; size?: number; release?: string; verifiedAt?: string; description?: string } {
  return {
    name,
    catalogue: e !== undefined,
    ...(e?.description === undefined ? {} : { description: e.description }),
    ...(e?.release === undefined ? {} : { release: e.release }),
    ...(e === undefined ? {} : { url: e.url }),
    cached: c !== undefined,
    ...(c === undefined ? {} : { sha256: c.sha256, size: c.size, source: c.source, ...(c.verifiedAt ? { verifiedAt: c.verifiedAt } : {}) }),
  };
}

interface FetchArgs extends ImagesArgs {
  name: string;
  force: boolean;
}

const fetchCommand: CommandModule<GlobalArgs, FetchArgs> = {
  command: 'fetch [name]',
  describe: 'download, check and extract a catalogue base image into the cache',
  builder: (y) =>
    withCache(y)
      .positional('name', { type: 'string', default: DEFAULT_BASE_IMAGE, describe: 'catalogue name (images/<name>.yaml)' })
      .option('force', { type: 'boolean', default: false, describe: 'download again even if cached' }) as unknown as Argv<FetchArgs>,
  handler: async (argv) => {
    const out = io();
    const entry = await loadCatalogueEntry(argv.name);
    const bar = progressOf(out);
    let got;
    try {
      got = await fetchImage(entry, { cacheDir: cachePath(argv, out), force: argv.force, onProgress: bar.onProgress });
      bar.done();
    } finally {
      bar.stop();
    }
    if (argv.output === 'json') {
      printJson(out, { name: got.name, path: got.path, cached: got.cached, sha256: got.record.sha256, size: got.record.size });
      return;
    }
    out.out(`${got.cached ? 'already cached' : 'fetched'}: ${got.path} (${formatBytes(got.record.size)}, sha256 ${got.record.sha256})\n`);
    if (!got.cached && entry.image.sha256 === undefined) {
      out.err(`note: ${entry.source} has no image.sha256; recorded ${got.record.sha256} for later \`images verify\`\n`);
    }
  },
};

interface ImportArgs extends ImagesArgs {
  file: string;
  name: string;
  sha256?: string;
}

const importCommand: CommandModule<GlobalArgs, ImportArgs> = {
  command: 'import <file>',
  describe: 'copy a local image (.img, .img.xz, .img.zst, .img.gz) into the cache under a name',
  builder: (y) =>
    withCache(y)
      .positional('file', { type: 'string', demandOption: true, describe: 'image file' })
      .option('name', { type: 'string', demandOption: true, describe: 'name to cache it under (use it as image: in cluster.yaml)' })
      .option('sha256', { type: 'string', describe: 'expected sha256 of <file>' }) as unknown as Argv<ImportArgs>,
  handler: async (argv) => {
    const out = io();
    const bar = progressOf(out);
    let got;
    try {
      got = await importImage(resolve(out.cwd, argv.file), argv.name, {
        cacheDir: cachePath(argv, out),
        onProgress: bar.onProgress,
        ...(argv.sha256 === undefined ? {} : { expectedSha256: argv.sha256.toLowerCase() }),
      });
      bar.done();
    } finally {
      bar.stop();
    }
    if (argv.output === 'json') {
      printJson(out, { name: got.name, path: got.path, sha256: got.record.sha256, size: got.record.size, sourceSha256: got.record.sourceSha256 });
      return;
    }
    out.out(`imported: ${got.path} (${formatBytes(got.record.size)}, sha256 ${got.record.sha256})\n`);
  },
};

interface VerifyArgs extends ImagesArgs {
  name?: string;
}

const verifyCommand: CommandModule<GlobalArgs, VerifyArgs> = {
  command: 'verify [name]',
  describe: 're-hash cached images against the catalogue (or the sha256 recorded on first fetch)',
  builder: (y) =>
    withCache(y).positional('name', { type: 'string', describe: 'image name (default: every cached image)' }) as unknown as Argv<VerifyArgs>,
  handler: async (argv) => {
    const out = io();
    const dir = cachePath(argv, out);
    const names = argv.name !== undefined ? [argv.name] : (await listCachedImages(dir)).map((r) => r.name);
    const catalogue = await loadCatalogue();
    const results: VerifyResult[] = [];
    for (const name of names) {
      const entry = catalogue.find((e) => e.name === name);
      if (argv.name !== undefined && entry === undefined && (await readCacheRecord(dir, name)) === undefined) {
        await loadCatalogueEntry(name); // throws "not in the catalogue" with the known names
      }
      const bar = progressOf(out);
      try {
        results.push(await verifyCachedImage(name, entry, { cacheDir: dir, onProgress: bar.onProgress }));
        bar.done();
      } finally {
        bar.stop();
      }
    }
    const ok = results.every((r) => r.ok);
    if (!ok) setExitCode(EXIT_CODES.checkFailed);
    if (argv.output === 'json') {
      printJson(out, { ok, images: results });
      return;
    }
    if (results.length === 0) out.out(`no cached images in ${dir}\n`);
    for (const r of results) {
      out.out(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name} sha256 ${r.sha256 || '-'} (${r.expectedFrom})\n`);
      for (const p of r.problems) out.out(`     ${p}\n`);
      const path = r.ok ? await cachedImagePath(dir, r.name) : undefined;
      if (path !== undefined && argv.verbose) out.out(`     ${path}\n`);
    }
  },
};

export const imagesCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'images <command>',
  describe: 'manage cached base images (list, fetch, import, verify)',
  builder: (y) =>
    y
      .command(listCommand)
      .command(fetchCommand)
      .command(importCommand)
      .command(verifyCommand)
      .demandCommand(1, 'images needs a subcommand: list, fetch, import or verify'),
  handler: () => undefined,
};
