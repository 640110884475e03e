import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli as runCli } from '../helpers/run-cli.js';
import { makePiOsImage } from '../helpers/pi-os-image.js';

let dir: string;
let img: string;

/** Runs `pi-image images …` in-process through the real CLI (src/cli.ts runCli). */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await runCli(args, { cwd: dir, env: {} });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pi-image-cmd-'));
  img = (await makePiOsImage({ dir, name: 'mine.img', bootMiB: 64, rootMiB: 16 })).path;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('pi-image images', () => {
  it('import, list, verify (ok, then tampered → exit 1)', async () => {
    const cache = join(dir, 'cache');
    const imp = await cli(['images', 'import', img, '--name', 'my-base', '--cache', cache, '-o', 'json']);
    // without a terminal: only plain progress lines on stderr (CI logs), ending at 100 %
    const progress = imp.err.split('\n').filter((l) => l !== '');
    for (const l of progress) expect(l).toMatch(/^[a-z]+: \d+% \(\d+\/\d+ MiB, [\d.]+ MiB\/s, ETA \d+ s\)$/);
    expect(progress.at(-1)).toMatch(/: 100% \(/);
    expect(JSON.parse(imp.out)).toMatchObject({ name: 'my-base', path: join(cache, 'images', 'my-base.img') });

    const list = await cli(['images', 'list', '--cache', cache, '-o', 'json']);
    const rows = (JSON.parse(list.out) as { images: { name: string; cached: boolean }[] }).images;
    expect(rows).toContainEqual(expect.objectContaining({ name: 'raspios-lite-arm64-trixie', cached: false }));
    expect(rows).toContainEqual(expect.objectContaining({ name: 'my-base', cached: true }));

    const ok = await cli(['images', 'verify', '--cache', cache]);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^ok {3}my-base sha256 [0-9a-f]{64} \(recorded\)/m);

    const fh = await open(join(cache, 'images', 'my-base.img'), 'r+');
    await fh.write(Buffer.from('x'), 0, 1, 1_000_000);
    await fh.close();
    const bad = await cli(['images', 'verify', 'my-base', '--cache', cache]);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/^FAIL my-base/m);
  });

  it('rejects an unknown catalogue name', async () => {
    const r = await cli(['images', 'fetch', 'no-such-image', '--cache', join(dir, 'c2')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/base image "no-such-image" is not in the catalogue/);
  });
});
