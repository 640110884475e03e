/**
 * Only `pi-image secrets init` creates a secrets store. render and build (and build --dry-run)
 * without nodes/secrets.age stop with exit 2 and the hint, and create nothing: no store, no
 * recipients file, no key, no output directory.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cli } from '../helpers/run-cli.js';
import { sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

let inv: ReturnType<typeof writeInventory>;
let env: NodeJS.ProcessEnv;
beforeEach(() => {
  inv = writeInventory(sampleFiles());
  env = { PATH: process.env.PATH, HOME: join(inv.root, 'home'), XDG_CONFIG_HOME: join(inv.root, 'xdg'), PI_IMAGE_CACHE: join(inv.root, 'cache') };
});
afterEach(() => inv.cleanup());

describe('no implicit secrets store', () => {
  it.each([
    ['render', ['render', '--all', '--out', 'out']],
    ['build', ['build', 'pi-cluster-2', '--build-dir', 'out']],
    ['build --dry-run', ['build', 'pi-cluster-2', '--build-dir', 'out', '--dry-run']],
  ])('%s without secrets.age: exit 2, the `secrets init` hint, nothing created', async (_label, argv) => {
    const before = readdirSync(inv.dir).sort();
    const r = await cli(argv, { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/secrets\.age does not exist/);
    expect(r.stderr).toContain('pi-image secrets init');
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    expect(readdirSync(inv.dir).sort()).toEqual(before);
    expect(existsSync(join(inv.dir, 'secrets.age'))).toBe(false);
    expect(existsSync(join(inv.dir, 'secrets.recipients'))).toBe(false);
    expect(existsSync(join(inv.root, 'out'))).toBe(false);
    expect(existsSync(join(inv.root, 'xdg'))).toBe(false); // no key either
  });

  it('with a key but no store (a teammate whose checkout lacks secrets.age) it still creates nothing', async () => {
    const init = await cli(['secrets', 'init'], { cwd: inv.root, env });
    expect(init.code, init.stderr).toBe(0);
    const { rmSync } = await import('node:fs');
    rmSync(join(inv.dir, 'secrets.age'));
    const r = await cli(['render', 'pi-cluster-1', '--out', 'out'], { cwd: inv.root, env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('pi-image secrets init');
    expect(existsSync(join(inv.dir, 'secrets.age'))).toBe(false);
    expect(existsSync(join(inv.root, 'out'))).toBe(false);
  });
});
