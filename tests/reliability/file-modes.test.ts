/**
 * Every file render and build write is walked: a file holding a secret value
 * (a join token, the agent token, a node password) is owner-only (no group or other bits), and so
 * is the directory pi-image created for images. Files without secrets may be world-readable.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePiOsImage, type PiOsImage } from '../helpers/pi-os-image.js';
import { cli } from '../helpers/run-cli.js';
import { sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

let base: PiOsImage;
let inv: ReturnType<typeof writeInventory>;
let env: NodeJS.ProcessEnv;
let secretValues: string[] = [];

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Every file below `dir`: secret-holding ones must be owner-only; returns how many held secrets. */
function checkModes(dir: string): { files: number; secret: number } {
  let secret = 0;
  const files = walk(dir);
  for (const f of files) {
    const mode = statSync(f).mode & 0o777;
    const data = readFileSync(f);
    const holds = secretValues.some((s) => data.includes(s));
    if (holds) {
      secret++;
      expect(mode & 0o077, `${f} holds a secret but is ${mode.toString(8)}`).toBe(0);
    }
  }
  return { files: files.length, secret };
}

beforeAll(async () => {
  base = await makePiOsImage();
  const files = sampleFiles();
  inv = writeInventory(files);
  env = { PATH: process.env.PATH, HOME: join(inv.root, 'home'), XDG_CONFIG_HOME: join(inv.root, 'config'), PI_IMAGE_CACHE: join(inv.root, 'cache') };
  const init = await cli(['secrets', 'init'], { cwd: inv.root, env });
  expect(init.code, init.stderr).toBe(0);
  const review = join(inv.root, 'review');
  const r = await cli(['render', '--all', '--out', review], { cwd: inv.root, env });
  expect(r.code, r.stderr).toBe(0);
  const values = new Set<string>();
  for (const node of readdirSync(review)) {
    const manifest = JSON.parse(readFileSync(join(review, node, 'render.json'), 'utf8')) as { files: { file: string; secret: boolean }[] };
    for (const f of manifest.files.filter((x) => x.secret)) {
      const text = readFileSync(join(review, node, f.file), 'utf8').trim();
      if (!text.includes('\n')) values.add(text);
    }
  }
  secretValues = [...values];
}, 300_000);

afterAll(async () => {
  await base?.cleanup();
  inv?.cleanup();
});

describe('reliability: modes of the files the commands write', () => {
  it('render: review files with secrets are 0600 in 0700 node directories', () => {
    const review = join(inv.root, 'review');
    const r = checkModes(review);
    expect(r.secret).toBeGreaterThanOrEqual(4);
    for (const node of readdirSync(review)) expect(statSync(join(review, node)).mode & 0o777).toBe(0o700);
  });

  it('build: images (raw and compressed) are 0600 in a 0700 directory, and build says where the secrets are', async () => {
    const out = join(inv.root, 'images');
    const r = await cli(['build', 'pi-cluster-3', '--base', base.path, '--out', out], { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('secrets inside the images');
    expect(r.stdout).toContain('boot partition /user-data');
    expect(r.stdout).toContain('0600');
    const z = await cli(['build', 'pi-cluster-4', '--base', base.path, '--out', out, '--compress', 'zstd'], { cwd: inv.root, env });
    expect(z.code, z.stderr).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o700);
    expect(statSync(join(out, 'pi-cluster-3.img')).mode & 0o777).toBe(0o600);
    expect(statSync(join(out, 'pi-cluster-4.img.zst')).mode & 0o777).toBe(0o600);
    const m = checkModes(out);
    expect(m.secret).toBeGreaterThanOrEqual(1); // the raw image holds the seed in clear
  }, 600_000);
});
