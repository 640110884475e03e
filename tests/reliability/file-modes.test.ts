/**
 * Every file render, build and netboot write is walked: a file holding a secret value
 * (a join token, the agent token, a node password) is owner-only (no group or other bits), and so
 * is the directory pi-image created for images. Files without secrets may be world-readable.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
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
  // pi-cluster-3 gets a data disk, so netboot exports it
  files['pi-cluster-3.yaml'] = `${files['pi-cluster-3.yaml']!}dataDisk:\n  device: /dev/disk/by-label/rancher\n`;
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
    const r = await cli(['build', 'pi-cluster-3', '--base', base.path, '--build-dir', out], { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('secrets inside the images');
    expect(r.stdout).toContain('boot partition /user-data');
    expect(r.stdout).toContain('0600');
    const z = await cli(['build', 'pi-cluster-4', '--base', base.path, '--build-dir', out, '--compress', 'zstd'], { cwd: inv.root, env });
    expect(z.code, z.stderr).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o700);
    expect(statSync(join(out, 'pi-cluster-3.img')).mode & 0o777).toBe(0o600);
    expect(statSync(join(out, 'pi-cluster-4.img.zst')).mode & 0o777).toBe(0o600);
    const m = checkModes(out);
    expect(m.secret).toBeGreaterThanOrEqual(1); // the raw image holds the seed in clear
  }, 600_000);

  it.skipIf(process.getuid?.() !== 0)('netboot: the TFTP folder is world-readable and holds no secret, the seed in the NFS root is 0600', async () => {
    const out = join(inv.root, 'images');
    if (!existsSync(join(out, 'pi-cluster-3.img'))) {
      const b = await cli(['build', 'pi-cluster-3', '--base', base.path, '--build-dir', out], { cwd: inv.root, env });
      expect(b.code, b.stderr).toBe(0);
    }
    const root = join(inv.root, 'netboot');
    const r = await cli(['netboot', 'pi-cluster-3', '--build-dir', out, '--root', root, '--server', '10.0.0.2'], { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(0);
    // what a Pi fetches over TFTP (no access control): every file 0644 and free of secrets, folders 0755
    const tftp = join(root, 'tftp', '4e1c0013');
    const walkDirs = (d: string): string[] => [d, ...readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => walkDirs(join(d, e.name)))];
    for (const d of walkDirs(tftp)) expect((statSync(d).mode & 0o777).toString(8), d).toBe('755');
    const tftpFiles = walk(tftp);
    expect(tftpFiles.length).toBeGreaterThan(0);
    for (const f of tftpFiles) {
      expect((statSync(f).mode & 0o777).toString(8), f).toBe('644');
      const data = readFileSync(f);
      for (const v of secretValues) expect(data.includes(v), `${f} (TFTP) holds a secret`).toBe(false);
    }
    // the shared files (dnsmasq snippet, exports, EEPROM guide) hold no secret either
    for (const f of ['dnsmasq.d/pi-image.conf', 'exports', 'EEPROM.md'].map((x) => join(root, x))) {
      const data = readFileSync(f);
      for (const v of secretValues) expect(data.includes(v), `${f} holds a secret`).toBe(false);
    }
    // the NFS root: the seed where cloud-init reads it, root only; every other file with a secret owner-only too
    const nfs = join(root, 'nfs', 'pi-cluster-3');
    const fw = join(nfs, 'boot', 'firmware');
    expect(lstatSync(fw).isDirectory()).toBe(true);
    expect(readFileSync(join(fw, 'user-data'), 'utf8')).toMatch(/#cloud-config/);
    for (const n of readdirSync(fw).filter((x) => ['user-data', 'meta-data', 'network-config', 'vendor-data'].includes(x))) {
      expect((statSync(join(fw, n)).mode & 0o777).toString(8), n).toBe('600');
    }
    const m = checkModes(nfs);
    expect(m.secret).toBeGreaterThanOrEqual(1); // user-data holds the join token
  }, 600_000);
});
