/**
 * The CLI as operators run it: `npm run build`'s dist/ under Node's own ESM loader (bin/pi-image),
 * not through tsx or vitest, which paper over CommonJS interop (a named import Node refuses from a
 * CommonJS package once broke `status` and `kubeconfig` in the built CLI only). Every built module
 * must load, and the commands that load libraries lazily must get past loading them. dist/cli.js is
 * the esbuild bundle of src/cli.ts (scripts/bundle-cli.mjs): each command runs from its chunk.
 */
import { execa } from 'execa';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/sample-inventory.js';

const DIST = join(REPO_ROOT, 'dist');

function modules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? modules(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : []));
}

describe('the built CLI (dist/ under plain node)', () => {
  beforeAll(async () => {
    await execa('npm', ['run', '-s', 'build'], { cwd: REPO_ROOT });
  });

  it('every module of dist/ loads under Node’s ESM loader', async () => {
    const files = modules(DIST).filter((f) => !f.endsWith('/cli.js'));
    expect(files.length).toBeGreaterThan(50);
    const program = `for (const f of ${JSON.stringify(files.map((f) => pathToFileURL(f).href))}) await import(f);\nconsole.log('loaded');`;
    const r = await execa(process.execPath, ['--input-type=module', '-e', program], { reject: false });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('loaded');
  });

  it('the bundled dist/cli.js runs every command (each one\'s chunk and libraries load): --help exits 0', async () => {
    const { commandEntries } = await import('../../src/commands/index.js');
    for (const e of commandEntries) {
      const r = await execa(process.execPath, [join(DIST, 'cli.js'), e.name, '--help'], { reject: false, env: { ...process.env, LANG: 'C' } });
      expect(r.exitCode, `${e.name}: ${r.stderr}`).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain(`pi-image ${e.command}`);
    }
  });

  it('the bundled CLI validates the sample inventory and finds yargs\' translations (LANG=de_DE)', async () => {
    const ok = await execa(process.execPath, [join(DIST, 'cli.js'), 'validate', '-i', 'nodes'], { cwd: REPO_ROOT, reject: false });
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^inventory nodes is valid: cluster pi-cluster, 4 nodes/);
    // -v: the trace set up by the CLI's chunk reaches the command's chunk (one trace module in the bundle)
    const traced = await execa(process.execPath, [join(DIST, 'cli.js'), 'validate', '-i', 'nodes', '-v'], { cwd: REPO_ROOT, reject: false });
    expect(traced.exitCode, traced.stderr).toBe(0);
    expect(traced.stderr).toMatch(/^\+ read nodes\/cluster\.yaml \(\d+ bytes\)$/m);
    const de = await execa(process.execPath, [join(DIST, 'cli.js'), '--help'], { reject: false, env: { ...process.env, LANG: 'de_DE.UTF-8', LC_ALL: '', LC_MESSAGES: '' } });
    expect(de.stdout).toContain('Kommandos:');
  });

  it('status and kubeconfig get past loading their SSH library (no SSH key: exit 3, not 70)', async () => {
    for (const cmd of [['status', 'pi-cluster-4'], ['kubeconfig', '--out', '/dev/null']]) {
      const r = await execa(join(REPO_ROOT, 'bin', 'pi-image'), [...cmd, '-i', join(REPO_ROOT, 'nodes'), '--identity', '/nonexistent/key'], {
        reject: false,
        env: { ...process.env, SSH_AUTH_SOCK: '' },
      });
      expect(r.exitCode, `${cmd[0]}: ${r.stderr}`).toBe(3);
      expect(r.stderr).toMatch(/\/nonexistent\/key/);
    }
  });
});
