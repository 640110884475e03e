/**
 * Shell completion scripts for `pi-image completion bash|zsh`. They ask the CLI itself for the
 * candidates (`pi-image --get-yargs-completions <words…>`, answered by yargs from the real command
 * and option definitions, so completion never drifts from the command set). The scripts follow
 * yargs' own templates (yargs/lib/completion-templates.ts, MIT), with the shell chosen by argument
 * instead of by $SHELL, so a script can be generated for another shell than the current one.
 */
export const COMPLETION_SHELLS = ['bash', 'zsh'] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

/** The yargs option that returns completion candidates. */
export const COMPLETION_KEY = 'get-yargs-completions';

const BASH = `###-begin-{{name}}-completions-###
#
# {{name}} command completion for bash.
#
# Installation: {{name}} completion bash >> ~/.bashrc
#    or: {{name}} completion bash > /etc/bash_completion.d/{{name}}
#
_{{fn}}_completions()
{
    local cur_word args type_list

    cur_word="\${COMP_WORDS[COMP_CWORD]}"
    args=("\${COMP_WORDS[@]}")

    # ask {{name}} for the candidates
    mapfile -t type_list < <({{name}} --${COMPLETION_KEY} "\${args[@]}" 2>/dev/null)
    mapfile -t COMPREPLY < <(compgen -W "$( printf '%q ' "\${type_list[@]}" )" -- "\${cur_word}" |
        awk '/ / { print "\\""$0"\\"" } /^[^ ]+$/ { print $0 }')

    # no candidate: fall back to file names (paths for --image, -i, --ssh-key, …)
    if [ \${#COMPREPLY[@]} -eq 0 ]; then
      COMPREPLY=()
    fi

    return 0
}
complete -o bashdefault -o default -F _{{fn}}_completions {{name}}
###-end-{{name}}-completions-###
`;

const ZSH = `#compdef {{name}}
###-begin-{{name}}-completions-###
#
# {{name}} command completion for zsh.
#
# Installation: {{name}} completion zsh >> ~/.zshrc
#    or: {{name}} completion zsh > "\${fpath[1]}/_{{name}}"
#
_{{fn}}_completions()
{
  local reply
  local si=$IFS
  IFS=$'\\n' reply=($(COMP_CWORD="$((CURRENT-1))" COMP_LINE="$BUFFER" COMP_POINT="$CURSOR" SHELL=zsh {{name}} --${COMPLETION_KEY} "\${words[@]}" 2>/dev/null))
  IFS=$si
  if [[ \${#reply} -gt 0 ]]; then
    _describe 'values' reply
  else
    _default
  fi
}
if [[ "\${zsh_eval_context[-1]}" == "loadautofunc" ]]; then
  _{{fn}}_completions "$@"
else
  compdef _{{fn}}_completions {{name}}
fi
###-end-{{name}}-completions-###
`;

export function completionScript(shell: CompletionShell, name = 'pi-image'): string {
  const fn = name.replace(/[^A-Za-z0-9_]/g, '_');
  return (shell === 'zsh' ? ZSH : BASH).replaceAll('{{name}}', name).replaceAll('{{fn}}', fn);
}

/** The shell of $SHELL when it is one we have a script for. */
export function shellFromEnv(shellPath: string | undefined): CompletionShell | undefined {
  const base = (shellPath ?? '').slice((shellPath ?? '').lastIndexOf('/') + 1);
  return (COMPLETION_SHELLS as readonly string[]).includes(base) ? (base as CompletionShell) : undefined;
}

/** Commands whose positional arguments are node hostnames. */
const NODE_COMMANDS = new Set(['build', 'render', 'diff', 'boot-test', 'flash', 'netboot', 'rebuild', 'status']);

/**
 * Final candidate list: yargs lists one-letter aliases as `--i`, `--v`: those become `-i`, `-v`;
 * after a command that takes node names, the inventory's hostnames are offered too (unless the word
 * being completed is an option or the value of one).
 */
export function refineCompletions(opts: {
  candidates: readonly string[];
  /** words typed so far, program name first (what the script passes) */
  words: readonly string[];
  /** hostnames of the inventory, when it could be read */
  nodes: readonly string[];
}): string[] {
  const out = opts.candidates.map((c) => (/^--[A-Za-z](:|$)/.test(c) ? c.slice(1) : c));
  const words = opts.words.slice(1);
  const current = words[words.length - 1] ?? '';
  const previous = words[words.length - 2] ?? '';
  const command = words.find((w) => !w.startsWith('-'));
  if (command !== undefined && command !== current && NODE_COMMANDS.has(command) && !current.startsWith('-') && !previous.startsWith('-')) {
    for (const n of opts.nodes) if (!words.slice(0, -1).includes(n)) out.push(n);
  }
  return out;
}
