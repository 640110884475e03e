/** pi-image is also a library: src/index.ts exports the use cases, package.json points at what the build emits. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as api from '../../src/index.js';
import { REPO_ROOT } from '../helpers/sample-inventory.js';

describe('library entry', () => {
  it('package.json main, types and bin name files the build (tsc, rootDir src → dist) emits', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { main: string; types: string; bin: Record<string, string> };
    const tsconfig = JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.build.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string } };
    const source = (emitted: string) => join(REPO_ROOT, emitted.replace(new RegExp(`^${tsconfig.compilerOptions.outDir}/`), `${tsconfig.compilerOptions.rootDir}/`).replace(/(\.d)?\.js$/, '.ts').replace(/\.d\.ts$/, '.ts'));
    expect(pkg.main).toBe('dist/index.js');
    expect(pkg.types).toBe('dist/index.d.ts');
    for (const f of [pkg.main, pkg.types, pkg.bin['pi-image']!]) expect(existsSync(source(f)), f).toBe(true);
  });

  it('exports validate, render, build and the verify checks', async () => {
    for (const name of ['validate', 'loadInventory', 'render', 'writeNodeFiles', 'build', 'verifyChecks', 'summarizeChecks', 'runCli'] as const) {
      expect(typeof api[name], name).toBe('function');
    }
    const result = await api.validate('nodes', { cwd: REPO_ROOT });
    expect(result.errors).toEqual([]);
    expect(result.inventory?.nodes.map((n) => n.hostname)).toEqual(['pi-cluster-1', 'pi-cluster-2', 'pi-cluster-3', 'pi-cluster-4']);
    expect(new api.InputError('x').exitCode).toBe(api.EXIT_CODES.input);
  });
});
