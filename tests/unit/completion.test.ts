/**
 * `pi-image completion bash|zsh`: the scripts, the candidates yargs answers from the real command
 * set, and the bash and zsh scripts themselves run in those shells against the CLI (zsh for real:
 * an interactive zsh in a pseudo-terminal with compinit, typing TAB).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAllCommands } from '../../src/commands/index.js';
import { completionScript, refineCompletions, shellFromEnv } from '../../src/core/completion.js';
import { cli } from '../helpers/run-cli.js';
import { REPO_ROOT } from '../helpers/sample-inventory.js';

const commands = await loadAllCommands();

const names = commands.map((c) => String(c.command).split(' ')[0]!);
const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

/** A temp dir holding a `pi-image` that runs this checkout's CLI (for PATH) and the shell's completion script. */
function shellSetup(shell: 'bash' | 'zsh', scriptName: string): { root: string; script: string } {
  const root = mkdtempSync(join(tmpdir(), `pi-image-completion-${shell}-`));
  roots.push(root);
  const bin = join(root, 'pi-image');
  writeFileSync(bin, `#!/bin/sh\nexec ${REPO_ROOT}/node_modules/.bin/tsx ${REPO_ROOT}/src/cli.ts "$@"\n`);
  chmodSync(bin, 0o755);
  const script = join(root, scriptName);
  writeFileSync(script, completionScript(shell));
  return { root, script };
}

describe('pi-image completion', () => {
  it('prints the bash and zsh scripts; without an argument takes the shell from $SHELL', async () => {
    const bash = await cli(['completion', 'bash']);
    expect(bash.code).toBe(0);
    expect(bash.stdout).toBe(completionScript('bash'));
    expect(bash.stdout).toContain('complete -o bashdefault -o default -F _pi_image_completions pi-image');
    const zsh = await cli(['completion', 'zsh']);
    expect(zsh.stdout.split('\n')[0]).toBe('#compdef pi-image');
    expect(zsh.stdout).toContain('compdef _pi_image_completions pi-image');
    const fromEnv = await cli(['completion'], { env: { ...process.env, SHELL: '/usr/bin/zsh' } });
    expect(fromEnv.stdout).toBe(zsh.stdout);
    const unknown = await cli(['completion'], { env: { ...process.env, SHELL: '/usr/bin/fish' } });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('which shell? $SHELL is "/usr/bin/fish"');
    expect((await cli(['completion', 'fish'])).code).toBe(2);
    expect(shellFromEnv('/bin/bash')).toBe('bash');
  });

  it('completes every command, and nothing hidden', async () => {
    const r = await cli(['--get-yargs-completions', 'pi-image', '']);
    expect(r.code).toBe(0);
    const words = r.stdout.trim().split('\n');
    for (const n of names) expect(words).toContain(n);
    expect(words).not.toContain('__complete');
  });

  it("completes a command's options (short aliases as -x) and the inventory's node names", async () => {
    const r = await cli(['--get-yargs-completions', 'pi-image', 'flash', ''], { cwd: REPO_ROOT });
    const words = r.stdout.trim().split('\n');
    expect(words).toEqual(expect.arrayContaining(['--device', '--image', '--yes', '-y', '-i', '--inventory', 'pi-cluster-1', 'pi-cluster-4']));
    expect(words).not.toContain('--y');
    const values = await cli(['--get-yargs-completions', 'pi-image', 'validate', '-o', '']);
    expect(values.stdout.trim().split('\n')).toEqual(['text', 'json']);
  });

  it('offers node names only where a node goes', () => {
    const nodes = ['a-1', 'a-2'];
    expect(refineCompletions({ candidates: ['--all'], words: ['pi-image', 'build', ''], nodes })).toEqual(['--all', 'a-1', 'a-2']);
    expect(refineCompletions({ candidates: [], words: ['pi-image', 'build', 'a-1', ''], nodes })).toEqual(['a-2']);
    expect(refineCompletions({ candidates: [], words: ['pi-image', 'build', '--base', ''], nodes })).toEqual([]);
    expect(refineCompletions({ candidates: ['--strict'], words: ['pi-image', 'validate', ''], nodes })).toEqual(['--strict']);
    expect(refineCompletions({ candidates: ['--i', '--v:more detail'], words: ['pi-image', ''], nodes })).toEqual(['-i', '-v:more detail']);
  });

  // the generated script itself, in a real bash, calling the CLI through a pi-image on PATH
  it.skipIf(!existsSync('/bin/bash'))('the bash script completes through the CLI', () => {
    const { root, script } = shellSetup('bash', 'completion.bash');
    const complete = (line: string) =>
      execFileSync(
        'bash',
        ['-c', `source ${script}; COMP_WORDS=(${line}); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _pi_image_completions; printf '%s\\n' "\${COMPREPLY[@]}"`],
        { cwd: REPO_ROOT, env: { ...process.env, PATH: `${root}:${process.env.PATH ?? ''}` }, encoding: 'utf8' },
      )
        .trim()
        .split('\n');
    expect(complete("pi-image va")).toEqual(['validate']);
    expect(complete("pi-image flash --dev")).toEqual(['--device']);
    expect(complete("pi-image build pi-cluster-")).toEqual(['pi-cluster-1', 'pi-cluster-2', 'pi-cluster-3', 'pi-cluster-4']);
  });

  // the zsh script in a real interactive zsh (compinit, the script sourced as the README says), driven
  // through a pseudo-terminal (zsh/zpty): the line typed with a TAB, then what zsh shows after it
  it.skipIf(!existsSync('/usr/bin/zsh') && !existsSync('/bin/zsh'))('the zsh script completes through the CLI', () => {
    const { root, script } = shellSetup('zsh', '_pi-image');
    const driver = join(root, 'drive.zsh');
    // the prompt is written as "PI""READY" so the echo of the setup line never matches it; each read
    // waits for its pattern (no timing), the spawn's timeout only stops a hung zsh
    writeFileSync(
      driver,
      [
        'zmodload zsh/zpty',
        `zpty z 'TERM=dumb zsh -f -i'`,
        `zpty -w z 'PS1="PI""READY> "; PATH=${root}:$PATH; autoload -U compinit; compinit -u -D; source ${script}'`,
        `zpty -r z out '*PIREADY> '`,
        `zpty -w -n z "$1$3"`,
        `zpty -r z out "*$2*"`,
        'print -r -- "$out"',
        'zpty -d z',
      ].join('\n'),
    );
    const complete = (typed: string, expectSeen: string, tabs = 1) =>
      execFileSync('zsh', ['-f', driver, typed, expectSeen, '\t'.repeat(tabs)], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 300_000 }).replace(new RegExp(String.fromCharCode(27) + '\\[[0-9;?]*[a-zA-Z]', 'g'), '');
    // one candidate: zsh puts it on the line (what was typed holds no candidate: only completion writes it)
    expect(complete('pi-image va', 'validate')).toMatch(/pi-image validate/);
    expect(complete('pi-image flash --dev', '--device')).toMatch(/pi-image flash --device/);
    // several: the first TAB completes the common part, the second lists them all below the line
    const nodes = complete('pi-image build pi-clu', 'pi-cluster-4', 2);
    expect(nodes).toMatch(/pi-image build pi-cluster-/);
    for (const n of ['pi-cluster-1', 'pi-cluster-2', 'pi-cluster-3', 'pi-cluster-4']) expect(nodes).toContain(n);
  }, 600_000);
});
