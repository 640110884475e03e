/**
 * `pi-image flash` against a real block device: a loop device over a sparse file stands in for the
 * SD card (accepted only through the test override --allow-loop / PI_IMAGE_ALLOW_LOOP=1).
 * Needs root (losetup), util-linux, coreutils dd, mtools, e2fsprogs, fdisk, dosfstools.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import type { Io } from '../../src/app/io.js';
import { readBuildRecord } from '../../src/adapters/build-record.js';
import { alignedBuffer, CardWriter, DIRECT_ALIGN, flashImage, readDeviceDirect } from '../../src/adapters/flash.js';
import { cli } from '../helpers/run-cli.js';
import { makePiOsImage } from '../helpers/pi-os-image.js';
import { sampleFiles, writeInventory } from '../helpers/sample-inventory.js';
import { attachLoop, canUseLoop, detachLoop, makeFlashTestImage, MiB, readDirect, sha256, type FlashTestImage } from '../helpers/flash-image.js';

const NODE = 'pi-cluster-2';

describe.skipIf(!canUseLoop)('pi-image flash on a loop device', () => {
  let dir: string;
  let img: FlashTestImage;
  let imageBytes: Buffer;
  let loop: string | undefined;
  const backing = (): string => join(dir, 'card.raw');
  const mounted: string[] = [];
  const extraLoops: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pi-image-flash-'));
    const build = join(dir, 'build', 'images');
    await mkdir(build, { recursive: true });
    img = await makeFlashTestImage(build, NODE);
    imageBytes = await readFile(img.path);
    loop = await attachLoop(backing(), 128 * MiB);
  });

  afterAll(async () => {
    for (const m of mounted) await execa('umount', [m], { reject: false });
    for (const l of extraLoops) await detachLoop(l);
    await detachLoop(loop);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function scribble(): Promise<void> {
    // old contents on the "card": random-ish bytes everywhere the image will go
    await execa('dd', ['if=/dev/urandom', `of=${loop}`, 'bs=1M', `count=${Math.ceil(imageBytes.length / MiB)}`, 'oflag=direct', 'status=none']);
  }

  it('writes a node image, reads it back with O_DIRECT and checks the seed files (-o json)', async () => {
    await scribble();
    const r = await cli(['flash', NODE, '--device', loop!, '--yes', '--allow-loop', '-o', 'json'], { cwd: dir });
    expect(r.stderr).toMatch(/target \/dev\/loop\d+: .*loop/);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      device: string; bytes: number; imageSha256: string; writeSeconds: number; writeMiBPerSecond: number;
      verify: { result: string; readbackSha256: string; files: { path: string; ok: boolean }[] };
    };
    expect(report.device).toBe(loop);
    expect(report.bytes).toBe(imageBytes.length);
    expect(report.imageSha256).toBe(sha256(imageBytes));
    expect(report.verify.result).toBe('ok');
    expect(report.verify.readbackSha256).toBe(sha256(imageBytes));
    expect(report.verify.files.map((f) => [f.path, f.ok])).toEqual(Object.keys(img.seed).map((p) => [p, true]));
    // independently: what is on the medium now is the image
    expect(sha256(await readDirect(loop!, imageBytes.length))).toBe(sha256(imageBytes));
    // progress lines on stderr (no TTY)
    expect(r.stderr).toMatch(/writing: 100% \(\d+\/\d+ MiB, [\d.]+ MiB\/s, ETA \d+ s\)/);
    expect(r.stderr).toMatch(/verifying: 100%/);
    console.log(`flash ${report.bytes} bytes: write ${report.writeSeconds} s (${report.writeMiBPerSecond} MiB/s)`);
  });

  it('flashes what `pi-image build` produced, checking every seed file against its build record', async () => {
    const inv = writeInventory(sampleFiles());
    const base = await makePiOsImage({ dir: inv.root, bootMiB: 64, rootMiB: 32 });
    try {
      const env = { ...process.env, XDG_CONFIG_HOME: join(inv.root, 'config') };
      expect((await cli(['secrets', 'init'], { cwd: inv.root, env })).code).toBe(0);
      const built = await cli(['build', NODE, '--base', base.path], { cwd: inv.root, env });
      expect(built.code, built.stderr).toBe(0);
      await scribble();
      const r = await cli(['flash', NODE, '--device', loop!, '--yes', '--allow-loop', '-o', 'json'], { cwd: inv.root, env });
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as { verify: { result: string; files: { path: string; ok: boolean }[] } };
      expect(report.verify.result).toBe('ok');
      // user-data holds secrets (no plain hash in the record): it is compared with the image's copy
      expect(report.verify.files.map((f) => [f.path, f.ok])).toEqual(
        expect.arrayContaining([['user-data', true], ['meta-data', true], ['network-config', true], ['cmdline.txt', true]]),
      );
    } finally {
      await base.cleanup();
      inv.cleanup();
    }
  });

  it('prints a text report and draws a progress bar on a terminal', async () => {
    let out = '';
    let err = '';
    const io: Io = {
      out: (t) => { out += t; },
      err: (t) => { err += t; },
      isTTY: true,
      env: { ...process.env, PI_IMAGE_ALLOW_LOOP: '1' },
      cwd: dir,
      prompt: async () => loop!.replace('/dev/', ''),
    };
    const code = await runCli(['flash', '--image', img.path, '--device', loop!], io);
    expect(code, err).toBe(0);
    expect(err).toMatch(/writing +\[[=-]+\] 100% \| \d+\/\d+ MiB \| [\d.]+ MiB\/s \| ETA/);
    expect(out).toMatch(new RegExp(`flashed ${img.path} → ${loop}: `));
    expect(out).toMatch(/verify: ok — read back with O_DIRECT/);
    expect(out).toMatch(/ok {3}boot:user-data/);
  });

  it('refuses a loop device without the test override', async () => {
    const r = await cli(['flash', NODE, '--device', loop!, '--yes'], { cwd: dir, env: { ...process.env, PI_IMAGE_ALLOW_LOOP: '' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`refusing to write ${loop}`));
    expect(r.stderr).toMatch(/loop device .*PI_IMAGE_ALLOW_LOOP=1/);
  });

  it('asks to type the device name, and refuses without a terminal or with a wrong answer', async () => {
    const before = sha256(await readDirect(loop!, 4096));
    const noTty = await cli(['flash', NODE, '--device', loop!, '--allow-loop'], { cwd: dir });
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toMatch(/confirmation needs a terminal/);
    expect(noTty.stderr).toMatch(/pass --yes/);
    let asked = '';
    const wrong = await cli(['flash', NODE, '--device', loop!, '--allow-loop'], {
      cwd: dir,
      prompt: async (q) => { asked = q; return 'sdb'; },
    });
    expect(asked).toMatch(new RegExp(`Type the device name \\(${loop!.replace('/dev/', '')}\\)`));
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/does not match/);
    expect(sha256(await readDirect(loop!, 4096))).toBe(before);
  });

  it('detects a corrupted read-back (byte flipped on the medium after the write)', async () => {
    const record = await readBuildRecord(img.record);
    const offset = img.rootOffset + 5 * MiB + 123; // inside the root partition
    let cachedByte: number | undefined;
    const result = await flashImage({
      image: img.path,
      device: loop!,
      ...(record === undefined ? {} : { record }),
      afterWrite: async () => {
        // corrupt the backing file behind the loop device's back: the device's page cache still
        // holds the good byte, only a read that bypasses the cache sees the corruption
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
        const dev = await open(loop!, 'r');
        try {
          const b = Buffer.alloc(1);
          await dev.read(b, 0, 1, offset);
          cachedByte = b[0];
        } finally {
          await dev.close();
        }
      },
    });
    expect(result.verify.result).toBe('failed');
    expect(result.verify.firstBadOffset).toBe(offset);
    expect(result.verify.readbackSha256).not.toBe(result.imageSha256);
    expect(result.imageSha256).toBe(sha256(imageBytes));
    console.log(
      `buffered read of the flipped byte after the write: ${cachedByte === imageBytes[offset] ? 'stale (page cache hid the corruption)' : 'saw the corruption'}`,
    );
  });

  it('reports a failed verification through the CLI with exit code 4', async () => {
    // a build record whose seed file checksum does not match what is on the card
    const build = join(dir, 'bad');
    await mkdir(build, { recursive: true });
    const copy = join(build, 'x.img');
    await writeFile(copy, imageBytes);
    const rec = JSON.parse(await readFile(img.record, 'utf8')) as { files: { sha256: string }[] };
    rec.files[1]!.sha256 = sha256('something else');
    await writeFile(join(build, 'x.json'), JSON.stringify(rec));
    const r = await cli(['flash', '--image', copy, '--device', loop!, '--yes', '--allow-loop', '-o', 'json'], { cwd: dir });
    expect(r.code).toBe(4);
    // -o json: the report, then the error as its own JSON document
    const report = JSON.parse(r.stdout.slice(0, r.stdout.indexOf('\n}\n') + 2)) as { verify: { result: string; files: { path: string; ok: boolean; problem?: string }[] } };
    expect(report.verify.result).toBe('failed');
    expect(report.verify.files.filter((f) => !f.ok).map((f) => f.path)).toEqual(['user-data']);
    expect(report.verify.files.find((f) => !f.ok)?.problem).toMatch(/sha256 .* ≠ build record/);
    expect(r.stderr).toMatch(/verification of \/dev\/loop\d+ failed/);
  });

  it('leaves the card without a partition table when the image does not match its build record', async () => {
    const build = join(dir, 'changed');
    await mkdir(build, { recursive: true });
    const copy = join(build, 'y.img');
    const changed = Buffer.from(imageBytes);
    changed[img.rootOffset + 2 * MiB] = (changed[img.rootOffset + 2 * MiB] ?? 0) ^ 1;
    await writeFile(copy, changed);
    await writeFile(join(build, 'y.json'), await readFile(img.record));
    const r = await cli(['flash', '--image', copy, '--device', loop!, '--yes', '--allow-loop'], { cwd: dir });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/does not match its build record .* left without a partition table/);
    const head = await readDirect(loop!, MiB);
    expect(head.equals(Buffer.alloc(MiB))).toBe(true);
  });

  it('reports EBUSY clearly when another program holds the device exclusively', async () => {
    const fd = openSync(loop!, constants.O_RDONLY | constants.O_EXCL);
    try {
      const r = await cli(['flash', NODE, '--device', loop!, '--yes', '--allow-loop'], { cwd: dir });
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(new RegExp(`error: ${loop}: device is busy \\(mounted or in use by another program\\)`));
      expect(r.stderr).toMatch(/hint: unmount its partitions/);
    } finally {
      closeSync(fd);
    }
  });

  it('refuses a mounted device and lists the mount (ext4 loop mount)', async () => {
    const other = await attachLoop(join(dir, 'mounted.raw'), 96 * MiB);
    extraLoops.push(other);
    await execa('mkfs.ext4', ['-q', '-F', other]);
    const mnt = join(dir, 'mnt');
    await mkdir(mnt, { recursive: true });
    await execa('mount', [other, mnt]);
    mounted.push(mnt);
    const r = await cli(['flash', '--image', img.path, '--device', other, '--yes', '--allow-loop'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`is mounted: ${other} on ${mnt}`));
    expect(r.stderr).toMatch(/pi-image never unmounts by itself/);
  });

  it('refuses a device smaller than the image and a path that is not a block device', async () => {
    const tiny = await attachLoop(join(dir, 'tiny.raw'), 16 * MiB);
    extraLoops.push(tiny);
    const r = await cli(['flash', NODE, '--device', tiny, '--yes', '--allow-loop'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is too small: 16\.8 MB \(16777216 bytes\) < image/);
    const f = await cli(['flash', NODE, '--device', img.path, '--yes', '--allow-loop'], { cwd: dir });
    expect(f.code).toBe(2);
    expect(f.stderr).toMatch(/is not a block device/);
  });

  it('flashes .img.zst and .img.xz (by --image and by node name) to a card byte-identical to the raw image, decompressing while writing', async () => {
    const rawSha = sha256(imageBytes);
    const record = JSON.parse(await readFile(img.record, 'utf8')) as { image: Record<string, unknown> };
    for (const [ext, tool] of [['zst', 'zstd'], ['xz', 'xz']] as const) {
      const out = join(dir, `build-${ext}`);
      await mkdir(out, { recursive: true });
      const z = join(out, `${NODE}.img.${ext}`);
      await execa('sh', ['-c', `${tool} -q -c -T2 "$1" > "$2"`, 'sh', img.path, z]);
      const zBytes = await readFile(z);
      // the record of a compressed build: sha256/size of the file, rawSha256 of what goes on the card
      await writeFile(join(out, `${NODE}.json`), JSON.stringify({ ...record, image: { ...record.image, path: z, sha256: sha256(zBytes), size: zBytes.length, compress: tool, rawSha256: rawSha } }, null, 2));
      for (const args of ext === 'zst' ? [['--image', z], [NODE, '--build-dir', out]] : [[NODE, '--build-dir', out]]) {
        await scribble();
        const r = await cli(['flash', ...args, '--device', loop!, '--yes', '--allow-loop', '-o', 'json'], { cwd: dir });
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
        const report = JSON.parse(r.stdout) as { image: string; bytes: number; imageSha256: string; buildRecord: string | null; verify: { result: string; readbackSha256: string; files: { ok: boolean }[] } };
        expect(report.image).toBe(z);
        expect(report.buildRecord).toBe(join(out, `${NODE}.json`));
        expect(report.bytes).toBe(imageBytes.length);
        expect(report.imageSha256).toBe(rawSha);
        expect(report.verify.result).toBe('ok');
        expect(report.verify.files.length).toBe(Object.keys(img.seed).length);
        expect(report.verify.files.every((f) => f.ok)).toBe(true);
        // what is on the medium is the raw image, never the compressed stream
        expect(sha256(await readDirect(loop!, imageBytes.length))).toBe(rawSha);
      }
    }
  }, 300_000);

  it('refuses a file that is not a disk image (random bytes) before touching the card, and never reports "verify: ok"', async () => {
    await scribble();
    const before = sha256(await readDirect(loop!, 4 * MiB));
    const junk = join(dir, 'random.img');
    await execa('dd', ['if=/dev/urandom', `of=${junk}`, 'bs=1M', 'count=8', 'status=none']);
    const r = await cli(['flash', '--image', junk, '--device', loop!, '--yes', '--allow-loop'], { cwd: dir });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/random\.img is not a disk image: its first sector holds no partition table/);
    expect(r.stdout).not.toMatch(/verify: ok/);
    expect(sha256(await readDirect(loop!, 4 * MiB))).toBe(before);
    // a zstd stream of random bytes is refused the same way after decompression
    const zjunk = join(dir, 'random.img.zst');
    await execa('sh', ['-c', `zstd -q -c "$1" > "$2"`, 'sh', junk, zjunk]);
    const z = await cli(['flash', '--image', zjunk, '--device', loop!, '--yes', '--allow-loop'], { cwd: dir });
    expect(z.code, z.stderr).toBe(2);
    expect(z.stderr).toMatch(/is not a disk image: .* after zstd decompression/);
    expect(sha256(await readDirect(loop!, 4 * MiB))).toBe(before);
  });

  it('says which image is missing', async () => {
    const r = await cli(['flash', 'pi-cluster-9', '--device', loop!, '--yes', '--allow-loop'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/build\/images\/pi-cluster-9\.img does not exist/);
    expect(r.stderr).toMatch(/pi-image build pi-cluster-9/);
  });

  it('--eject on a loop device: nothing to power off, a note, the flash still succeeds (-o json eject field)', async () => {
    const r = await cli(['flash', NODE, '--device', loop!, '--yes', '--allow-loop', '--eject', '-o', 'json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`note: not ejecting ${loop}: a loop device`);
    const report = JSON.parse(r.stdout) as { verify: { result: string }; eject: { ejected: boolean; note: string } };
    expect(report.verify.result).toBe('ok');
    expect(report.eject).toMatchObject({ ejected: false, note: expect.stringMatching(/no drive to power off/) });
    expect((await stat(loop!)).isBlockDevice()).toBe(true); // still there
  });

  it('writes the card with O_DIRECT from page-aligned memory (pieces off the 4096-byte grid through the page cache) and reads spans back with O_DIRECT', async () => {
    await scribble();
    // a plain Buffer is not aligned for O_DIRECT: the kernel refuses it (why alignedBuffer exists)
    const raw = await open(loop!, constants.O_RDONLY | constants.O_DIRECT);
    try {
      await expect(raw.read(Buffer.allocUnsafeSlow(DIRECT_ALIGN + 16).subarray(16), 0, DIRECT_ALIGN, 0)).rejects.toMatchObject({ code: 'EINVAL' });
      expect((await raw.read(alignedBuffer(DIRECT_ALIGN), 0, DIRECT_ALIGN, 0)).bytesRead).toBe(DIRECT_ALIGN);
    } finally {
      await raw.close();
    }
    const data = Buffer.from(imageBytes.subarray(0, 9 * MiB + 1000)); // 2 aligned chunks of 4 MiB, then 1 MiB + 1000 bytes
    const odd = Buffer.from(imageBytes.subarray(20 * MiB, 20 * MiB + 7000)); // starts and ends off the grid
    const oddAt = 16 * MiB + 512;
    const w = await CardWriter.open(loop!, 4 * MiB);
    try {
      expect(w.direct).toBe(true);
      await w.write(data, 0);
      await w.write(odd, oddAt);
      await w.sync();
    } finally {
      await w.close();
    }
    const card = await readDirect(loop!, 24 * MiB); // dd iflag=direct reads whole sectors
    expect(card.subarray(0, data.length).equals(data)).toBe(true);
    expect(card.subarray(oddAt, oddAt + odd.length).equals(odd)).toBe(true);

    // spans: one ending off the grid, one running past the end of the 128 MiB card (read short)
    const chunks: { span: number; position: number; last: boolean; bytes: Buffer }[] = [];
    const got = await readDeviceDirect(
      loop!,
      [{ start: 0, end: data.length }, { start: 128 * MiB - DIRECT_ALIGN, end: 128 * MiB + 3 * DIRECT_ALIGN }],
      (b, at) => void chunks.push({ ...at, bytes: Buffer.from(b) }),
      4 * MiB,
    );
    expect(got).toEqual([data.length, DIRECT_ALIGN]);
    expect(Buffer.concat(chunks.filter((c) => c.span === 0).map((c) => c.bytes)).equals(data)).toBe(true);
    expect(chunks.map((c) => [c.span, c.position, c.last])).toEqual([
      [0, 0, false],
      [0, 4 * MiB, false],
      [0, 8 * MiB, true],
      [1, 128 * MiB - DIRECT_ALIGN, true],
    ]);
  });
});
