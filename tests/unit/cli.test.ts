/** The CLI shell: --version, --help on every command, usage errors → exit 2, one error format. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAllCommands } from '../../src/commands/index.js';
import { EXIT_CODES } from '../../src/core/errors.js';
import { cli } from '../helpers/run-cli.js';
import { REPO_ROOT } from '../helpers/sample-inventory.js';

const commands = await loadAllCommands();

describe('pi-image CLI', () => {
  it('--version prints the package version', async () => {
    const r = await cli(['--version']);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('lists every command in --help', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const c of commands) expect(r.stdout).toContain(`pi-image ${String(c.command).split(' ')[0]}`);
  });

  for (const c of commands) {
    const name = String(c.command).split(' ')[0]!;
    it(`${name} --help describes the command and its options`, async () => {
      const r = await cli([name, '--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`pi-image ${name}`);
      expect(r.stdout).toContain('--inventory');
    });
  }

  it('an unknown command is a usage error (exit 2) with a hint', async () => {
    const r = await cli(['bulid']);
    expect(r.code).toBe(EXIT_CODES.input);
    expect(r.stderr).toMatch(/^error: /);
    expect(r.stderr).toContain('Did you mean build?');
    expect(r.stderr).toContain('hint: run `pi-image --help`');
  });

  it('an unknown option is a usage error (exit 2)', async () => {
    const r = await cli(['validate', '--strcit']);
    expect(r.code).toBe(EXIT_CODES.input);
    expect(r.stderr).toContain('Unknown argument');
  });

  it('exit codes are distinct per category', () => {
    const codes = Object.values(EXIT_CODES);
    expect(new Set(codes).size).toBe(codes.length);
  });
});

describe('usage errors from a command\'s own argument checks', () => {
  it('are input errors (exit 2), not internal errors', async () => {
    const r = await cli(['flash', 'pi-cluster-2', '--image', '/tmp/some.img', '--device', '/dev/null']);
    expect(r.code).toBe(EXIT_CODES.input);
    expect(r.stderr).toContain('give either a node name or --image PATH');
    expect(r.stderr).not.toContain('internal error');
  });
});

describe('CLI conventions', () => {
  it('no arguments prints the help (exit 0)', async () => {
    const r = await cli([]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^pi-image <command> \[options\]/);
    expect(r.stdout).toContain('Commands:');
  });

  it('-o json: an error is one JSON document on stdout, the text on stderr, same exit code', async () => {
    const usage = await cli(['validate', '--strcit', '-o', 'json']);
    expect(usage.code).toBe(EXIT_CODES.input);
    expect(JSON.parse(usage.stdout)).toEqual({
      error: { category: 'input', exitCode: 2, message: 'Unknown argument: strcit', details: [], hint: 'run `pi-image --help` or `pi-image <command> --help`' },
    });
    expect(usage.stderr).toContain('error: Unknown argument: strcit');
    const missing = await cli(['--output=json', 'validate', '-i', 'does-not-exist']);
    const doc = JSON.parse(missing.stdout) as { error: { category: string; message: string; hint: string } };
    expect(doc.error.category).toBe('input');
    expect(doc.error.message).toBe('inventory directory does-not-exist does not exist');
    expect(missing.code).toBe(2);
    const text = await cli(['validate', '-i', 'does-not-exist']);
    expect(text.stdout).toBe('');
  });

  it('-v adds the causes of an error', async () => {
    // /proc does not take new directories: the write fails with an errno underneath
    const plain = await cli(['init', '/proc/pi-image-test', '--yes']);
    const verbose = await cli(['init', '/proc/pi-image-test', '--yes', '-v']);
    expect(plain.code).toBe(EXIT_CODES.io);
    expect(verbose.code).toBe(plain.code);
    expect(plain.stderr).toContain('error: cannot create /proc/pi-image-test');
    expect(plain.stderr).not.toContain('caused by');
    expect(verbose.stderr).toMatch(/ {2}caused by: Error: E[A-Z]+: .*mkdir '\/proc\/\.pi-image-test\.init-/);
    const json = await cli(['init', '/proc/pi-image-test', '--yes', '-v', '-o', 'json']);
    expect((JSON.parse(json.stdout) as { error: { causes: string[] } }).error.causes[0]).toMatch(/mkdir/);
  });

  it('build takes --build-dir like every other command; --out is a hidden, deprecated alias', async () => {
    const help = await cli(['build', '--help']);
    expect(help.stdout).toContain('--build-dir');
    expect(help.stdout).not.toMatch(/--out\b/);
    for (const name of ['flash', 'diff', 'netboot', 'rebuild', 'boot-test']) {
      expect((await cli([name, '--help'])).stdout).toContain('--build-dir');
    }
  });
});

describe('lazy command loading', () => {
  it('the summaries in commands/index.ts are the modules\' own', async () => {
    const { commandEntries } = await import('../../src/commands/index.js');
    expect(commandEntries.map((e) => [e.command, e.describe])).toEqual(commands.map((c) => [c.command, c.describe]));
    for (const e of commandEntries) expect(e.command.split(' ')[0]).toBe(e.name);
  });

  it('finds the invoked command past global options', async () => {
    const { invokedCommand } = await import('../../src/commands/index.js');
    expect(invokedCommand(['-i', 'site-b', '-o', 'json', 'validate', '--strict'])?.name).toBe('validate');
    expect(invokedCommand(['--inventory', 'validate', 'build', 'x'])?.name).toBe('build');
    expect(invokedCommand(['--help'])).toBeUndefined();
    expect(invokedCommand(['nonsense'])).toBeUndefined();
  });

  it('start-up imports no command module: static imports from src/cli.ts reach no command, no age, Kubernetes or ssh2', () => {
    const reached = staticImports(join(REPO_ROOT, 'src/cli.ts'));
    const commandsReached = [...reached].filter((f) => f.includes('/src/commands/') && !/\/(context|index|completion)\.ts$/.test(f));
    expect(commandsReached).toEqual([]);
    const packages = [...reached].filter((f) => !f.startsWith('/'));
    for (const heavy of ['age-encryption', '@kubernetes/client-node', 'ssh2', 'execa', 'zod', 'handlebars', 'cli-progress']) expect(packages).not.toContain(heavy);
    // and the validate command reaches zod + yaml but not the cluster or SSH code
    const validate = staticImports(join(REPO_ROOT, 'src/commands/validate.ts'));
    expect([...validate]).toContain('zod');
    for (const heavy of ['@kubernetes/client-node', 'ssh2', 'age-encryption']) expect([...validate]).not.toContain(heavy);
  });
});

/** Files and packages reachable from `file` through static `import … from` (not `import()`). */
function staticImports(file: string, seen = new Set<string>()): Set<string> {
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?\sfrom\s+'([^']+)'/gm)) {
    const spec = m[1]!;
    if (spec.startsWith('.')) {
      const target = join(file, '..', spec).replace(/\.js$/, '.ts');
      if (!seen.has(target)) {
        seen.add(target);
        staticImports(target, seen);
      }
    } else if (!spec.startsWith('node:')) {
      seen.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
  return seen;
}
