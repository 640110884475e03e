/** docs/environment.md lists every PI_IMAGE_* variable the code, node scripts and test tooling read. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (n === 'node_modules' || n === 'golden' || n.startsWith('.')) return [];
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

describe('docs/environment.md', () => {
  it('names every PI_IMAGE_* variable found in src, cloud-init, scripts, bench and tests', () => {
    const used = new Set<string>();
    for (const dir of ['src', 'cloud-init', 'scripts', 'bench', 'tests']) {
      for (const f of files(join(ROOT, dir))) {
        if (f.endsWith('environment-doc.test.ts')) continue;
        for (const m of readFileSync(f, 'utf8').matchAll(/PI_IMAGE_[A-Z0-9_]*[A-Z0-9]/g)) used.add(m[0]);
      }
    }
    const doc = readFileSync(join(ROOT, 'docs', 'environment.md'), 'utf8');
    const documented = new Set([...doc.matchAll(/`(PI_IMAGE_[A-Z0-9_]+)`/g)].map((m) => m[1]!));
    expect(used.size).toBeGreaterThan(5);
    expect([...used].filter((v) => !documented.has(v)).sort()).toEqual([]);
  });
});
