/**
 * The pieces the bake's speed rests on, on real files and a real Pi-OS-layout image:
 * fileSha256 (worker thread, 1 MiB reads) equals a one-shot sha256, reports progress and fails
 * clearly; ext4 `copy` ops write host files byte-equal in the same debugfs run as the rest.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ext4Apply, ext4ReadFile, ext4Stat } from '../../src/adapters/ext4.js';
import { fatReadFile } from '../../src/adapters/fat.js';
import { fileRangeSums, fileSha256, fileSha256AndRanges, type Progress, sparseCopy, writeRenderedFiles } from '../../src/adapters/image-files.js';
import { inspectImage } from '../../src/adapters/partitions.js';
import { hashAndMapImage } from '../../src/adapters/bmap.js';
import { parseBmap, rangeBytes } from '../../src/core/bmap.js';
import { IoError } from '../../src/core/errors.js';
import { fsckExt4, makePiOsImage, MiB, type PiOsImage } from '../helpers/pi-os-image.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let dir: string;
let base: PiOsImage;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pi-image-bake-speed-'));
  base = await makePiOsImage({ dir, name: 'base.img', bootMiB: 64, rootMiB: 48 });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fileSha256', () => {
  it('equals the sha256 of the whole contents for sizes around the read size, and of an empty file', async () => {
    for (const size of [0, 1, MiB - 1, MiB, 3 * MiB + 17]) {
      const p = join(dir, `h-${size}`);
      const data = randomBytes(size);
      await writeFile(p, data);
      expect(await fileSha256(p), `${size} bytes`).toBe(sha(data));
    }
  });

  it('hashes a sparse image like its bytes, reports growing progress up to the size, and runs several at once', async () => {
    const whole = await readFile(base.path);
    const seen: Progress[] = [];
    const [a, b] = await Promise.all([fileSha256(base.path, (p) => seen.push(p)), fileSha256(base.path)]);
    expect(a).toBe(sha(whole));
    expect(b).toBe(a);
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.every((p, i) => p.phase === 'hash' && p.total === whole.length && (i === 0 || p.bytes > seen[i - 1]!.bytes))).toBe(true);
    expect(seen.at(-1)!.bytes).toBe(whole.length);
  });

  it('fails with an IoError naming the file', async () => {
    const missing = join(dir, 'no-such.img');
    const err = await fileSha256(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).message).toContain(missing);
    expect((err as IoError).message).toMatch(/ENOENT/);
    const err2 = await fileSha256(dir).catch((e: unknown) => e); // a directory cannot be read
    expect(err2).toBeInstanceOf(IoError);
  });

  it('stops when its signal is aborted', async () => {
    const stop = new AbortController();
    const pending = fileSha256(base.path, () => stop.abort(), stop.signal);
    await expect(pending).rejects.toThrow(/cancelled/);
    await expect(fileSha256(base.path, undefined, AbortSignal.abort())).rejects.toBeInstanceOf(IoError);
  });

  it('turns a failing progress callback into a rejection', async () => {
    const err = await fileSha256(base.path, () => {
      throw new Error('progress display broke');
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).message).toMatch(/progress display broke/);
  });
});

describe('fileSha256AndRanges and fileRangeSums', () => {
  it('give the file sha256 and each range sha256, holes hashed as zeros, in one pass or in a thread of their own', async () => {
    // 9 MiB: data, a hole, data; ranges that cross the hole and the read size, and a one-byte range
    const p = join(dir, 'ranges.img');
    const bytes = Buffer.alloc(9 * MiB);
    randomBytes(3 * MiB).copy(bytes, 0);
    randomBytes(2 * MiB).copy(bytes, 7 * MiB);
    await writeFile(p, bytes);
    const data = [
      { start: 0, end: 3 * MiB },
      { start: 7 * MiB, end: 9 * MiB },
    ];
    const ranges = [
      { start: 4096, end: MiB + 12345 },
      { start: 2 * MiB, end: 8 * MiB },
      { start: 9 * MiB - 1, end: 9 * MiB },
    ];
    const seen: Progress[] = [];
    const r = await fileSha256AndRanges(p, { ranges, data }, (x) => seen.push(x));
    expect(r.sha256).toBe(sha(bytes));
    expect(r.sums).toEqual(ranges.map((x) => sha(bytes.subarray(x.start, x.end))));
    expect(seen.at(-1)).toEqual({ phase: 'hash', bytes: bytes.length, total: bytes.length });
    // no ranges: the file's sha256 alone; the ranges alone, with or without the extents; several at once
    const [a, b, c, d] = await Promise.all([fileSha256AndRanges(p, { data }), fileSha256AndRanges(p, { ranges }), fileRangeSums(p, { ranges, data }), fileRangeSums(p, { ranges })]);
    expect(a).toEqual({ sha256: sha(bytes), sums: [] });
    expect(b).toEqual(r);
    expect(c).toEqual(r.sums);
    expect(d).toEqual(r.sums);
  });

  it('fails once, naming the file, when the file is missing or the signal is aborted', async () => {
    const missing = join(dir, 'no-such-ranges.img');
    for (const err of await Promise.all([
      fileSha256AndRanges(missing, { ranges: [{ start: 0, end: 10 }] }).catch((e: unknown) => e),
      fileRangeSums(missing, { ranges: [{ start: 0, end: 10 }] }).catch((e: unknown) => e),
    ])) {
      expect(err).toBeInstanceOf(IoError);
      expect((err as IoError).message).toContain(missing);
    }
    const stop = new AbortController();
    const pending = fileSha256AndRanges(base.path, { ranges: [{ start: 0, end: MiB }] }, () => stop.abort(), stop.signal);
    await expect(pending).rejects.toThrow(/cancelled/);
    await expect(fileRangeSums(base.path, { ranges: [{ start: 0, end: MiB }] }, AbortSignal.abort())).rejects.toThrow(/cancelled/);
  });
});

describe('hashAndMapImage', () => {
  it('gives the image sha256 and a block map whose range sums match the image', async () => {
    const layout = await inspectImage(base.path);
    const d = await hashAndMapImage(base.path, layout);
    const bytes = await readFile(base.path);
    expect(d.sha256).toBe(sha(bytes));
    const parsed = parseBmap(d.bmap.text);
    if (!('bmap' in parsed)) throw new Error(parsed.problem);
    expect(parsed.bmap.checksum).toBe(d.bmap.checksum);
    for (const r of parsed.bmap.ranges) {
      const { start, end } = rangeBytes(r, parsed.bmap.imageSize);
      expect(sha(bytes.subarray(start, end)), `blocks ${r.first}-${r.last}`).toBe(r.sha256);
    }
  });

  it('fails with one IoError when the map cannot be made (no hash is started)', async () => {
    const layout = await inspectImage(base.path);
    // the FAT partition where the ext4 one should be: dumpe2fs refuses it
    const wrong = { ...layout, root: { ...layout.root, startBytes: layout.boot.startBytes } };
    const err = await hashAndMapImage(base.path, wrong).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).message).toMatch(/cannot map the blocks of .*base\.img/);
    await expect(hashAndMapImage(base.path, layout, AbortSignal.abort())).rejects.toThrow(/cancelled/);
  });
});

describe('ext4 copy ops', () => {
  it('copies host files byte-equal with mode and owner, together with rendered files; e2fsck clean', async () => {
    const img = join(dir, 'copy.img');
    await sparseCopy(base.path, img);
    const layout = await inspectImage(img);
    const payloadDir = join(dir, 'airgap');
    await mkdir(payloadDir, { recursive: true });
    const binary = randomBytes(5 * MiB + 3);
    await writeFile(join(payloadDir, 'k3s-arm64'), binary);
    await writeFile(join(payloadDir, 'install.sh'), '#!/bin/sh\nexit 0\n');

    await writeRenderedFiles(
      img,
      layout,
      [
        { path: 'meta-data', target: 'boot', mode: 0o644, contents: 'instance-id: x\n', secret: false },
        { path: '/etc/pi-image/rendered', target: 'root', mode: 0o640, contents: 'rendered\n', secret: false },
      ],
      {
        epoch: 1735689600,
        rootOps: [
          { kind: 'copy', path: '/usr/local/bin/k3s', source: join(payloadDir, 'k3s-arm64'), mode: 0o755 },
          { kind: 'copy', path: '/var/lib/pi-image/install.sh', source: join(payloadDir, 'install.sh'), mode: 0o700, uid: 1000, gid: 1000 },
        ],
      },
    );
    const v = { image: img, offset: base.rootOffset };
    expect((await ext4ReadFile(v, '/usr/local/bin/k3s')).equals(binary)).toBe(true);
    expect(await ext4Stat(v, '/usr/local/bin/k3s')).toMatchObject({ type: 'regular', mode: 0o755, uid: 0, gid: 0, size: binary.length });
    expect(await ext4Stat(v, '/var/lib/pi-image/install.sh')).toMatchObject({ mode: 0o700, uid: 1000, gid: 1000 });
    expect((await ext4ReadFile(v, '/etc/pi-image/rendered')).toString()).toBe('rendered\n');
    expect((await fatReadFile({ image: img, offset: base.bootOffset }, '/meta-data')).toString()).toBe('instance-id: x\n');
    const fsck = await fsckExt4(img, base.rootOffset);
    expect(fsck.ok, fsck.output).toBe(true);
  });

  it('refuses a missing or non-file source with an IoError naming it, before touching the image', async () => {
    const img = join(dir, 'copy-missing.img');
    await sparseCopy(base.path, img);
    const before = sha(await readFile(img));
    const v = { image: img, offset: base.rootOffset };
    const missing = join(dir, 'airgap-missing', 'k3s-arm64');
    for (const source of [missing, dir]) {
      const err = await ext4Apply(v, [{ kind: 'copy', path: '/usr/local/bin/k3s', source, mode: 0o755 }]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IoError);
      expect((err as IoError).message).toContain(source);
      expect((err as IoError).message).toContain('/usr/local/bin/k3s');
    }
    expect(sha(await readFile(img))).toBe(before);
  });
});
