/** Copies of the sample inventory (nodes/) in a temp dir, for tests that edit or break it. */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const SAMPLE_DIR = join(REPO_ROOT, 'nodes');

/** The sample inventory's YAML files by name (cluster.yaml, pi-cluster-1.yaml, …). */
export function sampleFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of readdirSync(SAMPLE_DIR).filter((f) => f.endsWith('.yaml'))) {
    files[name] = readFileSync(join(SAMPLE_DIR, name), 'utf8');
  }
  return files;
}

/** Writes files into <tmp>/nodes and returns the temp root (use it as cwd) and a cleanup. */
export function writeInventory(files: Record<string, string | undefined>): { root: string; dir: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'pi-image-inv-'));
  const dir = join(root, 'nodes');
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) if (text !== undefined) writeFileSync(join(dir, name), text);
  return { root, dir, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
