/**
 * Golden files: every rendered file of the 4-node fixture inventory, byte for byte, under
 * tests/golden/<node>/ in the layout `pi-image render` writes (boot/…, rootfs/…; not build/, which
 * .gitignore hides). Regenerate after an intended change with
 *   UPDATE_GOLDEN=1 npx vitest run tests/unit/render-golden.test.ts
 * and review the diff.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import { reviewPath } from '../../src/app/render.js';
import type { NodeFileSet, RenderedFile } from '../../src/core/model.js';
import { renderNodeFiles } from '../../src/core/render/node.js';
import { BUILD_YEAR, FAKE_SECRETS, fixtureInventory } from '../helpers/render-fixture.js';

const GOLDEN = fileURLToPath(new URL('../golden', import.meta.url));
const update = process.env.UPDATE_GOLDEN === '1';

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(GOLDEN, p));
    }
  };
  walk(dir);
  return out.sort();
}

function goldenPath(node: string, file: RenderedFile): string {
  return join(node, reviewPath(file));
}

let sets: NodeFileSet[];

beforeAll(async () => {
  sets = renderNodeFiles(fixtureInventory(), FAKE_SECRETS, await loadTemplates(), { buildYear: BUILD_YEAR });
  if (update) {
    rmSync(GOLDEN, { recursive: true, force: true });
    for (const s of sets) {
      for (const f of s.files) {
        const p = join(GOLDEN, goldenPath(s.node, f));
        mkdirSync(dirname(p), { recursive: true });
        writeFileSync(p, f.contents);
      }
    }
  }
});

describe('golden files of the fixture inventory', () => {
  it('has exactly the rendered files, no stale ones', () => {
    const rendered = sets.flatMap((s) => s.files.map((f) => goldenPath(s.node, f))).sort();
    expect(listFiles(GOLDEN)).toEqual(rendered);
  });

  for (const hostname of ['pi-cluster-1', 'pi-cluster-2', 'pi-cluster-3', 'pi-cluster-4']) {
    it(`${hostname}: every file matches its golden copy`, () => {
      const set = sets.find((s) => s.node === hostname);
      expect(set, `node ${hostname} rendered`).toBeDefined();
      for (const f of set!.files) {
        const p = join(GOLDEN, goldenPath(hostname, f));
        expect(f.contents, `${relative(GOLDEN, p)} (UPDATE_GOLDEN=1 to regenerate)`).toBe(readFileSync(p, 'utf8'));
      }
    });
  }
});
