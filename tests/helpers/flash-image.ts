/**
 * Test helpers for flash/netboot: a small Pi-OS-layout image (tests/helpers/pi-os-image.ts) with
 * node seed files on the boot partition and a build record next to it, in the shape bake writes
 * (`{ node, image: { path, sha256, size }, files: [{ target, path, sha256, mode }] }`); and loop
 * devices that are always detached.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
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
  await writeFile(
    record,
    JSON.stringify(
      {
        node,
        image: { path: img.path, sha256: await fileSha256(img.path), size },
        files: Object.entries(seed).map(([path, contents]) => ({ target: 'boot', path, sha256: sha256(contents), mode: 0o644 })),
      },
      null,
      2,
    ),
  );
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
