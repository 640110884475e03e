import { readdirSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { CommandModule } from 'yargs';
import { COMPLETION_SHELLS, type CompletionShell, completionScript, refineCompletions, shellFromEnv } from '../core/completion.js';
import { InputError } from '../core/errors.js';
import type { GlobalArgs } from './context.js';

interface CompletionArgs extends GlobalArgs {
  shell?: CompletionShell;
}

export const completionCommand: CommandModule<GlobalArgs, CompletionArgs> = {
  command: 'completion [shell]',
  describe: 'print the shell completion script (bash or zsh) for commands, options and values',
  builder: (y) =>
    y
      .positional('shell', { choices: COMPLETION_SHELLS, describe: 'shell to complete for (default: the one in $SHELL)' })
      .example('$0 completion bash >> ~/.bashrc', 'complete pi-image in new bash shells')
      .example('$0 completion zsh > "${fpath[1]}/_pi-image"', 'install for zsh (or append to ~/.zshrc)'),
  handler: (argv) => {
    const out = argv.ctx.io;
    const shell = argv.shell ?? shellFromEnv(out.env.SHELL);
    if (shell === undefined) {
      throw new InputError(`which shell? $SHELL is ${out.env.SHELL ? `"${out.env.SHELL}"` : 'not set'}`, {
        hint: `name it: \`pi-image completion bash\` or \`pi-image completion zsh\``,
      });
    }
    out.out(completionScript(shell));
  },
};

/** Hostnames of the inventory named on the command line (or nodes/): its *.yaml files but cluster.yaml. */
function inventoryNodes(words: readonly string[], cwd: string): string[] {
  const at = words.findIndex((w) => w === '-i' || w === '--inventory');
  const dir = (at >= 0 ? words[at + 1] : undefined) ?? 'nodes';
  try {
    return readdirSync(isAbsolute(dir) ? dir : join(cwd, dir))
      .filter((f) => /\.ya?ml$/.test(f) && !/^cluster\.ya?ml$/.test(f) && !f.startsWith('.'))
      .map((f) => f.replace(/\.ya?ml$/, ''))
      .sort();
  } catch {
    return [];
  }
}

/** yargs' completion hook (`.completion(cmd, false, completeWords(cwd, words))`): its own candidates, refined. */
export function completeWords(cwd: string, words: readonly string[]) {
  return (
    _current: string,
    _argv: unknown,
    defaults: (onCompleted?: (err: Error | null, list?: string[]) => void) => void,
    done: (list: string[]) => void,
  ): void => {
    defaults((_err, list) => done(refineCompletions({ candidates: list ?? [], words, nodes: inventoryNodes(words, cwd) })));
  };
}
