/** The CLI shell: --version, --help on every command, usage errors → exit 2, one error format. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commands } from '../../src/commands/index.js';
import { EXIT_CODES } from '../../src/core/errors.js';
import { cli } from '../helpers/run-cli.js';
import { REPO_ROOT } from '../helpers/sample-inventory.js';

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

  it('no command at all is a usage error', async () => {
    const r = await cli([]);
    expect(r.code).toBe(EXIT_CODES.input);
    expect(r.stderr).toContain('pi-image needs a command');
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
