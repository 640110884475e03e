/**
 * Every `pi-image …` example in README.md, docs/ (runbooks included), the catalogue comments and
 * every command's --help names a command that exists and only flags that command takes; the
 * offline-capable ones are run. The help's Examples section is checked to keep each example on one
 * line (not wrapped in the middle of a command).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/run-cli.js';
import { REPO_ROOT } from '../helpers/sample-inventory.js';

interface Example {
  where: string;
  words: string[];
}

function markdownFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...markdownFiles(path));
    else if (name.endsWith('.md')) out.push(path);
  }
  return out;
}

/** Shell words of one command, up to the first pipe, redirection, `;`, `&&` or comment. */
function words(command: string): string[] {
  const out: string[] = [];
  for (const raw of command.trim().split(/\s+/)) {
    if (/^(\||\|\||&&|;|#.*|\d?>>?.*|<.*|\$\(.*|\)|`.*)$/.test(raw)) break;
    const w = raw.replace(/[[\]`;)]/g, '').replace(/^"(.*)"$/, '$1');
    if (w !== '') out.push(w);
    if (/[;`)]$/.test(raw)) break;
  }
  return out;
}

const COMMAND_START = /^(?:\$\s+)?(?:sudo\s+(?:-E\s+)?)?(?:\.\/bin\/)?pi-image(?:\s+(.*))?$/;

/** Global options given before the command (`pi-image -i site-b validate`) are not part of its path. */
function withoutLeadingGlobals(w: string[]): string[] {
  const out = [...w];
  while (out.length > 0 && /^(-i|--inventory|-o|--output)$/.test(out[0]!)) out.splice(0, 2);
  while (out.length > 0 && /^(-v|--verbose)$/.test(out[0]!)) out.shift();
  return out;
}

/** `pi-image …` commands in a text: lines of code blocks (fenced or indented) and inline code spans that start with the command. */
function examplesIn(text: string, file: string): Example[] {
  const out: Example[] = [];
  let fenced = false;
  const add = (command: string, i: number) => {
    const m = COMMAND_START.exec(command.trim());
    if (!m) return;
    const w = withoutLeadingGlobals(words(m[1] ?? ''));
    if (w.length > 0) out.push({ where: `${file}:${i + 1}`, words: w });
  };
  text.split('\n').forEach((line, i) => {
    if (/^\s*```/.test(line)) {
      fenced = !fenced;
      return;
    }
    if (fenced || /^( {4}|\t)/.test(line)) {
      // a code line: the command at its start, or after a pipe / && / $(
      for (const part of line.split(/\|\||&&|\||\$\(|;/)) add(part.replace(/#.*$/, ''), i);
      return;
    }
    for (const m of line.matchAll(/`([^`]+)`/g)) add(m[1]!, i);
  });
  return out;
}

const helpCache = new Map<string, string>();
async function help(path: string[]): Promise<string> {
  const key = path.join(' ');
  let text = helpCache.get(key);
  if (text === undefined) {
    const r = await cli([...path, '--help']);
    text = r.stdout;
    helpCache.set(key, text);
  }
  return text;
}

function section(text: string, title: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(`${title}:`);
  if (start === -1) return [];
  const end = lines.findIndex((l, i) => i > start && /^\S/.test(l));
  return lines.slice(start + 1, end === -1 ? undefined : end);
}

/** The command path an example names (`images fetch`, `secrets recipients add`) and its flags from --help. */
async function resolve(example: string[]): Promise<{ path: string[]; flags: Set<string> } | string> {
  if (example[0]!.startsWith('-')) {
    // top-level flags only (`pi-image --version`)
    const flags = new Set(section(await help([]), 'Options').flatMap((l) => [...l.matchAll(/(?:^|\s|,)(--?[a-zA-Z][\w-]*)/g)].map((m) => m[1]!)));
    return { path: [], flags };
  }
  const top = section(await help([]), 'Commands').map((l) => /^\s+pi-image ([a-z-]+)/.exec(l)?.[1]).filter(Boolean);
  if (!top.includes(example[0]!)) return `no command "${example[0]}"`;
  const path = [example[0]!];
  for (;;) {
    const subs = section(await help(path), 'Commands')
      .map((l) => new RegExp(`^\\s+pi-image ${path.join(' ')} ([a-z-]+)`).exec(l)?.[1])
      .filter((s): s is string => s !== undefined);
    const next = example[path.length];
    if (subs.length === 0 || next === undefined || next.startsWith('-')) break;
    if (!subs.includes(next)) return `no command "${[...path, next].join(' ')}" (known: ${subs.join(', ')})`;
    path.push(next);
  }
  const flags = new Set<string>();
  for (const l of section(await help(path), 'Options').concat(section(await help(path), 'Positionals'))) {
    for (const m of l.matchAll(/(?:^|\s|,)(--?[a-zA-Z][\w-]*)/g)) if (l.trimStart().startsWith('-')) flags.add(m[1]!);
  }
  return { path, flags };
}

function flagProblems(example: string[], flags: Set<string>): string[] {
  const problems: string[] = [];
  for (const w of example) {
    if (!w.startsWith('-') || w === '-' || w === '--' || /^-\d/.test(w)) continue;
    const name = w.split('=')[0]!;
    const known = flags.has(name) || (name.startsWith('--no-') && flags.has(`--${name.slice(5)}`));
    if (!known) problems.push(`unknown flag ${name}`);
  }
  return problems;
}

const files = [join(REPO_ROOT, 'README.md'), ...markdownFiles(join(REPO_ROOT, 'docs')), join(REPO_ROOT, 'images', 'raspios-lite-arm64-trixie.yaml')];
const docExamples = files.flatMap((f) => examplesIn(readFileSync(f, 'utf8'), relative(REPO_ROOT, f)));

const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

describe('command examples in README, docs and --help', () => {
  it('finds the examples', () => {
    expect(docExamples.length).toBeGreaterThan(60);
    expect(docExamples.some((e) => e.where.startsWith('README.md') && e.words[0] === 'build')).toBe(true);
  });

  it('every example in README and docs names a real command with its real flags', async () => {
    const problems: string[] = [];
    for (const e of docExamples) {
      const r = await resolve(e.words);
      if (typeof r === 'string') problems.push(`${e.where}: pi-image ${e.words.join(' ')}: ${r}`);
      else for (const p of flagProblems(e.words, r.flags)) problems.push(`${e.where}: pi-image ${e.words.join(' ')}: ${p}`);
    }
    expect(problems).toEqual([]);
  });

  it('every --help example names real flags and stays on one line', async () => {
    const problems: string[] = [];
    const paths: string[][] = [[]];
    for (let i = 0; i < paths.length; i++) {
      const path = paths[i]!;
      const text = await help(path);
      for (const l of section(text, 'Commands')) {
        const m = new RegExp(`^\\s+pi-image ${path.length ? `${path.join(' ')} ` : ''}([a-z-]+)`).exec(l);
        if (m) paths.push([...path, m[1]!]);
      }
      for (const l of section(text, 'Examples')) {
        if (l.trim() === '' || /^\s{2}# /.test(l)) continue; // kubectl style: `# description`, then the command
        if (!/^\s{2}pi-image /.test(l)) {
          problems.push(`pi-image ${path.join(' ')} --help: example line does not start with the command (wrapped?): "${l.trim()}"`);
          continue;
        }
        const command = l.trim();
        const w = words(command.replace(/^pi-image\s+/, ''));
        const r = await resolve(w);
        if (typeof r === 'string') problems.push(`pi-image ${path.join(' ')} --help: ${command}: ${r}`);
        else for (const p of flagProblems(w, r.flags)) problems.push(`pi-image ${path.join(' ')} --help: ${command}: ${p}`);
      }
    }
    expect(paths.length).toBeGreaterThan(15);
    expect(problems).toEqual([]);
  });

  it('runs the offline-capable examples (validate, init, completion, images list, --help)', async () => {
    const runnable = docExamples.filter(
      (e) =>
        ['validate', 'completion', 'init'].includes(e.words[0]!) ||
        (e.words[0] === 'images' && e.words[1] === 'list') ||
        e.words.includes('--help'),
    );
    expect(runnable.length).toBeGreaterThan(3);
    const failures: string[] = [];
    for (const e of runnable) {
      if (e.words.some((w) => /[<>…]|\bDIR\b|\bFILE\b/.test(w))) continue; // placeholders
      const root = mkdtempSync(join(tmpdir(), 'pi-image-docs-'));
      roots.push(root);
      // init writes into a fresh directory; the others read the sample inventory
      const cwd = e.words[0] === 'init' ? root : REPO_ROOT;
      const r = await cli(e.words, { cwd, env: { ...process.env, PI_IMAGE_CACHE: join(root, 'cache'), HOME: root } });
      if (r.code === 2 && /unknown|not enough|missing|invalid values|error: .*argument/i.test(r.stderr)) failures.push(`${e.where}: ${e.words.join(' ')}: ${r.stderr.trim()}`);
      if (r.code === 70) failures.push(`${e.where}: ${e.words.join(' ')}: internal error`);
    }
    expect(failures).toEqual([]);
  });
});
