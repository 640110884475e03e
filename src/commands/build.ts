import { join, isAbsolute } from 'node:path';
import type { CommandModule } from 'yargs';
import { buildImages } from '../app/build.js';
import { loadInventory } from '../app/inventory.js';
import { printJson } from '../app/io.js';
import { createProgress, type ProgressTask } from '../app/progress.js';
import { describePlan } from '../core/bake.js';
import { DEFAULT_BUILD_JOBS, DEFAULT_COMPRESS } from '../core/defaults.js';
import { checkNodeChoice } from '../core/node-selection.js';
import { allOption, buildDirOption, nodesPositional } from './options.js';
import { toolVersion } from '../app/version.js';
import { type GlobalArgs, wholeNumber } from './context.js';

interface BuildArgs extends GlobalArgs {
  nodes: string[];
  all: boolean;
  base?: string;
  'build-dir': string;
  /** deprecated spelling of --build-dir */
  out?: string;
  compress: 'none' | 'xz' | 'zstd';
  jobs: number;
  'dry-run': boolean;
  'verify-base': boolean;
}

export const buildCommand: CommandModule<GlobalArgs, BuildArgs> = {
  command: 'build [nodes..]',
  describe: 'bake a ready-to-flash image per node (no root needed): build/images/<node>.img + <node>.json',
  builder: (y) =>
    y
      .positional('nodes', nodesPositional())
      .option('all', allOption())
      .option('base', { type: 'string', describe: 'base image: catalogue name (cached) or path to a raw .img; default: cluster.yaml image' })
      .option('build-dir', buildDirOption('where the images and build records go (the directory flash, diff, netboot read)'))
      .option('out', { type: 'string', hidden: true, describe: 'deprecated: use --build-dir' })
      .option('compress', { choices: ['none', 'xz', 'zstd'] as const, default: DEFAULT_COMPRESS as typeof DEFAULT_COMPRESS, describe: 'compress the images' })
      .option('jobs', { alias: 'j', type: 'string', default: String(DEFAULT_BUILD_JOBS), coerce: wholeNumber('--jobs', 1, 64), describe: 'nodes baked in parallel' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan, write nothing' })
      .option('verify-base', { type: 'boolean', default: false, describe: 're-hash the cached base even when its file is unchanged since it was hashed' })
      .example('$0 build pi-cluster-4', 'one image from the cached base')
      .example('$0 build --all --base ./raspios.img --compress zstd', 'every node, offline base, compressed'),
  handler: async (argv) => {
    const out = argv.ctx.io;
    checkNodeChoice({ names: argv.nodes, all: argv.all }, 'build');
    const inventory = await loadInventory(argv.inventory, { cwd: out.cwd });
    if (argv.out !== undefined) out.err('note: --out is deprecated for build; use --build-dir (the name every command uses for the image directory)\n');
    const dir = argv.out ?? argv['build-dir'];
    const outDir = isAbsolute(dir) ? dir : join(out.cwd, dir);
    const progress = createProgress(out, { quiet: argv['dry-run'], everyMs: 10_000, labelWidth: 14 });
    const tasks = new Map<string, ProgressTask>();
    const started = Date.now();
    let result;
    try {
      result = await buildImages({
        inventory,
        nodes: argv.nodes,
        ...(argv.base ? { base: argv.base } : {}),
        outDir,
        compress: argv.compress,
        jobs: argv.jobs,
        dryRun: argv['dry-run'],
        verifyBase: argv['verify-base'],
        env: out.env,
        cwd: out.cwd,
        now: new Date(argv.ctx.clock.now()),
        toolVersion: toolVersion(),
        onNote: (message) => out.err(`${message}\n`),
        onProgress: (node, phase, fraction) => {
          let t = tasks.get(node);
          if (!t) tasks.set(node, (t = progress.task(node, 100)));
          if (fraction >= 1) t.done(phase);
          else t.update(Math.round(fraction * 100), phase);
        },
      });
    } finally {
      progress.stop();
    }
    if (argv['dry-run']) {
      if (argv.output === 'json') printJson(out, { dryRun: true, plans: result.plans });
      else for (const p of result.plans) out.out(`${describePlan(p).join('\n')}\n`);
      return;
    }
    if (argv.output === 'json') {
      printJson(out, { images: result.records });
      return;
    }
    for (const r of result.records) {
      out.out(`${r.node}: ${r.image.path} (${(r.image.size / 1048576).toFixed(0)} MiB, sha256 ${r.image.sha256.slice(0, 16)}…, instance ${r.instanceId})\n`);
    }
    const secretFiles = [...new Set(result.records.flatMap((r) => r.files.filter((f) => f.secret).map((f) => (f.target === 'boot' ? `boot partition /${f.path}` : `root file system ${f.path}`))))];
    if (secretFiles.length > 0) {
      out.out(`secrets inside the images (tokens, node password${result.records.some((r) => r.files.some((f) => f.secret && f.path === 'network-config')) ? ', Wi-Fi passphrase' : ''}): ${secretFiles.join(', ')}; the image files are owner-only (0600): keep copies private\n`);
    }
    out.out(`built ${result.records.length} image(s) in ${((Date.now() - started) / 1000).toFixed(1)} s; flash with \`pi-image flash <node> --device /dev/sdX\`\n`);
  },
};
