/**
 * Test helpers for flash/netboot: a small Pi-OS-layout image (tests/helpers/pi-os-image.ts) with
 * node seed files on the boot partition and a build record next to it, in the shape bake writes
 * (src/core/build-record.ts); and loop
 * devices that are always detached.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { BUILD_RECORD_VERSION, type BuildRecord, serializeBuildRecord } from '../../src/core/build-record.js';
import { makePiOsImage, MiB, type PiOsImage, type PiOsImageOptions } from './pi-os-image.js';

export interface FlashTestImage extends PiOsImage {
  record: string;
  seed: Record<string, string>;
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function fileSha256(path: string): Promise<string> {
  return sha256(await readFile(path));
}

/** A 64 MiB-boot / 32 MiB-root image for `node` with seed files and `build/images/<node>.json`. */
export async function makeFlashTestImage(dir: string, node: string, opts: Partial<PiOsImageOptions> = {}): Promise<FlashTestImage> {
  const seed: Record<string, string> = {
    'meta-data': `instance-id: ${node}-${sha256(node).slice(0, 12)}\nlocal-hostname: ${node}\n`,
    'user-data': `#cloud-config\nhostname: ${node}\nmanage_etc_hosts: true\n`,
    'network-config': 'network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n      optional: false\n',
  };
  const img = await makePiOsImage({ dir, name: `${node}.img`, bootMiB: 64, rootMiB: 32, ...opts, bootFiles: { ...seed, ...opts.bootFiles } });
  const record = join(dir, `${node}.json`);
  const { size } = await import('node:fs/promises').then((m) => m.stat(img.path));
  const imageSha = await fileSha256(img.path);
  const built: BuildRecord = {
    version: BUILD_RECORD_VERSION,
    node,
    role: 'agent',
    instanceId: `${node}-${sha256(node).slice(0, 12)}`,
    tool: { name: 'pi-image', version: '0.0.0-test' },
    builtAt: new Date(0).toISOString(),
    base: { name: 'test-base', path: img.path, sha256: imageSha, size },
    inputs: { inventorySha256: '', templatesSha256: '', secretsVersion: 0, secretsDigest: '' },
    image: { path: img.path, sha256: imageSha, size, compress: 'none', rawSha256: imageSha },
    files: Object.entries(seed).map(([path, contents]) => ({
      target: 'boot' as const,
      path,
      mode: '0644',
      bytes: Buffer.byteLength(contents),
      secret: false,
      sha256: sha256(contents),
      digest: sha256(contents).slice(0, 12),
    })),
  };
  await writeFile(record, serializeBuildRecord(built));
  return { ...img, record, seed };
}

/** A loop device over a new sparse file of `bytes` (root only). */
export async function attachLoop(backing: string, bytes: number): Promise<string> {
  await execa('truncate', ['-s', String(bytes), backing]);
  const { stdout } = await execa('losetup', ['-f', '--show', backing]);
  return stdout.trim();
}

export async function detachLoop(dev: string | undefined): Promise<void> {
  if (dev === undefined) return;
  await execa('losetup', ['-d', dev], { reject: false });
}

/** Reads `length` bytes from `device` with O_DIRECT (what is really on the medium). */
export async function readDirect(device: string, length: number): Promise<Buffer> {
  const r = await execa('dd', [`if=${device}`, 'bs=1M', `count=${length}`, 'iflag=direct,count_bytes', 'status=none'], { encoding: 'buffer', stripFinalNewline: false, maxBuffer: 1024 * MiB });
  return Buffer.from(r.stdout);
}

export const canUseLoop = process.getuid?.() === 0;
export { MiB };
