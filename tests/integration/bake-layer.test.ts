import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { inspectImage } from '../../src/adapters/partitions.js';
import { fatExists, fatList, fatReadFile, fatReadText, fatWriteFiles } from '../../src/adapters/fat.js';
import { ext4Apply, ext4List, ext4ReadFile, ext4Stat, requireCloudInit } from '../../src/adapters/ext4.js';
import { fileSha256, sparseCopy, withTempOutput, writeRenderedFiles, allocatedBytes } from '../../src/adapters/image-files.js';
import { InputError, IoError } from '../../src/core/errors.js';
import { fsckExt4, fsckFat, makePiOsImage, MiB, type PiOsImage } from '../helpers/pi-os-image.js';

let dir: string;
let base: PiOsImage;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pi-image-bake-'));
  base = await makePiOsImage({ dir, name: 'base.img' });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function copyOfBase(name: string): Promise<string> {
  const out = join(dir, name);
  await sparseCopy(base.path, out);
  return out;
}

describe('inspectImage', () => {
  it('reads the Pi OS layout', async () => {
    const l = await inspectImage(base.path);
    expect(l.diskId).toBe('6c586e13');
    expect(l.boot).toMatchObject({ number: 1, type: 0x0c, startBytes: 8 * MiB, sizeBytes: 512 * MiB, partuuid: '6c586e13-01' });
    expect(l.boot.fs).toMatchObject({ fatType: 'FAT32', label: 'bootfs' });
    expect(l.root).toMatchObject({ number: 2, type: 0x83, startBytes: 520 * MiB, sizeBytes: 64 * MiB, partuuid: '6c586e13-02' });
    expect(l.root.fs).toMatchObject({ label: 'rootfs', blockSize: 4096, extents: true });
    await expect(requireCloudInit({ image: base.path, offset: l.root.startBytes })).resolves.toBeUndefined();
  });

  it('rejects GPT clearly', async () => {
    const img = await makePiOsImage({ dir, name: 'gpt.img', table: 'gpt' });
    const err = await inspectImage(img.path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toBe(
      `base image ${img.path} has a GPT partition table; pi-image needs the Raspberry Pi OS MBR layout: p1 FAT bootfs, p2 ext4 rootfs`,
    );
    await img.cleanup();
  });

  it('rejects a p1 without FAT', async () => {
    const img = await makePiOsImage({ dir, name: 'nofat.img', fat: false });
    await expect(inspectImage(img.path)).rejects.toThrow(/partition 1 has no FAT filesystem/);
    await img.cleanup();
  });

  it('rejects wrong labels unless told otherwise', async () => {
    const img = await makePiOsImage({ dir, name: 'labels.img', bootLabel: 'BOOT', rootLabel: 'root' });
    await expect(inspectImage(img.path)).rejects.toThrow(/labelled "BOOT", expected "bootfs"/);
    await expect(inspectImage(img.path, { bootLabel: null })).rejects.toThrow(/labelled "root", expected "rootfs"/);
    await expect(inspectImage(img.path, { bootLabel: null, rootLabel: null })).resolves.toBeDefined();
    await img.cleanup();
  });

  it('rejects a base without cloud-init', async () => {
    const img = await makePiOsImage({ dir, name: 'nocloud.img', cloudInit: false });
    const l = await inspectImage(img.path);
    const err = await requireCloudInit({ image: img.path, offset: l.root.startBytes }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/has no cloud-init \(\/etc\/cloud\/cloud\.cfg is missing/);
    await img.cleanup();
  });

  it('rejects a missing file and a truncated image', async () => {
    await expect(inspectImage(join(dir, 'nope.img'))).rejects.toThrow(InputError);
    const img = await makePiOsImage({ dir, name: 'trunc.img' });
    const { truncate } = await import('node:fs/promises');
    await truncate(img.path, 300 * MiB);
    await expect(inspectImage(img.path)).rejects.toThrow(/is truncated: partition \d ends at byte \d+ but the file has 314572800 bytes/);
    await img.cleanup();
  });
});

describe('FAT via mtools', () => {
  it('writes, overwrites and reads back byte-equal; fsck.vfat stays clean', async () => {
    const img = await copyOfBase('fat.img');
    const v = { image: img, offset: base.bootOffset };
    expect((await fatReadText(v, '/cmdline.txt')).trim()).toBe(base.cmdline);
    const blob = randomBytes(3 * MiB + 17);
    await fatWriteFiles(v, [
      { path: '/user-data', contents: '#cloud-config\nhostname: n1\n' },
      { path: '/cmdline.txt', contents: `${base.cmdline} cgroup_enable=memory\n` },
      { path: '/pi-image/deep/dir/blob.bin', contents: blob },
      { path: '/Mixed-Case.TXT', contents: 'x' },
    ], { mtime: new Date('2025-01-01T00:00:00Z') });
    expect(await fatReadText(v, '/user-data')).toBe('#cloud-config\nhostname: n1\n');
    expect(await fatReadText(v, '/cmdline.txt')).toBe(`${base.cmdline} cgroup_enable=memory\n`);
    expect((await fatReadFile(v, '/pi-image/deep/dir/blob.bin')).equals(blob)).toBe(true);
    expect(await fatExists(v, '/mixed-case.txt')).toBe(true);
    expect(await fatList(v, '/pi-image/deep')).toEqual(['dir/']);
    await expect(fatReadFile(v, '/missing.txt')).rejects.toThrow(IoError);
    const fsck = await fsckFat(img, base.bootOffset, base.bootSize);
    expect(fsck.output).not.toMatch(/differences|corrupt|error/i);
    expect(fsck.ok).toBe(true);
  });
});

describe('ext4 via debugfs', () => {
  it('batch-writes files, dirs and symlinks with mode/uid/gid; reads back byte-equal; e2fsck clean', async () => {
    const img = await copyOfBase('ext4.img');
    const v = { image: img, offset: base.rootOffset };
    const big = randomBytes(5 * MiB + 3);
    await ext4Apply(v, [
      { kind: 'file', path: '/etc/rancher/k3s/config.yaml', contents: 'token-file: /etc/rancher/k3s/token\n', mode: 0o644 },
      { kind: 'file', path: '/etc/rancher/k3s/token', contents: 's3cret\n', mode: 0o600 },
      { kind: 'file', path: '/var/lib/pi-image/blob', contents: big, mode: 0o640, uid: 1000, gid: 1000 },
      { kind: 'file', path: '/etc/hostname', contents: 'node-1\n', mode: 0o644 },
      { kind: 'dir', path: '/home/admin/.ssh', mode: 0o700, uid: 1000, gid: 1000 },
      { kind: 'symlink', path: '/etc/systemd/system/multi-user.target.wants/pi-image-join.service', target: '/etc/systemd/system/pi-image-join.service' },
      { kind: 'file', path: '/usr/local/bin/pi-image-join', contents: '#!/bin/sh\nexit 0\n', mode: 0o755 },
    ], { epoch: 1735689600 });

    expect((await ext4ReadFile(v, '/etc/rancher/k3s/token')).toString()).toBe('s3cret\n');
    expect((await ext4ReadFile(v, '/var/lib/pi-image/blob')).equals(big)).toBe(true);
    expect((await ext4ReadFile(v, '/etc/hostname')).toString()).toBe('node-1\n');
    expect(await ext4Stat(v, '/etc/rancher/k3s/token')).toMatchObject({ type: 'regular', mode: 0o600, uid: 0, gid: 0, size: 7 });
    expect(await ext4Stat(v, '/var/lib/pi-image/blob')).toMatchObject({ mode: 0o640, uid: 1000, gid: 1000 });
    expect(await ext4Stat(v, '/usr/local/bin/pi-image-join')).toMatchObject({ mode: 0o755 });
    expect(await ext4Stat(v, '/home/admin/.ssh')).toMatchObject({ type: 'directory', mode: 0o700, uid: 1000, gid: 1000 });
    expect(await ext4Stat(v, '/etc/systemd/system/multi-user.target.wants/pi-image-join.service')).toMatchObject({
      type: 'symlink',
      linkTarget: '/etc/systemd/system/pi-image-join.service',
    });
    expect(await ext4Stat(v, '/etc/rancher')).toMatchObject({ type: 'directory', mode: 0o755, uid: 0 });
    expect(await ext4Stat(v, '/nope')).toBeUndefined();
    expect((await ext4List(v, '/etc/rancher/k3s')).sort()).toEqual(['config.yaml', 'token']);
    // the cloud-init config of the base is untouched
    expect((await ext4ReadFile(v, '/etc/cloud/cloud.cfg')).toString()).toMatch(/^# minimal cloud.cfg/);

    const fsck = await fsckExt4(img, base.rootOffset);
    expect(fsck.output).toMatch(/Pass 5/);
    expect(fsck.ok).toBe(true);
  });

  it('fails clearly when a parent is a file', async () => {
    const img = await copyOfBase('ext4-bad.img');
    const v = { image: img, offset: base.rootOffset };
    const err = await ext4Apply(v, [{ kind: 'file', path: '/etc/hostname/x', contents: 'x', mode: 0o644 }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).details.join('\n')).toMatch(/expected 1 written path/);
  });
});

describe('image files', () => {
  it('sparse copy stays sparse and leaves the base unchanged; withTempOutput renames or cleans up', async () => {
    // a smaller base keeps the hashing cheap
    const small = await makePiOsImage({ dir, name: 'small.img', bootMiB: 64, rootMiB: 16 });
    const before = await fileSha256(small.path);
    const out = join(dir, 'node-1.img');
    const layout = await inspectImage(small.path);
    await withTempOutput(out, async (tmp) => {
      await sparseCopy(small.path, tmp);
      await writeRenderedFiles(tmp, layout, [
        { path: 'user-data', target: 'boot', mode: 0o644, contents: '#cloud-config\n', secret: false },
        { path: '/etc/rancher/node/password', target: 'root', mode: 0o600, contents: 'pw\n', secret: true },
        { path: 'out.json', target: 'build', mode: 0o644, contents: '{}', secret: false },
      ], { epoch: 1735689600 });
    });
    expect(await fileSha256(small.path)).toBe(before);
    expect(await allocatedBytes(out)).toBeLessThan((await stat(out)).size / 4);
    expect(await fatReadText({ image: out, offset: layout.boot.startBytes }, '/user-data')).toBe('#cloud-config\n');
    expect(await ext4Stat({ image: out, offset: layout.root.startBytes }, '/etc/rancher/node/password')).toMatchObject({ mode: 0o600 });

    const failing = join(dir, 'failing.img');
    await expect(
      withTempOutput(failing, async (tmp) => {
        await sparseCopy(small.path, tmp);
        throw new IoError('boom');
      }),
    ).rejects.toThrow('boom');
    expect((await readdir(dir)).filter((f) => f.startsWith('failing.img'))).toEqual([]);
  });
});

describe('reproducible bakes', () => {
  it('two bakes with the same epoch are byte-identical', async () => {
    const small = await makePiOsImage({ dir, name: 'repro-base.img', bootMiB: 64, rootMiB: 16 });
    const layout = await inspectImage(small.path);
    const files = [
      { path: 'user-data', target: 'boot' as const, mode: 0o644, contents: '#cloud-config\n', secret: false },
      { path: 'pi-image/seed/x', target: 'boot' as const, mode: 0o644, contents: 'x', secret: false },
      { path: '/etc/rancher/k3s/config.yaml', target: 'root' as const, mode: 0o600, contents: 'a: 1\n', secret: false },
    ];
    const shas: string[] = [];
    for (const n of ['repro-1.img', 'repro-2.img']) {
      const out = join(dir, n);
      await sparseCopy(small.path, out);
      await writeRenderedFiles(out, layout, files, { epoch: 1735689600 });
      shas.push(await fileSha256(out));
      await new Promise((r) => setTimeout(r, 1100)); // a clock tick between the bakes
    }
    expect(shas[0]).toBe(shas[1]);
  });
});

describe('withTempOutput and signals', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('removes the temp output on %s', async (sig) => {
    const dest = join(dir, `signalled-${sig}.img`);
    const child = execa('node', ['--import', 'tsx', 'tests/helpers/temp-output-child.ts', dest], { reject: false });
    const tmp = await new Promise<string>((res, rej) => {
      child.stdout?.on('data', (d: Buffer) => {
        const m = /ready (\S+)/.exec(d.toString());
        if (m?.[1] !== undefined) res(m[1]);
      });
      child.catch(rej);
    });
    expect((await stat(tmp)).size).toBe(7);
    child.kill(sig);
    const r = await child;
    expect(r.signal).toBe(sig);
    await expect(stat(tmp)).rejects.toThrow(/ENOENT/);
    await expect(stat(dest)).rejects.toThrow(/ENOENT/);
  });
});
