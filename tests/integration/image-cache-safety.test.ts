/**
 * The image cache never loses a good entry: a failed re-import (wrong --sha256, a text file, a
 * catalogue name whose sha256 does not match) leaves image and record as they were; `images list`
 * says "cached" only for an image that is there; an entry's lock serialises fetch/import/verify;
 * the recorded sha256 is trusted only while the file's size, mtime and inode are unchanged; a
 * compressed --base gets the command that imports it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { entryPaths, readCacheRecord, trustedSha256 } from '../../src/adapters/image-cache.js';
import { acquireLock } from '../../src/adapters/lock.js';
import { importImage, runImagesImport, runImagesList, verifyCachedImage } from '../../src/app/images.js';
import type { CatalogueEntry } from '../../src/core/catalogue.js';
import { InputError } from '../../src/core/errors.js';
import { makePiOsImage } from '../helpers/pi-os-image.js';
import { cli } from '../helpers/run-cli.js';
import { sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let dir: string;
let good: string;
let other: string;
let goodXz: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pi-image-cache-safety-'));
  good = (await makePiOsImage({ dir, name: 'good.img', bootMiB: 64, rootMiB: 16 })).path;
  other = (await makePiOsImage({ dir, name: 'other.img', bootMiB: 64, rootMiB: 16, rootFiles: { '/etc/other': 'x' } })).path;
  goodXz = join(dir, 'good.img.xz');
  execFileSync('sh', ['-c', `xz -1 -c '${good}' > '${goodXz}'`]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let cache: string;
beforeEach(async () => {
  cache = await mkdtemp(join(dir, 'cache-'));
});

/** The entry's image bytes, record text and inode: what "left as it was" compares. */
async function snapshot(name: string): Promise<{ img: string; record: string; ino: number }> {
  const p = entryPaths(cache, name);
  return { img: sha(await readFile(p.img)), record: await readFile(p.sidecar, 'utf8'), ino: (await stat(p.img)).ino };
}

describe('a failed re-import leaves the cache as it was', () => {
  it('wrong --sha256: InputError, the good image and its record unchanged, still listed as cached', async () => {
    await importImage(good, 'my-base', { cacheDir: cache });
    const before = await snapshot('my-base');
    const e = await importImage(other, 'my-base', { cacheDir: cache, expectedSha256: 'f'.repeat(64) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).message).toContain(`expected ${'f'.repeat(64)}`);
    expect(await snapshot('my-base')).toEqual(before);
    expect((await verifyCachedImage('my-base', undefined, { cacheDir: cache })).ok).toBe(true);
    expect(await readdir(join(cache, 'images'))).toEqual(['my-base.img', 'my-base.json']); // no temp, no lock
    const list = await runImagesList({ cache, env: {}, cwd: dir });
    expect(list.images.find((i) => i.name === 'my-base')).toMatchObject({ cached: true, sha256: sha(await readFile(good)) });
  });

  it.each([
    ['a text file', 'notes.txt', () => 'these are not the bytes you are looking for\n'.repeat(40), /is not a disk image: it is a text file/],
    ['random bytes', 'random.img', () => Buffer.alloc(4096, 7), /sector 0 holds no partition table/],
    ['a tiny file', 'tiny.img', () => 'x', /is only 1 bytes/],
  ])('%s is refused (exit 2) and the entry stays', async (_label, fileName, content, message) => {
    await importImage(good, 'my-base', { cacheDir: cache });
    const before = await snapshot('my-base');
    const file = join(dir, fileName);
    await writeFile(file, content());
    const r = await cli(['images', 'import', file, '--name', 'my-base', '--cache', cache], { cwd: dir, env: {} });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain(file);
    expect(await snapshot('my-base')).toEqual(before);
    // and under a new name nothing appears at all
    const fresh = await cli(['images', 'import', file, '--name', 'fresh', '--cache', cache], { cwd: dir, env: {} });
    expect(fresh.code).toBe(2);
    expect(await readCacheRecord(cache, 'fresh')).toBeUndefined();
    expect((await readdir(join(cache, 'images'))).filter((f) => f.startsWith('fresh'))).toEqual([]);
  });
});

describe('a catalogue name keeps the catalogue check', () => {
  const entry = (over: Partial<CatalogueEntry> = {}): CatalogueEntry => ({
    name: 'test-base',
    description: 'test',
    release: undefined,
    arch: 'arm64',
    url: 'https://example.invalid/good.img.xz',
    compression: 'xz',
    sha256: '',
    size: undefined,
    image: { sha256: undefined, size: undefined },
    layout: { bootLabel: 'bootfs', rootLabel: 'rootfs' },
    cloudInit: true,
    source: 'images/test-base.yaml',
    ...over,
  });

  it('accepts the download as published, or its raw image when the catalogue names its sha256', async () => {
    const e = entry({ sha256: sha(await readFile(goodXz)) });
    expect((await importImage(goodXz, 'test-base', { cacheDir: cache, entry: e })).record.sha256).toBe(sha(await readFile(good)));
    const withRaw = entry({ sha256: 'a'.repeat(64), image: { sha256: sha(await readFile(good)), size: undefined } });
    expect((await importImage(good, 'test-base', { cacheDir: cache, entry: withRaw })).record.compression).toBe('none');
  });

  it('refuses another file under the catalogue name and keeps the cached one', async () => {
    const e = entry({ sha256: sha(await readFile(goodXz)) });
    await importImage(goodXz, 'test-base', { cacheDir: cache, entry: e });
    const before = await snapshot('test-base');
    const err = await importImage(other, 'test-base', { cacheDir: cache, entry: e }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).message).toMatch(/is not the image images\/test-base\.yaml names/);
    expect((err as InputError).hint).toContain('--name my-test-base');
    expect(await snapshot('test-base')).toEqual(before);
  });

  it('the real catalogue name raspios-lite-arm64-trixie refuses a test image (images import command)', async () => {
    const r = await runImagesImport({ cache, env: {}, cwd: dir, file: good, name: 'raspios-lite-arm64-trixie' }).catch((x: unknown) => x);
    expect(r).toBeInstanceOf(InputError);
    expect(await readCacheRecord(cache, 'raspios-lite-arm64-trixie')).toBeUndefined();
  });
});

describe('images list', () => {
  it('does not say "cached" when the image file is gone', async () => {
    await importImage(good, 'my-base', { cacheDir: cache });
    await unlink(entryPaths(cache, 'my-base').img);
    const json = await cli(['images', 'list', '--cache', cache, '-o', 'json'], { cwd: dir, env: {} });
    const row = (JSON.parse(json.stdout) as { images: { name: string; cached: boolean; missing?: boolean }[] }).images.find((i) => i.name === 'my-base');
    expect(row).toMatchObject({ cached: false, missing: true });
    const text = await cli(['images', 'list', '--cache', cache], { cwd: dir, env: {} });
    const line = text.stdout.split('\n').find((l) => l.startsWith('my-base'));
    expect(line).toContain('not cached');
    expect(line).toContain('image file is missing');
  });
});

describe('the recorded sha256 is trusted only for the same file', () => {
  it('same size, mtime and inode: trusted; touched or replaced: not; verify re-hashes and trusts again', async () => {
    const got = await importImage(good, 'my-base', { cacheDir: cache });
    expect(got.record.file).toMatchObject({ size: got.record.size });
    expect(await trustedSha256(cache, 'my-base')).toBe(got.record.sha256);
    const later = new Date(Date.now() + 60_000);
    await utimes(got.path, later, later);
    expect(await trustedSha256(cache, 'my-base')).toBeUndefined();
    const v = await verifyCachedImage('my-base', undefined, { cacheDir: cache });
    expect(v.ok).toBe(true);
    expect(await trustedSha256(cache, 'my-base')).toBe(got.record.sha256);
    // a new file in its place (new inode), same bytes: not trusted until verified
    const bytes = await readFile(got.path);
    await unlink(got.path);
    await writeFile(got.path, bytes);
    expect(await trustedSha256(cache, 'my-base')).toBeUndefined();
  });
});

describe('one lock per cache entry', () => {
  it('an import waits while another process holds the entry, then runs', async () => {
    await importImage(good, 'my-base', { cacheDir: cache });
    const lock = await acquireLock(entryPaths(cache, 'my-base').lock, { what: 'fetching my-base' });
    let finished = false;
    const pending = importImage(other, 'my-base', { cacheDir: cache }).then((r) => {
      finished = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(finished).toBe(false);
    expect(sha(await readFile(entryPaths(cache, 'my-base').img))).toBe(sha(await readFile(good)));
    await lock.release();
    const r = await pending;
    expect(r.record.sha256).toBe(sha(await readFile(other)));
  });
});

describe('build --base with a compressed file', () => {
  it('exit 2 with the command that imports it, instead of "no MBR"', async () => {
    const inv = writeInventory(sampleFiles());
    try {
      const env = { PATH: process.env.PATH, HOME: join(inv.root, 'home'), XDG_CONFIG_HOME: join(inv.root, 'xdg'), PI_IMAGE_CACHE: cache };
      expect((await cli(['secrets', 'init'], { cwd: inv.root, env })).code).toBe(0);
      const r = await cli(['build', 'pi-cluster-2', '--base', goodXz, '--build-dir', join(inv.root, 'out')], { cwd: inv.root, env });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('is xz-compressed');
      expect(r.stderr).toContain(`pi-image images import ${goodXz} --name good`);
      expect(r.stderr).not.toMatch(/no MBR/);
    } finally {
      inv.cleanup();
    }
  });
});
