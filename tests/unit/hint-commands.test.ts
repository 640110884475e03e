/**
 * Every `pi-image <command>` named in a hint, an error message, a --help example, a doc or the
 * README exists: a renamed command cannot leave stale advice behind.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAllCommands } from '../../src/commands/index.js';

const commands = await loadAllCommands();
import { cli } from '../helpers/run-cli.js';
import { REPO_ROOT } from '../helpers/sample-inventory.js';

function files(dir: string, ext: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p, ext));
    else if (ext.test(name)) out.push(p);
  }
  return out;
}

interface Mention {
  where: string;
  words: string[];
}

/** `pi-image x y` in backticks (hints, docs), `$0 x y` in yargs examples, and `pi-image x` lines of code blocks. */
function mentions(path: string): Mention[] {
  const text = readFileSync(path, 'utf8');
  const out: Mention[] = [];
  const add = (index: number, rest: string) => {
    const line = text.slice(0, index).split('\n').length;
    out.push({ where: `${relative(REPO_ROOT, path)}:${line}`, words: rest.trim().split(/\s+/) });
  };
  for (const m of text.matchAll(/`pi-image ([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)?)/g)) add(m.index, m[1]!);
  for (const m of text.matchAll(/'\$0 ([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)?)/g)) add(m.index, m[1]!);
  if (path.endsWith('.md')) {
    let inBlock = false;
    let offset = 0;
    for (const line of text.split('\n')) {
      if (/^\s*```/.test(line)) inBlock = !inBlock;
      else if (inBlock) {
        const m = /^\s*(?:\$ |# )?(?:sudo )?pi-image ([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)?)/.exec(line);
        if (m) add(offset, m[1]!);
      }
      offset += line.length + 1;
    }
  }
  return out;
}

describe('commands named in hints, examples and docs exist', async () => {
  const top = new Map<string, Set<string> | undefined>();
  for (const c of commands) {
    const name = String(c.command).split(' ')[0]!;
    const help = await cli([name, '--help']);
    const section = /^Commands:\n([\s\S]*?)\n\n/m.exec(help.stdout)?.[1] ?? '';
    const subs = [...section.matchAll(new RegExp(`^\\s+pi-image ${name} ([a-z][a-z-]*)`, 'gm'))].map((m) => m[1]!);
    top.set(name, subs.length ? new Set(subs) : undefined);
  }
  const sources = [
    ...files(join(REPO_ROOT, 'src'), /\.ts$/),
    ...files(join(REPO_ROOT, 'docs'), /\.md$/),
    join(REPO_ROOT, 'README.md'),
    ...files(join(REPO_ROOT, 'scripts'), /\.(ts|sh|mjs)$/),
  ];
  const all = sources.flatMap(mentions);

  it('finds the mentions (the scan works)', () => {
    expect(all.length).toBeGreaterThan(50);
    expect(top.get('secrets')?.has('rotate')).toBe(true);
  });

  it('each names an existing command (and sub-command)', () => {
    const wrong: string[] = [];
    for (const m of all) {
      const [cmd, sub] = m.words;
      if (!top.has(cmd!)) {
        wrong.push(`${m.where}: pi-image ${m.words.join(' ')} — no command "${cmd}"`);
        continue;
      }
      const subs = top.get(cmd!);
      if (subs && sub !== undefined && !subs.has(sub)) wrong.push(`${m.where}: pi-image ${m.words.join(' ')} — no "${cmd} ${sub}"`);
    }
    expect(wrong).toEqual([]);
  });
});
