import type { CommandModule } from 'yargs';
import { checkInventory } from '../app/inventory.js';
import { printJson } from '../app/io.js';
import { InputError } from '../core/errors.js';
import { formatDiagnostic } from '../core/inventory/diagnostics.js';
import type { GlobalArgs } from './context.js';

interface ValidateArgs extends GlobalArgs {
  strict: boolean;
}

export const validateCommand: CommandModule<GlobalArgs, ValidateArgs> = {
  command: 'validate',
  describe: 'check the inventory (YAML syntax, schema, cross-field rules) and report every problem',
  builder: (y) =>
    y
      .option('strict', { type: 'boolean', default: false, describe: 'treat warnings as errors' })
      .example('$0 validate', 'check nodes/')
      .example('$0 validate -i site-b/nodes --strict -o json', 'fail on warnings too, machine-readable'),
  handler: async (argv) => {
    const out = argv.ctx.io;
    const result = await checkInventory(argv.inventory, { cwd: out.cwd });
    const failed = result.errors.length > 0 || (argv.strict && result.warnings.length > 0);
    if (argv.output === 'json') {
      printJson(out, {
        valid: !failed,
        errors: result.errors,
        warnings: result.warnings,
        ...(result.inventory
          ? {
              cluster: result.inventory.cluster.name,
              nodes: result.inventory.nodes.map((n) => ({ hostname: n.hostname, role: n.role })),
            }
          : {}),
      });
    } else {
      for (const d of result.errors) out.err(`error: ${formatDiagnostic(d)}\n`);
      for (const d of result.warnings) out.err(`warning: ${formatDiagnostic(d)}\n`);
      if (result.inventory && !failed) {
        const inv = result.inventory;
        const servers = inv.nodes.filter((n) => n.role === 'server').length;
        out.out(
          `inventory ${argv.inventory} is valid: cluster ${inv.cluster.name}, ${inv.nodes.length} nodes (${servers} server${servers === 1 ? '' : 's'}, ${inv.nodes.length - servers} agent${inv.nodes.length - servers === 1 ? '' : 's'})` +
            (result.warnings.length ? `, ${result.warnings.length} warning${result.warnings.length === 1 ? '' : 's'}` : '') +
            '\n',
        );
      } else {
        const e = result.errors.length;
        const w = result.warnings.length;
        out.err(`${e} error${e === 1 ? '' : 's'}, ${w} warning${w === 1 ? '' : 's'}${argv.strict && w ? ' (--strict: warnings are fatal)' : ''}\n`);
      }
    }
    if (failed) throw new InputError(`the inventory in ${argv.inventory} is not valid`, { reported: true });
  },
};
