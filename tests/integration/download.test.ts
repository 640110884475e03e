import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile, open } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { readCacheRecord } from '../../src/adapters/image-cache.js';
import { fetchImage, importImage, verifyCachedImage, type Progress } from '../../src/app/images.js';
import { inspectImage } from '../../src/adapters/partitions.js';
import { allocatedBytes } from '../../src/adapters/image-files.js';
import type { CatalogueEntry } from '../../src/core/catalogue.js';
import { InputError, IoError } from '../../src/core/errors.js';
import { makePiOsImage } from '../helpers/pi-os-image.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let dir: string;
let imgPath: string;
let img: Buffer;
let xz: Buffer;
let server: Server;
let base: string;
let mode: 'good' | 'truncate' | 'drop-once' | 'no-range' = 'good';
let requests: { url: string; range: string | undefined }[] = [];

function handle(req: IncomingMessage, res: ServerResponse): void {
  const range = req.headers.range;
  requests.push({ url: req.url ?? '', range });
  if (req.url !== '/images/test.img.xz') {
    res.writeHead(404).end();
    return;
  }
  const m = /^bytes=(\d+)-$/.exec(range ?? '');
  if (m !== null && mode !== 'no-range') {
    const start = Number(m[1]);
    if (start >= xz.length) {
      res.writeHead(416, { 'Content-Range': `bytes */${xz.length}` }).end();
      return;
    }
    res.writeHead(206, { 'Content-Length': xz.length - start, 'Content-Range': `bytes ${start}-${xz.length - 1}/${xz.length}` });
    res.end(xz.subarray(start));
    return;
  }
  res.writeHead(200, { 'Content-Length': xz.length, 'Content-Type': 'application/x-xz' });
  const firstRequest = requests.length === 1;
  if (mode === 'truncate' || (mode === 'drop-once' && firstRequest)) {
    res.write(xz.subarray(0, Math.floor(xz.length / 2)), () => {
      setTimeout(() => res.socket?.destroy(), 50);
    });
    return;
  }
  res.end(xz);
}

function entry(over: Partial<CatalogueEntry> = {}): CatalogueEntry {
  return {
    name: 'test-base',
    description: 'test',
    release: undefined,
    arch: 'arm64',
    url: `${base}/images/test.img.xz`,
    compression: 'xz',
    sha256: sha(xz),
    size: undefined,
    image: { sha256: sha(img), size: img.length },
    layout: { bootLabel: 'bootfs', rootLabel: 'rootfs' },
    cloudInit: true,
    source: 'images/test-base.yaml',
    ...over,
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pi-image-dl-'));
  const made = await makePiOsImage({
    dir,
    name: 'src.img',
    bootMiB: 64,
    rootMiB: 16,
    rootFiles: { '/var/lib/noise': randomBytes(1024 * 1024).toString('hex') },
  });
  imgPath = made.path;
  img = await readFile(imgPath);
  xz = (await execa('xz', ['-1', '-c', imgPath], { encoding: 'buffer' })).stdout as unknown as Buffer;
  xz = Buffer.from(xz);
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

let cache: string;
beforeEach(async () => {
  mode = 'good';
  requests = [];
  cache = await mkdtemp(join(dir, 'cache-'));
});

const quick = { retryDelayMs: 10, stallTimeoutMs: 5000 };

describe('fetchImage', () => {
  it('downloads, checks, decompresses sparsely, records and then serves from cache', async () => {
    const progress: Progress[] = [];
    const got = await fetchImage(entry(), { cacheDir: cache, onProgress: (p) => progress.push(p), ...quick });
    expect(got.cached).toBe(false);
    expect(got.path).toBe(join(cache, 'images', 'test-base.img'));
    const out = await readFile(got.path);
    expect(sha(out)).toBe(sha(img));
    expect(await allocatedBytes(got.path)).toBeLessThan(img.length / 4);
    expect(got.record).toMatchObject({ sha256: sha(img), size: img.length, sourceSha256: sha(xz), compression: 'xz' });
    expect(progress.some((p) => p.phase === 'download' && p.bytes === xz.length && p.total === xz.length)).toBe(true);
    expect(progress.some((p) => p.phase === 'decompress')).toBe(true);
    expect(await readdir(join(cache, 'downloads'))).toEqual([]);
    expect((await inspectImage(got.path)).root.fs.label).toBe('rootfs');

    const again = await fetchImage(entry(), { cacheDir: cache, ...quick });
    expect(again.cached).toBe(true);
    expect(requests).toHaveLength(1);
  });

  it('records the extracted sha256 on first fetch when the catalogue lacks it; verify uses it', async () => {
    const e = entry({ image: { sha256: undefined, size: undefined } });
    const got = await fetchImage(e, { cacheDir: cache, ...quick });
    expect(got.record.sha256).toBe(sha(img));
    const v = await verifyCachedImage('test-base', e, { cacheDir: cache });
    expect(v).toMatchObject({ ok: true, expectedFrom: 'recorded', sha256: sha(img) });
    // flip one byte of the cached image: verify reports it
    const fh = await open(got.path, 'r+');
    await fh.write(Buffer.from([0x42]), 0, 1, 4096);
    await fh.close();
    const bad = await verifyCachedImage('test-base', e, { cacheDir: cache });
    expect(bad.ok).toBe(false);
    expect(bad.problems.join('\n')).toMatch(/sha256 is [0-9a-f]{64}, recorded/);
    expect((await readCacheRecord(cache, 'test-base'))?.verifiedAt).toBeDefined();
  });

  it('rejects a wrong sha256 and leaves no file behind', async () => {
    const e = entry({ sha256: 'f'.repeat(64) });
    const err = await fetchImage(e, { cacheDir: cache, ...quick }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(IoError);
    expect((err as Error).message).toMatch(/has sha256 [0-9a-f]{64}, expected f{64}; the file was deleted/);
    expect(await readdir(join(cache, 'downloads'))).toEqual([]);
    expect(await readdir(join(cache, 'images'))).toEqual([]);
  });

  it('rejects a wrong extracted sha256 and leaves no image behind', async () => {
    const e = entry({ image: { sha256: '0'.repeat(64), size: undefined } });
    await expect(fetchImage(e, { cacheDir: cache, ...quick })).rejects.toThrow(/the image extracted from test.img.xz has sha256/);
    expect(await readdir(join(cache, 'images'))).toEqual([]);
  });

  it('reports a truncated body, keeps the .part, and resumes with Range on the next run', async () => {
    mode = 'truncate';
    const err = await fetchImage(entry(), { cacheDir: cache, retries: 0, ...quick }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(IoError);
    expect((err as Error).message).toMatch(/download of .* failed: connection lost after .* of .*|the server sent \d+ of \d+ bytes/);
    expect((err as IoError).hint).toMatch(/resume/);
    const part = join(cache, 'downloads', 'test.img.xz.part');
    const partial = (await stat(part)).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(xz.length);

    mode = 'good';
    requests = [];
    const got = await fetchImage(entry(), { cacheDir: cache, ...quick });
    expect(sha(await readFile(got.path))).toBe(sha(img));
    expect(requests[0]?.range).toBe(`bytes=${partial}-`);
  });

  it('resumes within one call when the connection drops mid-way', async () => {
    mode = 'drop-once';
    const got = await fetchImage(entry(), { cacheDir: cache, ...quick });
    expect(sha(await readFile(got.path))).toBe(sha(img));
    expect(requests).toHaveLength(2);
    expect(requests[0]?.range).toBeUndefined();
    expect(requests[1]?.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(requests[1]?.range ?? '')?.[0])).toBeGreaterThan(0);
  });

  it('starts over when the server ignores Range', async () => {
    await mkdir(join(cache, 'downloads'));
    await writeFile(join(cache, 'downloads', 'test.img.xz.part'), xz.subarray(0, 1000));
    mode = 'no-range';
    const got = await fetchImage(entry(), { cacheDir: cache, ...quick });
    expect(sha(await readFile(got.path))).toBe(sha(img));
  });

  it('reports HTTP 404 clearly', async () => {
    await expect(fetchImage(entry({ url: `${base}/images/missing.img.xz` }), { cacheDir: cache, ...quick })).rejects.toThrow(
      /failed: HTTP 404/,
    );
  });
});

describe('importImage', () => {
  it.each([
    ['xz', ['xz', '-1', '-c']],
    ['zstd', ['zstd', '-1', '-c', '-q']],
    ['gzip', ['gzip', '-1', '-c']],
    ['none', []],
  ] as const)('imports a %s file and records its sha', async (kind, cmd) => {
    let file = imgPath;
    if (cmd.length > 0) {
      file = join(dir, `import.${kind}`);
      const [tool = '', ...args] = cmd;
      const r = await execa(tool, [...args, imgPath], { encoding: 'buffer' });
      await writeFile(file, r.stdout as unknown as Uint8Array);
    }
    const got = await importImage(file, `imported-${kind}`, { cacheDir: cache });
    expect(got.record.sha256).toBe(sha(img));
    expect(got.record.compression).toBe(kind);
    expect(got.record.source).toEqual({ kind: 'file', path: file });
    expect(got.record.sourceSha256).toBe(sha(await readFile(file)));
    expect((await verifyCachedImage(`imported-${kind}`, undefined, { cacheDir: cache })).ok).toBe(true);
  });

  it('reports why feeding the decompressor stopped, not the decompressor\'s "premature end" that follows', async () => {
    const file = join(dir, 'feed.img.zst');
    await writeFile(file, (await execa('zstd', ['-1', '-c', '-q', imgPath], { encoding: 'buffer' })).stdout as unknown as Uint8Array);
    expect((await stat(file)).size).toBeGreaterThan(1024 * 1024); // more than one 1 MiB read: zstd gets a part, then its input ends
    let calls = 0;
    const onProgress = (): void => {
      if (++calls === 2) throw new Error('the progress display failed');
    };
    const e = await importImage(file, 'fed', { cacheDir: cache, onProgress }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(IoError);
    expect((e as Error).message).toMatch(/the progress display failed/);
    expect((e as Error).message).not.toMatch(/premature end/);
    expect(await readdir(join(cache, 'images'))).toEqual([]);
  });

  it('a progress display that fails during the download stops it with that error: not retried as a lost connection, no image', async () => {
    const e = await fetchImage(entry(), {
      cacheDir: cache,
      onProgress: (p) => {
        if (p.phase === 'download') throw new Error('the progress display failed');
      },
      ...quick,
    }).catch((x: unknown) => x);
    expect((e as Error).message).toBe('the progress display failed');
    expect(requests.length).toBe(1);
    expect(await readdir(join(cache, 'images')).catch(() => [])).toEqual([]);
  });

  it('rejects a damaged xz without leaving an image', async () => {
    const file = join(dir, 'damaged.img.xz');
    const broken = Buffer.from(xz);
    broken.fill(0x41, 200, 400);
    await writeFile(file, broken);
    await expect(importImage(file, 'damaged', { cacheDir: cache })).rejects.toThrow(/`xz`.*failed/);
    expect(await readdir(join(cache, 'images'))).toEqual([]);
  });

  it('rejects a missing file and a bad name', async () => {
    await expect(importImage(join(dir, 'nope.img'), 'x', { cacheDir: cache })).rejects.toThrow(InputError);
    await expect(importImage(imgPath, 'Bad Name', { cacheDir: cache })).rejects.toThrow(/image name/);
  });
});
