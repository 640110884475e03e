import { isAbsolute, join } from 'node:path';
import type { CommandModule } from 'yargs';
import { displayPath, loadInventory } from '../app/inventory.js';
import { printJson } from '../app/io.js';
import { renderInventory, writeNodeFiles } from '../app/render.js';
import { DEFAULT_RENDER_DIR } from '../core/defaults.js';
import { checkNodeChoice } from '../core/node-selection.js';
import { allOption, nodesPositional } from './options.js';
import type { GlobalArgs } from './context.js';

interface RenderArgs extends GlobalArgs {
  nodes: string[];
  all: boolean;
  out: string;
}

export const renderCommand: CommandModule<GlobalArgs, RenderArgs> = {
  command: 'render [nodes..]',
  describe: 'render the cloud-init seed and k3s join files of nodes into build/<node>/ for review',
  builder: (y) =>
    y
      .positional('nodes', nodesPositional())
      .option('all', allOption('render every node of the inventory'))
      .option('out', { type: 'string', default: DEFAULT_RENDER_DIR, describe: 'output directory (one sub-directory per node)' })
      .example('$0 render pi-cluster-2', 'write build/pi-cluster-2/{boot,rootfs}/…')
      .example('$0 render --all --out /tmp/review -o json', 'every node, machine-readable summary'),
  handler: async (argv) => {
    const out = argv.ctx.io;
    const nodes = argv.nodes ?? [];
    checkNodeChoice({ names: nodes, all: argv.all }, 'render');
    const inventory = await loadInventory(argv.inventory, { cwd: out.cwd });
    const {
      loaded: { secrets },
      sets,
    } = await renderInventory(inventory, { env: out.env, now: new Date(argv.ctx.clock.now()), ...(argv.all ? {} : { only: nodes }) });
    const outDir = isAbsolute(argv.out) ? argv.out : join(out.cwd, argv.out);
    const written = await writeNodeFiles(outDir, sets, secrets);
    if (argv.output === 'json') {
      printJson(out, {
        out: displayPath(outDir, out.cwd),
        nodes: written.map((w) => ({ ...w, dir: displayPath(w.dir, out.cwd) })),
      });
      return;
    }
    for (const w of written) {
      out.out(`${w.node}  instance-id ${w.instanceId}  → ${displayPath(w.dir, out.cwd)}/\n`);
      const width = Math.max(...w.files.map((f) => f.file.length));
      for (const f of w.files) {
        out.out(`  ${f.file.padEnd(width)}  ${f.mode}  ${f.digest}${f.secret ? '  (secret)' : ''}\n`);
      }
    }
    out.out(`rendered ${written.length} node${written.length === 1 ? '' : 's'} into ${displayPath(outDir, out.cwd)}/\n`);
  },
};
