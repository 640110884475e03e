/**
 * `pi-image images list|fetch|import|verify`: the base-image cache.
 *   list                      catalogue entries and imported images, with cache state
 *   fetch [name] [--force]    download + verify + extract into the cache (resumes a partial download)
 *   import <file> --name N    copy/decompress a local image into the cache, recording its sha256
 *   verify [name]             re-hash cached images (exit 1 when one does not match)
 */
import type { Argv, CommandModule } from 'yargs';
import { printJson, type Io } from '../app/io.js';
import {
  type ImagesOptions,
  type Progress,
  createProgress,
  formatBytes,
  runImagesFetch,
  runImagesImport,
  runImagesList,
  runImagesVerify,
} from '../app/images.js';
import { ChecksFailedError } from '../core/errors.js';
import type { GlobalArgs } from './context.js';

export const DEFAULT_BASE_IMAGE = 'raspios-lite-arm64-trixie';

interface ImagesArgs extends GlobalArgs {
  cache?: string;
}

function options(argv: ImagesArgs, out: Io, onProgress?: (p: Progress) => void): ImagesOptions {
  return {
    env: out.env,
    cwd: out.cwd,
    ...(argv.cache === undefined ? {} : { cache: argv.cache }),
    ...(onProgress ? { onProgress } : {}),
    onNote: (message) => out.err(`${message}\n`),
  };
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
    const out = argv.ctx.io;
    const r = await runImagesList(options(argv, out));
    if (argv.output === 'json') {
      printJson(out, r);
      return;
    }
    out.out(`cache: ${r.cache}\n`);
    for (const i of r.images) {
      const state = i.cached
        ? `cached ${formatBytes(i.size ?? 0)}${i.verifiedAt ? `, verified ${i.verifiedAt}` : ''}`
        : i.missing
          ? `not cached (recorded, but the image file is missing: run \`pi-image images ${i.catalogue ? 'fetch' : 'import FILE --name'} ${i.name}\`)`
          : 'not cached';
      out.out(`${i.name.padEnd(32)} ${(i.release ?? '').padEnd(11)} ${state}${i.description ? `  ${i.description}` : ''}\n`);
    }
  },
};

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
    const out = argv.ctx.io;
    const bar = progressOf(out);
    let got;
    let entry;
    try {
      ({ image: got, entry } = await runImagesFetch({ ...options(argv, out, bar.onProgress), name: argv.name, force: argv.force }));
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
    const out = argv.ctx.io;
    const bar = progressOf(out);
    let got;
    try {
      got = await runImagesImport({
        ...options(argv, out, bar.onProgress),
        file: argv.file,
        name: argv.name,
        ...(argv.sha256 === undefined ? {} : { sha256: argv.sha256 }),
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
    const out = argv.ctx.io;
    let bar: ReturnType<typeof progressOf> | undefined;
    let r;
    try {
      r = await runImagesVerify({
        ...options(argv, out, (p) => bar?.onProgress(p)),
        ...(argv.name === undefined ? {} : { name: argv.name }),
        onStart: () => {
          bar = progressOf(out);
        },
        onDone: () => {
          bar?.done();
          bar?.stop();
          bar = undefined;
        },
      });
    } finally {
      bar?.stop();
    }
    const failed = () => new ChecksFailedError(`${r.images.filter((i) => !i.ok).length} cached image(s) failed verification`, { reported: true });
    if (argv.output === 'json') {
      printJson(out, { ok: r.ok, images: r.images });
      if (!r.ok) throw failed();
      return;
    }
    if (r.images.length === 0) out.out(`no cached images in ${r.cache}\n`);
    for (const i of r.images) {
      out.out(`${i.ok ? 'ok  ' : 'FAIL'} ${i.name} sha256 ${i.sha256 || '-'} (${i.expectedFrom})\n`);
      for (const p of i.problems) out.out(`     ${p}\n`);
      if (i.ok && argv.verbose) out.out(`     ${i.path}\n`);
    }
    if (!r.ok) throw failed();
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
