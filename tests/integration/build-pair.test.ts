/**
 * Build outputs are committed as a pair (src/adapters/build-record.ts commitBuildOutputs): a build
 * whose record cannot be written (the record file made immutable with `chattr +i`, so the rename
 * over it fails with EPERM even for root) exits 4 and leaves the earlier image AND record as they
 * were — never a new image beside the old record; and a compressed build replaces the raw form
 * instead of leaving it stale beside the record. Needs root (chattr on the scratch directory's ext4).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canUseLoop } from '../helpers/flash-image.js';
import { makePiOsImage, type PiOsImage } from '../helpers/pi-os-image.js';
import { cli } from '../helpers/run-cli.js';
import { sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

const NODE = 'pi-cluster-2';
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

let base: PiOsImage;
let inv: ReturnType<typeof writeInventory>;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  base = await makePiOsImage({ bootMiB: 64, rootMiB: 32 });
  inv = writeInventory(sampleFiles());
  env = { ...process.env, XDG_CONFIG_HOME: join(inv.root, 'config'), PI_IMAGE_CACHE: join(inv.root, 'cache') };
  const init = await cli(['secrets', 'init'], { cwd: inv.root, env });
  expect(init.code, init.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await base?.cleanup();
  inv?.cleanup();
});

const build = (args: string[]) => cli(['build', NODE, '--base', base.path, ...args], { cwd: inv.root, env });

describe.skipIf(!canUseLoop)('build outputs as a pair', () => {
  it('a build whose record cannot be written (exit 4) keeps the earlier image and record, and leaves no temp file', async () => {
    const out = join(inv.root, 'out-pair');
    const first = await build(['--build-dir', out]);
    expect(first.code, first.stderr).toBe(0);
    const image = join(out, `${NODE}.img`);
    const recordFile = join(out, `${NODE}.json`);
    const oldImage = sha(readFileSync(image));
    const oldRecord = readFileSync(recordFile, 'utf8');
    expect(JSON.parse(oldRecord).image.sha256).toBe(oldImage);
    const oldBmap = readFileSync(`${image}.bmap`, 'utf8');

    // a changed node: the next image differs from the first
    const nodeFile = join(inv.dir, `${NODE}.yaml`);
    const yaml = readFileSync(nodeFile, 'utf8');
    writeFileSync(nodeFile, yaml.replace(/^labels:\n/m, 'labels:\n  pi-image.io/drill: pair\n'));
    await execa('chattr', ['+i', recordFile]);
    try {
      const second = await build(['--build-dir', out]);
      expect(second.code, second.stderr).toBe(4);
      expect(second.stderr).toContain(`cannot write build record ${recordFile}`);
      expect(second.stderr).toMatch(/hint: .*earlier image and record are unchanged/);
      expect(sha(readFileSync(image))).toBe(oldImage);
      expect(readFileSync(recordFile, 'utf8')).toBe(oldRecord);
      // the block map goes with the image: the earlier one is back too
      expect(readFileSync(`${image}.bmap`, 'utf8')).toBe(oldBmap);
      expect(readdirSync(out).sort()).toEqual([`${NODE}.img`, `${NODE}.img.bmap`, `${NODE}.json`]);
    } finally {
      await execa('chattr', ['-i', recordFile]);
    }

    // the same build with a writable record: the new pair replaces the old one
    const third = await build(['--build-dir', out]);
    expect(third.code, third.stderr).toBe(0);
    const newImage = sha(readFileSync(image));
    expect(newImage).not.toBe(oldImage);
    expect(JSON.parse(readFileSync(recordFile, 'utf8')).image.sha256).toBe(newImage);
    writeFileSync(nodeFile, yaml);
  }, 300_000);

  it('a compressed build replaces the raw image (no stale .img beside the record), and the record names the file it describes', async () => {
    const out = join(inv.root, 'out-forms');
    const raw = await build(['--build-dir', out]);
    expect(raw.code, raw.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual([`${NODE}.img`, `${NODE}.img.bmap`, `${NODE}.json`]);
    const zst = await build(['--build-dir', out, '--compress', 'zstd']);
    expect(zst.code, zst.stderr).toBe(0);
    // one block map for either form (it maps the raw content): replaced, not left stale
    expect(readdirSync(out).sort()).toEqual([`${NODE}.img.bmap`, `${NODE}.img.zst`, `${NODE}.json`]);
    const record = JSON.parse(readFileSync(join(out, `${NODE}.json`), 'utf8')) as { image: { path: string; sha256: string; compress: string } };
    expect(record.image.path).toBe(join(out, `${NODE}.img.zst`));
    expect(record.image.compress).toBe('zstd');
    expect(record.image.sha256).toBe(sha(readFileSync(join(out, `${NODE}.img.zst`))));
  }, 300_000);
});
