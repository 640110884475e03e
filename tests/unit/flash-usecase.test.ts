/**
 * The flash use case (src/app/flash.ts) with fake ports: which file a node name or --image means
 * (raw or compressed forms, the one its build record describes), what is refused before the card is
 * touched, and that the target check uses the image's uncompressed size. No root, no devices.
 */
import { describe, expect, it } from 'vitest';
import { type FlashOptions, type FlashPorts, flashFailure, runFlash } from '../../src/app/flash.js';
import type { FlashOptions as WriteOptions, FlashResult } from '../../src/adapters/flash.js';
import type { BuildRecord } from '../../src/core/build-record.js';
import type { DeviceVerdict } from '../../src/core/devices.js';

const DIR = '/build/images';
const NODE = 'pi-cluster-2';

function record(path: string): BuildRecord {
  return {
    version: 1,
    node: NODE,
    role: 'agent',
    instanceId: `${NODE}-0f1e2d3c`,
    tool: { name: 'pi-image', version: '0.1.0' },
    builtAt: '2026-12-01T09:00:00.000Z',
    base: { name: 'base', path: '/cache/base.img', sha256: 'b'.repeat(64), size: 100 },
    inputs: { inventorySha256: '', templatesSha256: '', secretsVersion: 1, secretsDigest: '' },
    image: { path, sha256: 'a'.repeat(64), size: 40, compress: path.endsWith('.img') ? 'none' : 'zstd', rawSha256: 'c'.repeat(64) },
    files: [],
  };
}

function fakes(files: Record<string, number>, records: Record<string, BuildRecord> = {}, raw: Record<string, number> = {}) {
  const writes: WriteOptions[] = [];
  const inspected: number[] = [];
  const ports: FlashPorts = {
    blockDevices: {
      resolve: async (d) => d,
      inspect: async (o) => {
        inspected.push(o.imageSize);
        return { ok: true, device: o.device, description: `${o.device} 32 GB SD card`, warnings: [], refusals: [] } as unknown as DeviceVerdict;
      },
      rereadPartitionTable: async () => true,
      list: async () => [],
      holding: async () => [],
    },
    images: {
      size: async (p) => files[p],
      uncompressedSize: async (p) => raw[p] ?? files[p],
      readRecord: async (p) => records[p],
    },
    write: async (o): Promise<FlashResult> => {
      writes.push(o);
      return { device: o.device, image: o.image, bytes: 1, imageSha256: 'c'.repeat(64), writeMs: 1, verifyMs: 1, writeBytesPerSecond: 1, verify: { result: 'ok', files: [] } };
    },
  };
  return { ports, writes, inspected };
}

const opts = (o: Partial<FlashOptions>): FlashOptions => ({ buildDir: DIR, device: '/dev/sdz', verify: true, allowLoop: false, yes: true, prompt: undefined, log: () => undefined, ...o });

describe('flash use case: which image', () => {
  it('by node name, flashes the form its build record describes (here the .img.zst), sized by what it decompresses to', async () => {
    const zst = `${DIR}/${NODE}.img.zst`;
    const f = fakes({ [zst]: 40 }, { [`${DIR}/${NODE}.json`]: record(zst) }, { [zst]: 1000 });
    const o = await runFlash(opts({ node: NODE }), f.ports);
    expect(o.image).toBe(zst);
    expect(f.writes[0]?.image).toBe(zst);
    expect(f.writes[0]?.record?.image.path).toBe(zst);
    expect(f.inspected).toEqual([1000]);
  });

  it('by node name without a record, takes the only form there is; several forms and no record is refused', async () => {
    const xz = `${DIR}/${NODE}.img.xz`;
    const one = fakes({ [xz]: 40 });
    expect((await runFlash(opts({ node: NODE }), one.ports)).image).toBe(xz);
    const two = fakes({ [xz]: 40, [`${DIR}/${NODE}.img`]: 100 });
    await expect(runFlash(opts({ node: NODE }), two.ports)).rejects.toThrow(/several images .*pi-cluster-2\.img, pi-cluster-2\.img\.xz.* no build record/);
    expect(two.writes).toEqual([]);
  });

  it('refuses --image of a leftover raw image beside the compressed one its record describes', async () => {
    const raw = `${DIR}/${NODE}.img`;
    const zst = `${DIR}/${NODE}.img.zst`;
    const f = fakes({ [raw]: 100, [zst]: 40 }, { [`${DIR}/${NODE}.json`]: record(zst) });
    await expect(runFlash(opts({ image: raw }), f.ports)).rejects.toThrow(/is not the image its build record .* describes \(pi-cluster-2\.img\.zst.*left over/);
    expect(f.writes).toEqual([]);
    // the compressed one itself is fine
    expect((await runFlash(opts({ image: zst }), f.ports)).image).toBe(zst);
  });

  it('names the missing image and the command that builds it', async () => {
    const f = fakes({});
    await expect(runFlash(opts({ node: NODE }), f.ports)).rejects.toThrow(/pi-cluster-2\.img does not exist \(nor \.img\.zst or \.img\.xz\)/);
    await expect(runFlash(opts({ node: NODE }), f.ports)).rejects.toMatchObject({ hint: 'build it first: `pi-image build pi-cluster-2`' });
  });

  it('reports a failed read-back as an I/O error only after returning the outcome', async () => {
    const img = `${DIR}/${NODE}.img`;
    const f = fakes({ [img]: 100 });
    f.ports.write = async (o) => ({ device: o.device, image: o.image, bytes: 1, imageSha256: 'c'.repeat(64), writeMs: 1, verifyMs: 1, writeBytesPerSecond: 1, verify: { result: 'failed', firstBadOffset: 4096, files: [] } });
    const o = await runFlash(opts({ node: NODE }), f.ports);
    expect(flashFailure(o)?.message).toMatch(/verification of \/dev\/sdz failed: .* \(first difference at byte 4096\)/);
    expect(flashFailure(o)?.exitCode).toBe(4);
  });
});
