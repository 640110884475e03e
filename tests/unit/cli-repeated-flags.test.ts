/**
 * "Last value wins" for every option of every command: a flag given twice takes its last value
 * (only options declared as arrays collect values), and never ends in an internal error (exit 70).
 * The command tree is walked from src/commands/index.ts, so a new command or option is covered
 * without touching this test. Handlers are replaced by a probe: nothing runs for real.
 */

import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { describe, expect, it } from 'vitest';
import { createParser } from '../../src/cli.js';
import { loadAllCommands } from '../../src/commands/index.js';

const commands = await loadAllCommands();
import { EXIT_CODES } from '../../src/core/errors.js';
import { cli } from '../helpers/run-cli.js';
import { testTempDir } from '../helpers/temp-dir.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Module = CommandModule<any, any>;

interface OptionInfo {
  key: string;
  kind: 'string' | 'number' | 'boolean' | 'array' | 'choices';
  choices?: readonly string[];
  demanded: boolean;
}
interface Leaf {
  path: string[];
  /** the command string, e.g. `flash [node]` */
  command: string;
  options: OptionInfo[];
}

const nameOf = (m: Module): string => String(m.command).split(' ')[0]!;

/** Wraps a module so its builder reports its options and sub-commands, and its handler only records argv. */
function probe(m: Module, path: string[], seen: Map<string, { options: OptionInfo[]; subs: Module[] }>, calls: Record<string, unknown>[]): Module {
  const key = path.join(' ');
  return {
    ...m,
    builder: (y: Argv) => {
      const subs: Module[] = [];
      const realCommand = y.command.bind(y);
      (y as unknown as { command: (s: Module) => Argv }).command = (s: Module) => {
        subs.push(s);
        return realCommand(probe(s, [...path, nameOf(s)], seen, calls));
      };
      let built: Argv;
      try {
        built = typeof m.builder === 'function' ? (m.builder as (y: Argv) => Argv)(y) : y;
      } finally {
        (y as unknown as { command: unknown }).command = realCommand; // yargs reuses the instance for nested levels
      }
      const o = (built as unknown as { getOptions(): Record<string, unknown> }).getOptions() as {
        string: string[];
        number: string[];
        boolean: string[];
        array: string[];
        choices: Record<string, readonly string[]>;
        demandedOptions: Record<string, unknown>;
        key: Record<string, unknown>;
        hiddenOptions: string[];
      };
      const options: OptionInfo[] = Object.keys(o.key)
        .filter((k) => !['help', 'version', '$0'].includes(k))
        .map((k): OptionInfo => {
          const demanded = k in o.demandedOptions;
          if (o.array.includes(k)) return { key: k, kind: 'array', demanded };
          if (o.choices[k]) return { key: k, kind: 'choices', choices: o.choices[k], demanded };
          if (o.boolean.includes(k)) return { key: k, kind: 'boolean', demanded };
          if (o.number.includes(k)) return { key: k, kind: 'number', demanded };
          return { key: k, kind: 'string', demanded };
        });
      seen.set(key, { options, subs });
      return built;
    },
    handler: (argv: Record<string, unknown>) => {
      calls.push({ ...argv, __path: key });
    },
  };
}

async function parse(args: string[]) {
  const seen = new Map<string, { options: OptionInfo[]; subs: Module[] }>();
  const calls: Record<string, unknown>[] = [];
  const tree = commands.map((c) => probe(c, [nameOf(c)], seen, calls));
  let error: unknown;
  try {
    await createParser(args, tree).parseAsync(args, {}, () => undefined);
  } catch (e) {
    error = e;
  }
  return { seen, calls, error };
}

/** Every leaf command with its options, found by asking each level for --help. */
async function leaves(): Promise<Leaf[]> {
  const out: Leaf[] = [];
  const queue: { path: string[]; module: Module }[] = commands.map((c) => ({ path: [nameOf(c)], module: c }));
  while (queue.length) {
    const { path, module } = queue.shift()!;
    const { seen } = await parse([...path, '--help']);
    const info = seen.get(path.join(' '));
    if (!info) throw new Error(`no builder ran for ${path.join(' ')}`);
    if (info.subs.length) for (const s of info.subs) queue.push({ path: [...path, nameOf(s)], module: s });
    else out.push({ path, command: String(module.command), options: info.options });
  }
  return out;
}

/** Positional arguments a leaf needs (`<x>` always; `[x]` too unless the option under test replaces it). */
function positionals(command: string, testing: string, options: readonly OptionInfo[]): string[] {
  const out: string[] = [];
  for (const m of command.matchAll(/[<[]([a-z-]+)(\.\.)?[>\]]/g)) {
    const required = m[0].startsWith('<');
    if (!required && ['image', 'all'].includes(testing)) continue;
    if (!required && command.startsWith('rotate')) continue; // rotate: a name or --all
    const choices = options.find((o) => o.key === m[1])?.choices;
    out.push(choices ? choices[0]! : m[1] === 'action' ? 'list' : m[1] === 'name' && command.startsWith('set') ? 'wifi-psk' : 'pi-cluster-1');
  }
  return out;
}

function twice(o: OptionInfo): { args: string[]; expected: unknown } {
  const flag = o.key.length === 1 ? `-${o.key}` : `--${o.key}`;
  switch (o.kind) {
    case 'number':
      return { args: [flag, '1', flag, '2'], expected: 2 };
    case 'boolean':
      return { args: [`--no-${o.key}`, flag], expected: true };
    case 'choices': {
      const c = o.choices!;
      return { args: [flag, c[0]!, flag, c[c.length - 1]!], expected: c[c.length - 1] };
    }
    default:
      return { args: [flag, '1', flag, '2'], expected: '2' }; // digits: whole-number options coerce text
  }
}

describe('repeated flags: the last value wins, for every option of every command', async () => {
  const all = await leaves();

  it('finds every command (and sub-command) of the CLI', () => {
    expect(all.map((l) => l.path.join(' '))).toEqual(expect.arrayContaining(['validate', 'render', 'build', 'diff', 'boot-test', 'flash', 'netboot', 'verify', 'rebuild']));
  });

  for (const leaf of all) {
    // flags only: not positionals, not array options (they collect), not one-letter or camel-case aliases
    const named = new Set([...leaf.command.matchAll(/[<[]([a-z-]+)/g)].map((m) => m[1]));
    const single = leaf.options.filter((o) => o.kind !== 'array' && o.key.length > 1 && !/[A-Z]/.test(o.key) && !named.has(o.key));
    it(`pi-image ${leaf.path.join(' ')}: ${single.length} options`, async () => {
      expect(single.length).toBeGreaterThanOrEqual(3); // at least the global options
      for (const o of single) {
        const { args, expected } = twice(o);
        const demanded = leaf.options
          .filter((d) => d.demanded && d.key !== o.key && !named.has(d.key))
          .flatMap((d) => [`--${d.key}`, d.kind === 'number' ? '1' : 'x']);
        const argv = [...leaf.path, ...positionals(leaf.command, o.key, leaf.options), ...demanded, ...args];
        const r = await parse(argv);
        const call = r.calls.find((c) => c.__path === leaf.path.join(' '));
        expect(r.error, `${argv.join(' ')}: ${String(r.error)}`).toBeUndefined();
        expect(String(call?.[o.key]), argv.join(' ')).toBe(String(expected));
      }
    });
  }
});

describe('a repeated flag never ends in an internal error', () => {
  it('`pi-image netboot pi-cluster-3 --root a --root b` is handled (no exit 70)', async () => {
    const cwd = testTempDir('pi-image-flags-');
    const r = await cli(['netboot', 'pi-cluster-3', '--root', 'a', '--root', 'b'], { cwd });
    expect(r.code).not.toBe(EXIT_CODES.internal);
    expect(r.code).toBe(EXIT_CODES.input); // no inventory in an empty directory
    expect(r.stderr).not.toContain('internal error');
  });

  it('`-o json -o text` prints text', async () => {
    const cwd = testTempDir('pi-image-flags-');
    const r = await cli(['validate', '-o', 'json', '-o', 'text', '-i', 'missing', '-i', join(cwd, 'nowhere')], { cwd });
    expect(r.code).toBe(EXIT_CODES.input);
    expect(r.stderr).toContain(`inventory directory ${join(cwd, 'nowhere')} does not exist`);
  });
});
