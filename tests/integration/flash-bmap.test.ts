/**
 * Block maps: `pi-image build` writes `<node>.img.bmap` (bmaptool's format) and `pi-image flash`
 * writes and reads back only the mapped ranges, on a loop device over a scratch file whose old
 * contents are random bytes (as a used SD card). Needs root (losetup), e2fsprogs, dosfstools,
 * mtools, zstd; bmap-tools for the `bmaptool copy` check.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rm, stat, writeFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBuildRecord } from '../../src/adapters/build-record.js';
import { ext4ReadFile } from '../../src/adapters/ext4.js';
import { fatReadFile } from '../../src/adapters/fat.js';
import { flashImage } from '../../src/adapters/flash.js';
import { type Bmap, parseBmap, rangeBytes, renderBmap } from '../../src/core/bmap.js';
import type { BuildRecord } from '../../src/core/build-record.js';
import { cli } from '../helpers/run-cli.js';
import { fsckExt4, fsckFat, makePiOsImage, type PiOsImage } from '../helpers/pi-os-image.js';
import { sampleFiles, writeInventory } from '../helpers/sample-inventory.js';
import { attachLoop, canUseLoop, detachLoop, MiB, readDirect } from '../helpers/flash-image.js';

const NODE = 'pi-cluster-2';
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const hasBmaptool = execa('bmaptool', ['--version'], { reject: false }).then((r) => r.exitCode === 0);

// files with long runs of zeros: `cp --sparse` makes holes of them, yet they must reach the card
const zeroRuns = `A${'\0'.repeat(64 * 1024)}B${'\0'.repeat(20_000)}C`;
const BOOT_FILES = { 'zeros.bin': zeroRuns, 'overlay.dtbo': 'x'.repeat(9000) };
const ROOT_FILES = { '/opt/zeros.bin': zeroRuns, '/usr/lib/big.bin': 'y'.repeat(300_000) };

describe.skipIf(!canUseLoop)('block maps: build writes them, flash writes only the mapped ranges', () => {
  let inv: ReturnType<typeof writeInventory>;
  let base: PiOsImage;
  let env: NodeJS.ProcessEnv;
  let out: string;
  let image: string;
  let record: BuildRecord;
  let bmap: Bmap;
  let loop: string | undefined;
  const backing = () => join(inv.root, 'card.raw');

  beforeAll(async () => {
    inv = writeInventory(sampleFiles());
    base = await makePiOsImage({ dir: inv.root, bootMiB: 64, rootMiB: 48, bootFiles: BOOT_FILES, rootFiles: ROOT_FILES });
    env = { ...process.env, XDG_CONFIG_HOME: join(inv.root, 'config') };
    expect((await cli(['secrets', 'init'], { cwd: inv.root, env })).code).toBe(0);
    const built = await cli(['build', NODE, '--base', base.path], { cwd: inv.root, env });
    expect(built.code, built.stderr).toBe(0);
    out = join(inv.root, 'build', 'images');
    image = join(out, `${NODE}.img`);
    record = (await readBuildRecord(join(out, `${NODE}.json`)))!;
    const parsed = parseBmap(await readFile(`${image}.bmap`, 'utf8'));
    if (!('bmap' in parsed)) throw new Error(parsed.problem);
    bmap = parsed.bmap;
    loop = await attachLoop(backing(), 128 * MiB);
  }, 300_000);

  afterAll(async () => {
    await detachLoop(loop);
    await base?.cleanup();
    inv?.cleanup();
  });

  async function scribble(): Promise<void> {
    await execa('dd', ['if=/dev/urandom', `of=${loop}`, 'bs=1M', `count=${Math.ceil(bmap.imageSize / MiB)}`, 'oflag=direct', 'status=none']);
  }

  /** Every mapped range of the card equals the image's; returns how many bytes that covered. */
  async function expectMappedRangesEqual(raw: Buffer): Promise<number> {
    const card = await readDirect(loop!, raw.length);
    let bytes = 0;
    for (const r of bmap.ranges) {
      const { start, end } = rangeBytes(r, bmap.imageSize);
      expect(card.subarray(start, end).equals(raw.subarray(start, end)), `blocks ${r.first}-${r.last}`).toBe(true);
      bytes += end - start;
    }
    return bytes;
  }

  /** Both filesystems of the card fsck clean, and every file of the base and of the build reads back. */
  async function expectCardHealthy(): Promise<void> {
    const fat = await fsckFat(loop!, base.bootOffset, base.bootSize);
    expect(fat.ok, fat.output).toBe(true);
    const ext = await fsckExt4(loop!, base.rootOffset);
    expect(ext.ok, ext.output).toBe(true);
    for (const [name, contents] of Object.entries(BOOT_FILES)) {
      expect(sha256(await fatReadFile({ image: loop!, offset: base.bootOffset }, `/${name}`)), name).toBe(sha256(contents));
    }
    for (const [path, contents] of Object.entries(ROOT_FILES)) {
      expect(sha256(await ext4ReadFile({ image: loop!, offset: base.rootOffset }, path)), path).toBe(sha256(contents));
    }
    for (const f of record.files.filter((x) => x.sha256 !== undefined)) {
      const got = f.target === 'boot' ? await fatReadFile({ image: loop!, offset: base.bootOffset }, `/${f.path}`) : await ext4ReadFile({ image: loop!, offset: base.rootOffset }, f.path);
      expect(sha256(got), `${f.target}:${f.path}`).toBe(f.sha256);
    }
  }

  it('build writes <node>.img.bmap (owner-only, as the image) in bmaptool format, named by the record, its ranges hashed from the image', async () => {
    const st = await stat(`${image}.bmap`);
    expect(st.mode & 0o777).toBe(0o600);
    expect(record.image.bmap).toEqual({ path: `${image}.bmap`, sha256: bmap.checksum, mappedBytes: expect.any(Number) as number });
    const raw = await readFile(image);
    expect(bmap.imageSize).toBe(raw.length);
    expect(bmap.blockSize).toBe(4096);
    expect(bmap.version).toBe('2.0');
    let mapped = 0;
    for (const r of bmap.ranges) {
      const { start, end } = rangeBytes(r, bmap.imageSize);
      expect(sha256(raw.subarray(start, end))).toBe(r.sha256);
      mapped += end - start;
    }
    expect(record.image.bmap!.mappedBytes).toBe(mapped);
    // unmapped blocks read as zeros in the image (nothing of it is lost)
    const unmapped = raw.length - mapped;
    expect(unmapped).toBeGreaterThan(raw.length / 2);
    let pos = 0;
    for (const r of bmap.ranges) {
      const { start, end } = rangeBytes(r, bmap.imageSize);
      expect(raw.subarray(pos, start).every((b) => b === 0)).toBe(true);
      pos = end;
    }
    console.log(`bmap of a ${raw.length}-byte image: ${mapped} bytes mapped (${((100 * mapped) / raw.length).toFixed(1)}%) in ${bmap.ranges.length} ranges`);
  });

  it('bmaptool copy accepts the bmap and writes a card that fscks clean over random old contents', async (ctx) => {
    if (!(await hasBmaptool)) ctx.skip();
    await scribble();
    const r = await execa('bmaptool', ['copy', '--bmap', `${image}.bmap`, image, loop!], { reject: false, all: true });
    expect(r.exitCode, r.all).toBe(0);
    await expectMappedRangesEqual(await readFile(image));
    await expectCardHealthy();
    // and the other way: pi-image reads the maps bmaptool writes (its ranges' sums match the image)
    await execa('bmaptool', ['create', '-o', `${image}.theirs`, image]);
    const theirs = parseBmap(await readFile(`${image}.theirs`, 'utf8'));
    await rm(`${image}.theirs`, { force: true });
    if (!('bmap' in theirs)) throw new Error(theirs.problem);
    const raw = await readFile(image);
    expect(theirs.bmap.ranges.length).toBeGreaterThan(0);
    for (const r of theirs.bmap.ranges) {
      const { start, end } = rangeBytes(r, theirs.bmap.imageSize);
      expect(sha256(raw.subarray(start, end))).toBe(r.sha256);
    }
  }, 120_000);

  it('flash writes and reads back only the mapped ranges; over random old contents the card fscks clean and every file reads back', async () => {
    await scribble();
    const r = await cli(['flash', NODE, '--device', loop!, '--yes', '--allow-loop', '-o', 'json'], { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/ignoring the block map/);
    const report = JSON.parse(r.stdout) as { bytes: number; imageSha256: string; mapped: { bmap: string; bytes: number; ranges: number } | null; verify: { result: string; files: { ok: boolean }[] } };
    expect(report.mapped).toEqual({ bmap: `${image}.bmap`, bytes: record.image.bmap!.mappedBytes, ranges: bmap.ranges.length });
    expect(report.bytes).toBe(bmap.imageSize);
    expect(report.imageSha256).toBe(record.image.sha256);
    expect(report.verify.result).toBe('ok');
    expect(report.verify.files.length).toBeGreaterThan(0);
    expect(report.verify.files.every((f) => f.ok)).toBe(true);
    await expectMappedRangesEqual(await readFile(image));
    await expectCardHealthy();
  }, 120_000);

  it('flashes a compressed build with its map (decompressing, skipping unmapped stretches of the stream)', async () => {
    const zout = join(inv.root, 'build-zst');
    const built = await cli(['build', NODE, '--base', base.path, '--compress', 'zstd', '--build-dir', zout], { cwd: inv.root, env });
    expect(built.code, built.stderr).toBe(0);
    const z = join(zout, `${NODE}.img.zst`);
    const zrec = (await readBuildRecord(join(zout, `${NODE}.json`)))!;
    expect(zrec.image.bmap?.path).toBe(join(zout, `${NODE}.img.bmap`));
    await scribble();
    const r = await cli(['flash', '--image', z, '--device', loop!, '--yes', '--allow-loop', '-o', 'json'], { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { mapped: { bytes: number } | null; verify: { result: string } };
    expect(report.mapped?.bytes).toBe(zrec.image.bmap!.mappedBytes);
    expect(report.verify.result).toBe('ok');
    const raw = (await execa('zstd', ['-dc', z], { encoding: 'buffer', maxBuffer: 512 * MiB })).stdout;
    expect(sha256(raw)).toBe(zrec.image.rawSha256);
    const zparsed = parseBmap(await readFile(zrec.image.bmap!.path, 'utf8'));
    if (!('bmap' in zparsed)) throw new Error(zparsed.problem);
    const card = await readDirect(loop!, raw.length);
    for (const rg of zparsed.bmap.ranges) {
      const { start, end } = rangeBytes(rg, zparsed.bmap.imageSize);
      expect(card.subarray(start, end).equals(Buffer.from(raw).subarray(start, end))).toBe(true);
    }
    const fat = await fsckFat(loop!, base.bootOffset, base.bootSize);
    expect(fat.ok, fat.output).toBe(true);
    const ext = await fsckExt4(loop!, base.rootOffset);
    expect(ext.ok, ext.output).toBe(true);
  }, 300_000);

  it('ignores, with a note, a bmap that does not match the image or its record, and writes the whole image', async () => {
    const raw = await readFile(image);
    const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
      ['record names another map', async (dir) => {
        const rec = JSON.parse(await readFile(join(dir, `${NODE}.json`), 'utf8')) as BuildRecord;
        rec.image.bmap!.sha256 = sha256('another map');
        await writeFile(join(dir, `${NODE}.json`), JSON.stringify(rec));
      }, /ignoring the block map .*: its checksum .* is not the build record's/],
      ['map edited after the build', async (dir) => {
        const p = join(dir, `${NODE}.img.bmap`);
        await writeFile(p, (await readFile(p, 'utf8')).replace(/<Range chksum="([0-9a-f]{64})"> 0-/, (_m, s: string) => `<Range chksum="${sha256(s)}"> 0-`));
      }, /ignoring the block map .*: its BmapFileChecksum does not match its contents/],
      ['map of another image size', async (dir) => {
        const { text, checksum } = renderBmap({ imageSize: bmap.imageSize - 4096, ranges: bmap.ranges.filter((x) => x.last < bmap.blocksCount - 1) });
        await writeFile(join(dir, `${NODE}.img.bmap`), text);
        const rec = JSON.parse(await readFile(join(dir, `${NODE}.json`), 'utf8')) as BuildRecord;
        rec.image.bmap!.sha256 = checksum;
        await writeFile(join(dir, `${NODE}.json`), JSON.stringify(rec));
      }, /ignoring the block map .*: it maps \d+ bytes, the image has \d+/],
    ];
    for (const [what, spoil, note] of cases) {
      const dir = join(inv.root, `spoiled-${cases.findIndex((c) => c[0] === what)}`);
      await mkdir(dir, { recursive: true });
      for (const f of [`${NODE}.img`, `${NODE}.img.bmap`, `${NODE}.json`]) await cp(join(out, f), join(dir, f));
      await spoil(dir);
      await scribble();
      const r = await cli(['flash', NODE, '--build-dir', dir, '--device', loop!, '--yes', '--allow-loop', '-o', 'json'], { cwd: inv.root, env });
      expect(r.code, `${what}: ${r.stderr}`).toBe(0);
      expect(r.stderr, what).toMatch(note);
      expect(r.stderr, what).toMatch(/writing the whole image/);
      const report = JSON.parse(r.stdout) as { mapped: unknown; verify: { result: string; readbackSha256: string } };
      expect(report.mapped, what).toBeNull();
      expect(report.verify.result).toBe('ok');
      expect(report.verify.readbackSha256).toBe(sha256(raw));
      expect(sha256(await readDirect(loop!, raw.length)), what).toBe(sha256(raw));
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('the read-back catches a corrupted mapped range (byte flipped on the medium after the write)', async () => {
    await scribble();
    // a byte inside the root partition's part of the map, past the head written last
    const target = bmap.ranges.map((r) => rangeBytes(r, bmap.imageSize)).find((r) => r.start >= base.rootOffset && r.end - r.start > 1000)!;
    const offset = target.start + 777;
    const result = await flashImage({
      image,
      device: loop!,
      record,
      bmap,
      afterWrite: async () => {
        const fh = await open(backing(), 'r+');
        try {
          const b = Buffer.alloc(1);
          await fh.read(b, 0, 1, offset);
          b[0] = (b[0] ?? 0) ^ 0xff;
          await fh.write(b, 0, 1, offset);
          await fh.sync();
        } finally {
          await fh.close();
        }
      },
    });
    expect(result.mapped?.bytes).toBe(record.image.bmap!.mappedBytes);
    expect(result.verify.result).toBe('failed');
    expect(result.verify.firstBadOffset).toBe(offset);
  }, 120_000);
});
