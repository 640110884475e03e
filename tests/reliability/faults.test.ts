/**
 * Reliability: injected faults. pi-image runs as a real child process (signals reach a real
 * process); a phase is reached deterministically through a shim for the program that phase runs
 * (cp, mcopy, debugfs, xz, zstd) placed first on PATH: the shim records its pid and waits, the test
 * signals pi-image. ENOSPC comes from a small tmpfs the test mounts (the shim fills it at the right
 * moment), read-only outputs from a read-only tmpfs. Every case asserts the exit code (never 70), a
 * message naming the culprit where there is one, no output under a final name that is partial, no
 * helper program left running, the base unchanged, and no secret in any world-readable file.
 */
import { killProcessGroup } from '../../src/adapters/process.js';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachLoop, detachLoop, makeFlashTestImage, readDirect, type FlashTestImage } from '../helpers/flash-image.js';
import { makePiOsImage, type PiOsImage } from '../helpers/pi-os-image.js';
import { cli } from '../helpers/run-cli.js';
import { REPO_ROOT, sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

const isRoot = process.getuid?.() === 0;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const TSX = pathToFileURL(join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
const CLI = join(REPO_ROOT, 'src/cli.ts');

let base: PiOsImage;
let baseSha: string;
let inv: ReturnType<typeof writeInventory>;
let env: NodeJS.ProcessEnv;
let shims: string;
const mounts: string[] = [];
/** token, agent token, node passwords: no world-readable file may contain one */
let secretValues: string[] = [];

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
}

/**
 * A shim for `tool`. Only calls that write into an image are caught (debugfs `-w`, cp onto a temp
 * output): the others (reading the base) run the real program. A caught call runs `action` with
 * $REAL (the real program) and $MARK (write the pid there when the phase is reached); by default it
 * does the real work, records the pid and waits to be killed.
 */
const PAUSE = '"$REAL" "$@"\necho $$ > "$MARK"\nexec sleep 600';
function shim(dir: string, tool: string, action = PAUSE, pattern?: string): void {
  const real = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  const caught = pattern ?? (tool === 'debugfs' ? '*" -w "*' : tool === 'cp' ? '*.tmp-*' : '*');
  writeFileSync(
    join(dir, tool),
    `#!/bin/sh\nREAL=${real}\nMARK="${dir}/${tool}.pid"\ncase " $* " in\n  ${caught}) ;;\n  *) exec "$REAL" "$@" ;;\nesac\n${action}\n`,
  );
  chmodSync(join(dir, tool), 0o755);
}

function mountTmpfs(dir: string, opts: string): void {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount: ${r.stderr}`);
  mounts.push(dir);
}

interface Child {
  pid: number;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

function start(argv: string[], extraPath?: string, o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Child {
  const e = o.env ?? env;
  const child = spawn(process.execPath, ['--import', TSX, CLI, ...argv], {
    cwd: o.cwd ?? inv.root,
    env: { ...e, PATH: extraPath ? `${extraPath}:${e.PATH}` : e.PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout.on('data', () => undefined);
  return {
    pid: child.pid!,
    exit: new Promise((r) => child.on('exit', (code, signal) => r({ code, signal }))),
    stderr: () => err,
  };
}

async function waitFor(cond: () => boolean, what: string, ms = 240_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** No file below `dir` that others may read holds a secret value. */
function expectNoWorldReadableSecret(dir: string): void {
  for (const f of walk(dir)) {
    if ((statSync(f).mode & 0o004) === 0) continue;
    const data = readFileSync(f);
    for (const s of secretValues) expect(data.includes(s), `${f} is world-readable and holds a secret`).toBe(false);
  }
}

function expectNoFinalOutputs(out: string): void {
  const names = existsSync(out) ? readdirSync(out) : [];
  expect(names.filter((n) => /\.(img|img\.xz|img\.zst|img\.bmap|json)$/.test(n)), names.join(', ')).toEqual([]);
}

function expectBaseUnchanged(): void {
  expect(sha(readFileSync(base.path))).toBe(baseSha);
}

beforeAll(async () => {
  base = await makePiOsImage();
  baseSha = sha(readFileSync(base.path));
  inv = writeInventory(sampleFiles());
  env = { PATH: process.env.PATH, HOME: join(inv.root, 'home'), XDG_CONFIG_HOME: join(inv.root, 'config'), PI_IMAGE_CACHE: join(inv.root, 'cache') };
  const init = await cli(['secrets', 'init'], { cwd: inv.root, env });
  expect(init.code, init.stderr).toBe(0);
  const review = join(inv.root, 'review');
  const r = await cli(['render', '--all', '--out', review], { cwd: inv.root, env });
  expect(r.code, r.stderr).toBe(0);
  const values = new Set<string>();
  for (const node of readdirSync(review)) {
    const manifest = JSON.parse(readFileSync(join(review, node, 'render.json'), 'utf8')) as { files: { file: string; secret: boolean }[] };
    for (const f of manifest.files.filter((x) => x.secret)) {
      const text = readFileSync(join(review, node, f.file), 'utf8').trim();
      if (!text.includes('\n')) values.add(text);
    }
  }
  secretValues = [...values];
  expect(secretValues.length).toBeGreaterThanOrEqual(3);
  shims = join(inv.root, 'shims');
  mkdirSync(shims);
}, 300_000);

afterAll(async () => {
  for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
  await base?.cleanup();
  inv?.cleanup();
});

/** A fresh shim directory with one shim. */
function shimDir(name: string, tool: string, action?: string, pattern?: string): string {
  const dir = join(shims, name);
  mkdirSync(dir, { recursive: true });
  shim(dir, tool, action, pattern);
  return dir;
}

/** The pid the shim in `dir` recorded once its phase was reached. */
async function phaseReached(dir: string, tool: string): Promise<number> {
  await waitFor(() => existsSync(join(dir, `${tool}.pid`)) && readFileSync(join(dir, `${tool}.pid`), 'utf8').trim() !== '', `${tool} to start`);
  return Number(readFileSync(join(dir, `${tool}.pid`), 'utf8'));
}


/** Names below `dir` (recursively, relative) that are temp or staging names: `.tmp-`, `.old-`, locks. */
function leftovers(dir: string): string[] {
  const out: string[] = [];
  const rec = (d: string, rel: string): void => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (/\.(tmp|old)-\d+|\.lock$/.test(e.name)) out.push(r);
      else if (e.isDirectory()) rec(join(d, e.name), r);
    }
  };
  rec(dir, '');
  return out;
}

interface SignalCase {
  phase: string;
  tool: string;
  compress: 'none' | 'xz' | 'zstd';
  /** a server: its image gets a payload (manifests), written by debugfs */
  node?: string;
}
const phases: SignalCase[] = [
  { phase: 'copy of the base', tool: 'cp', compress: 'none' },
  { phase: 'seed on the boot partition', tool: 'mcopy', compress: 'none' },
  { phase: 'payload into the root file system', tool: 'debugfs', compress: 'none', node: 'pi-cluster-1' },
  { phase: 'xz compression', tool: 'xz', compress: 'xz' },
  { phase: 'zstd compression', tool: 'zstd', compress: 'zstd' },
];

describe.skipIf(!isRoot)('reliability: faults', () => {
  for (const c of phases) {
    it(`SIGTERM during the ${c.phase}: no output, no temp file, no ${c.tool} left running`, async () => {
      const dir = shimDir(`term-${c.tool}`, c.tool);
      const out = join(inv.root, `out-term-${c.tool}`);
      const child = start(['build', c.node ?? 'pi-cluster-4', '--base', base.path, '--build-dir', out, '--compress', c.compress, '--jobs', '1'], dir);
      await waitFor(() => existsSync(join(dir, `${c.tool}.pid`)), `${c.tool} to start`);
      const helper = Number(readFileSync(join(dir, `${c.tool}.pid`), 'utf8'));
      expect(pidAlive(helper)).toBe(true);
      process.kill(child.pid, 'SIGTERM');
      const r = await child.exit;
      expect(r.code === 0).toBe(false);
      expect(r.code).not.toBe(70);
      await waitFor(() => !pidAlive(helper), `${c.tool} (pid ${helper}) to be killed`, 30_000);
      expectNoFinalOutputs(out);
      expect(existsSync(out) ? readdirSync(out).filter((n) => n.includes('.tmp-')) : []).toEqual([]);
      expectBaseUnchanged();
      expectNoWorldReadableSecret(out);
    }, 300_000);
  }

  for (const c of phases.filter((p) => ['cp', 'debugfs', 'xz'].includes(p.tool))) {
    it(`SIGKILL during the ${c.phase}: the next build removes the stale temp file and says so`, async () => {
      const dir = shimDir(`kill-${c.tool}`, c.tool);
      const out = join(inv.root, `out-kill-${c.tool}`);
      const args = ['build', c.node ?? 'pi-cluster-4', '--base', base.path, '--build-dir', out, '--compress', c.compress, '--jobs', '1'];
      const child = start(args, dir);
      await waitFor(() => existsSync(join(dir, `${c.tool}.pid`)), `${c.tool} to start`);
      const helper = Number(readFileSync(join(dir, `${c.tool}.pid`), 'utf8'));
      process.kill(child.pid, 'SIGKILL');
      await child.exit;
      killProcessGroup(helper); // a SIGKILLed process cannot stop its children; the test does
      const stale = readdirSync(out).filter((n) => n.includes('.tmp-'));
      expect(stale.length).toBeGreaterThan(0);
      expectNoFinalOutputs(out);
      expectNoWorldReadableSecret(out);
      // the rerun (real tools) cleans up and says what it removed
      const again = start(args);
      const r = await again.exit;
      expect(r.code, again.stderr()).toBe(0);
      for (const s of stale) expect(again.stderr()).toContain(`removed ${join(out, s)}`);
      expect(again.stderr()).toContain('left by an interrupted build');
      expect(readdirSync(out).filter((n) => n.includes('.tmp-'))).toEqual([]);
      expectBaseUnchanged();
      expectNoWorldReadableSecret(out);
    }, 600_000);
  }

  it('ENOSPC while the seed is written: exit 4 naming the cause, no output, no temp file', async () => {
    const out = join(inv.root, 'out-enospc-seed');
    mountTmpfs(out, 'size=96m');
    const dir = shimDir('enospc-mcopy', 'mcopy', `echo $$ > "$MARK"\ndd if=/dev/zero of="${out}/fill" bs=1M 2>/dev/null\nexec "$REAL" "$@"`);
    const child = start(['build', 'pi-cluster-4', '--base', base.path, '--build-dir', out, '--jobs', '1'], dir);
    const r = await child.exit;
    expect(existsSync(join(dir, 'mcopy.pid'))).toBe(true);
    expect(r.code, child.stderr()).toBe(4);
    expect(child.stderr()).toMatch(/mcopy|space/i);
    expect(child.stderr()).not.toMatch(/^\s+at /m);
    expectNoFinalOutputs(out);
    expect(readdirSync(out).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expectBaseUnchanged();
  }, 300_000);

  it('ENOSPC while the block map and build record are written: no new image without its map and record', async () => {
    const out = join(inv.root, 'out-enospc-record');
    mountTmpfs(out, 'size=96m');
    // debugfs is the last program of the bake: after it the disk is full, before hash, rename and record
    const dir = shimDir('enospc-debugfs', 'debugfs', `echo $$ > "$MARK"\n"$REAL" "$@"; rc=$?\ndd if=/dev/zero of="${out}/fill" bs=1M 2>/dev/null\nexit $rc`);
    const child = start(['build', 'pi-cluster-1', '--base', base.path, '--build-dir', out, '--jobs', '1'], dir);
    const r = await child.exit;
    expect(existsSync(join(dir, 'debugfs.pid'))).toBe(true);
    expect(r.code, child.stderr()).toBe(4);
    // the first of the small files written beside the image (its block map, then its record) fails
    expect(child.stderr()).toMatch(/cannot write \S+\/pi-cluster-1\.(img\.bmap|json)\b.*ENOSPC/);
    expect(child.stderr()).toMatch(/the previous image and record were kept|earlier image and record are unchanged/);
    expect(child.stderr()).not.toMatch(/^\s+at /m);
    const names = readdirSync(out);
    // image, block map and record go together: none, or all three
    expect(names.includes('pi-cluster-1.img'), names.join(', ')).toBe(names.includes('pi-cluster-1.json'));
    expect(names.includes('pi-cluster-1.img.bmap'), names.join(', ')).toBe(names.includes('pi-cluster-1.json'));
    expect(names.filter((n) => n.includes('.tmp-'))).toEqual([]);
    expectBaseUnchanged();
  }, 300_000);

  it('read-only --build-dir for build: exit 4 naming the directory', async () => {
    const out = join(inv.root, 'out-ro-build');
    mountTmpfs(out, 'size=128m,ro');
    const r = await cli(['build', 'pi-cluster-4', '--base', base.path, '--build-dir', out], { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(out);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(readdirSync(out)).toEqual([]);
    expectBaseUnchanged();
  }, 300_000);

  it('read-only --out for render: exit 4 naming the directory', async () => {
    const out = join(inv.root, 'out-ro-render');
    mountTmpfs(out, 'size=4m,ro');
    const r = await cli(['render', '--all', '--out', out], { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(out);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(readdirSync(out)).toEqual([]);
  });

  it('read-only netboot --root: a clear error (exit 4), not an internal error', async () => {
    const root = join(inv.root, 'ro-netboot');
    mountTmpfs(root, 'size=4m,ro');
    const r = await cli(['netboot', '--all', '--root', root, '--server', '10.0.0.2'], { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`--root ${root} is not writable`);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('netboot --root naming a regular file: exit 2 naming it', async () => {
    const file = join(inv.root, 'not-a-dir');
    writeFileSync(file, 'x\n');
    const r = await cli(['netboot', '--all', '--root', file, '--server', '10.0.0.2'], { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`--root ${file} is a file, not a directory`);
  });

  it('two builds of the same node into one directory at once: the second waits for the first, the image and record are a pair', async () => {
    const out = join(inv.root, 'out-concurrent');
    // the first build pauses at its first mcopy until the test lets it go; later calls run through
    const dir = shimDir(
      'concurrent-mcopy',
      'mcopy',
      'if mkdir "$MARK.first" 2>/dev/null; then\n  echo $$ > "$MARK"\n  while [ ! -e "$MARK.go" ]; do sleep 0.1; done\nfi\nexec "$REAL" "$@"',
    );
    const a = start(['build', 'pi-cluster-4', '--base', base.path, '--build-dir', out, '--jobs', '1'], dir);
    await phaseReached(dir, 'mcopy');
    // the second build (another compression: another image file) starts while the first holds the node
    const b = start(['build', 'pi-cluster-4', '--base', base.path, '--build-dir', out, '--jobs', '1', '--compress', 'zstd'], dir);
    let bDone = false;
    void b.exit.then(() => (bDone = true));
    await waitFor(() => b.stderr().includes('waiting for') || bDone, 'the second build to wait or end');
    expect(bDone, b.stderr()).toBe(false);
    expect(b.stderr()).toContain(`waiting for ${join(out, 'pi-cluster-4.lock')}: process ${a.pid} is building pi-cluster-4 into ${out}`);
    expect(existsSync(join(out, 'pi-cluster-4.img.zst'))).toBe(false);
    writeFileSync(join(dir, 'mcopy.pid.go'), '');
    const [ra, rb] = await Promise.all([a.exit, b.exit]);
    expect(ra.code, a.stderr()).toBe(0);
    expect(rb.code, b.stderr()).toBe(0);
    // the second build ran after the first: its image is the node's image, described by the record
    const names = readdirSync(out);
    expect(names.filter((n) => n.startsWith('pi-cluster-4')).sort(), names.join(', ')).toEqual(['pi-cluster-4.img.bmap', 'pi-cluster-4.img.zst', 'pi-cluster-4.json']);
    const record = JSON.parse(readFileSync(join(out, 'pi-cluster-4.json'), 'utf8')) as { image: { path: string; sha256: string } };
    expect(record.image.path).toBe(join(out, 'pi-cluster-4.img.zst'));
    expect(sha(readFileSync(join(out, 'pi-cluster-4.img.zst')))).toBe(record.image.sha256);
    expect(leftovers(out)).toEqual([]);
    expectBaseUnchanged();
    expectNoWorldReadableSecret(out);
  }, 900_000);

  it('two renders into one directory at once: both succeed, files complete', async () => {
    const out = join(inv.root, 'out-render-concurrent');
    const [a, b] = await Promise.all([start(['render', '--all', '--out', out]), start(['render', '--all', '--out', out])].map(async (c) => ({ r: await c.exit, err: c.stderr() })));
    expect(a!.r.code, a!.err).toBe(0);
    expect(b!.r.code, b!.err).toBe(0);
    for (const node of ['pi-cluster-1', 'pi-cluster-4']) {
      const manifest = JSON.parse(readFileSync(join(out, node, 'render.json'), 'utf8')) as { files: { file: string; bytes: number }[] };
      for (const f of manifest.files) expect(statSync(join(out, node, f.file)).size).toBe(f.bytes);
    }
    expect(walk(out).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expectNoWorldReadableSecret(out);
  }, 300_000);
});

/**
 * images fetch (from a server on 127.0.0.1, through a catalogue in $PI_IMAGE_CATALOGUE) and images
 * import, stopped mid-download and mid-decompression. The cache already holds a good entry of the
 * same name (fetched with --force again): it must come out of every case as it went in.
 */
describe.skipIf(!isRoot)('reliability: faults in images fetch and import', () => {
  let src: PiOsImage;
  let raw: Buffer;
  const packed: Record<'xz' | 'zstd', Buffer> = { xz: Buffer.alloc(0), zstd: Buffer.alloc(0) };
  let server: Server;
  /** a response that stops after half the body until the test lets it go */
  let hold = false;
  const held: ServerResponse[] = [];
  let requests: { url: string; range: string | undefined }[] = [];
  let work: string;
  let catalogue: string;
  /** a cache holding good entries `fault-xz` and `fault-zstd`, copied for each case */
  let template: string;

  const cacheEnv = (cache: string): NodeJS.ProcessEnv => ({ ...env, PI_IMAGE_CACHE: cache, PI_IMAGE_CATALOGUE: catalogue });

  beforeAll(async () => {
    work = join(inv.root, 'images-faults');
    mkdirSync(work, { recursive: true });
    src = await makePiOsImage({ dir: work, name: 'src.img', bootMiB: 64, rootMiB: 16 });
    raw = readFileSync(src.path);
    packed.xz = spawnSync('xz', ['-1', '-T1', '-c', src.path], { maxBuffer: 1 << 30 }).stdout;
    packed.zstd = spawnSync('zstd', ['-1', '-q', '-c', src.path], { maxBuffer: 1 << 30 }).stdout;
    for (const k of ['xz', 'zstd'] as const) writeFileSync(join(work, `src.img.${k === 'xz' ? 'xz' : 'zst'}`), packed[k]);
    server = createServer((req, res) => {
      requests.push({ url: req.url ?? '', range: req.headers.range });
      const kind = req.url === '/fault.img.xz' ? 'xz' : req.url === '/fault.img.zst' ? 'zstd' : undefined;
      if (kind === undefined) return void res.writeHead(404).end();
      const body = packed[kind];
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const from = m ? Number(m[1]) : 0;
      res.writeHead(m ? 206 : 200, { 'Content-Length': body.length - from, ...(m ? { 'Content-Range': `bytes ${from}-${body.length - 1}/${body.length}` } : {}) });
      if (!hold) return void res.end(body.subarray(from));
      res.write(body.subarray(from, from + Math.floor((body.length - from) / 2)));
      held.push(res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    catalogue = join(work, 'catalogue');
    mkdirSync(catalogue);
    for (const k of ['xz', 'zstd'] as const) {
      writeFileSync(
        join(catalogue, `fault-${k}.yaml`),
        [
          `name: fault-${k}`,
          'description: a small Pi-OS-shaped image served on 127.0.0.1',
          'arch: arm64',
          `url: ${url}/fault.img.${k === 'xz' ? 'xz' : 'zst'}`,
          `compression: ${k}`,
          `sha256: ${sha(packed[k])}`,
          `size: ${packed[k].length}`,
          'image:',
          `  sha256: ${sha(raw)}`,
          `  size: ${raw.length}`,
          'layout:',
          '  bootLabel: bootfs',
          '  rootLabel: rootfs',
          'cloudInit: true',
          '',
        ].join('\n'),
      );
    }
    template = join(work, 'template-cache');
    for (const k of ['xz', 'zstd'] as const) {
      const r = await cli(['images', 'fetch', `fault-${k}`], { cwd: inv.root, env: cacheEnv(template) });
      expect(r.code, r.stderr).toBe(0);
    }
  }, 300_000);

  afterAll(async () => {
    for (const r of held) r.destroy();
    await new Promise((r) => server?.close(r));
    await src?.cleanup();
  });

  /** A copy of the template cache, and what its entries are now. */
  function freshCache(name: string): { cache: string; before: Map<string, string> } {
    const cache = join(work, name);
    cpSync(template, cache, { recursive: true });
    return { cache, before: entries(cache) };
  }

  /** sha256 of every file of the cache's images/ folder, by name. */
  function entries(cache: string): Map<string, string> {
    const dir = join(cache, 'images');
    return new Map(readdirSync(dir).map((n) => [n, sha(readFileSync(join(dir, n)))]));
  }

  /** The cache after a stopped command: the good entries as they were, nothing else under a final name. */
  function expectCacheUnchanged(cache: string, before: Map<string, string>): void {
    const after = entries(cache);
    for (const [n, digest] of before) expect(after.get(n), `${n} changed`).toBe(digest);
    expect([...after.keys()].filter((n) => !before.has(n) && !/\.(tmp|old)-\d+|\.lock$/.test(n)), 'a new entry under a final name').toEqual([]);
    // a download is either still a .part (resumable) or complete under its name (verified before the rename)
    const downloads = join(cache, 'downloads');
    for (const n of readdirSync(downloads).filter((x) => !x.endsWith('.part'))) {
      const k = n.endsWith('.xz') ? 'xz' : 'zstd';
      expect(sha(readFileSync(join(downloads, n))), `${n} is complete`).toBe(sha(packed[k]));
    }
  }

  interface CacheCase {
    command: 'fetch' | 'import';
    phase: 'download' | 'decompression';
    kind: 'xz' | 'zstd';
    signal: 'SIGTERM' | 'SIGKILL';
  }
  const cases: CacheCase[] = [
    { command: 'fetch', phase: 'download', kind: 'xz', signal: 'SIGTERM' },
    { command: 'fetch', phase: 'download', kind: 'zstd', signal: 'SIGKILL' },
    { command: 'fetch', phase: 'decompression', kind: 'xz', signal: 'SIGTERM' },
    { command: 'fetch', phase: 'decompression', kind: 'xz', signal: 'SIGKILL' },
    { command: 'fetch', phase: 'decompression', kind: 'zstd', signal: 'SIGTERM' },
    { command: 'fetch', phase: 'decompression', kind: 'zstd', signal: 'SIGKILL' },
    { command: 'import', phase: 'decompression', kind: 'zstd', signal: 'SIGTERM' },
    { command: 'import', phase: 'decompression', kind: 'xz', signal: 'SIGKILL' },
  ];

  for (const c of cases) {
    it(`${c.signal} during the ${c.phase} of images ${c.command} (${c.kind}): the cached entry unchanged, nothing half done under a final name${c.signal === 'SIGKILL' ? ', the next run cleans up and says so' : ''}`, async () => {
      const id = `${c.command}-${c.phase}-${c.kind}-${c.signal}`;
      const { cache, before } = freshCache(`cache-${id}`);
      const name = `fault-${c.kind}`;
      const args = c.command === 'fetch' ? ['images', 'fetch', name, '--force'] : ['images', 'import', join(work, `src.img.${c.kind === 'xz' ? 'xz' : 'zst'}`), '--name', name];
      const dir = c.phase === 'decompression' ? shimDir(id, c.kind, undefined, '*" -dc "*') : undefined;
      requests = [];
      hold = c.phase === 'download';
      const child = start(args, dir, { env: cacheEnv(cache) });
      let helper: number | undefined;
      if (dir !== undefined) {
        helper = await phaseReached(dir, c.kind);
        expect(pidAlive(helper)).toBe(true);
      } else {
        // half the body has reached the disk: the download is under way
        const part = join(cache, 'downloads', `fault.img.${c.kind === 'xz' ? 'xz' : 'zst'}.part`);
        const half = Math.floor(packed[c.kind].length / 2);
        await waitFor(() => existsSync(part) && statSync(part).size >= half, 'half the download');
      }
      process.kill(child.pid, c.signal);
      const r = await child.exit;
      hold = false;
      for (const res of held.splice(0)) res.destroy();
      if (c.signal === 'SIGTERM') {
        expect(r.code, child.stderr()).toBe(143);
        expect(child.stderr()).toContain('interrupted (SIGTERM)');
        if (helper !== undefined) await waitFor(() => !pidAlive(helper!), `${c.kind} (pid ${helper}) to be killed`, 30_000);
        expect(leftovers(join(cache, 'images')), 'temp files or a lock left by a stopped command').toEqual([]);
      } else {
        expect(r.signal).toBe('SIGKILL');
        if (helper !== undefined) killProcessGroup(helper);
      }
      expectCacheUnchanged(cache, before);
      const stale = leftovers(join(cache, 'images'));
      if (c.signal === 'SIGKILL') {
        expect(stale).toContain(`${name}.lock`);
        if (c.phase === 'decompression') expect(stale.filter((n) => n.startsWith(`${name}.img.tmp-`)).length).toBe(1);
      }
      // the next run (real tools, whole responses) finishes the job and says what it removed
      const again = start(args, undefined, { env: cacheEnv(cache) });
      const ra = await again.exit;
      expect(ra.code, again.stderr()).toBe(0);
      for (const n of stale.filter((x) => !x.endsWith('.lock'))) expect(again.stderr()).toContain(`removed ${join(cache, 'images', n)}`);
      if (c.signal === 'SIGKILL') expect(again.stderr()).toContain(`took over ${join(cache, 'images', `${name}.lock`)}, left by an interrupted run`);
      if (c.command === 'fetch' && c.phase === 'download') expect(requests.at(-1)?.range, 'the next fetch resumes the .part').toMatch(/^bytes=\d+-$/);
      expect(leftovers(join(cache, 'images'))).toEqual([]);
      const record = JSON.parse(readFileSync(join(cache, 'images', `${name}.json`), 'utf8')) as { sha256: string };
      expect(record.sha256).toBe(sha(raw));
      expect(sha(readFileSync(join(cache, 'images', `${name}.img`)))).toBe(sha(raw));
    }, 600_000);
  }
});

/**
 * flash to a loop device (a scratch file), stopped while it writes and while it reads the card back:
 * the operator is told the card is incomplete (or unverified) and must be flashed again.
 */
describe.skipIf(!isRoot)('reliability: faults in flash', () => {
  const NODE = 'pi-cluster-2';
  let work: string;
  let img: FlashTestImage;
  let zst: string;
  let loop: string | undefined;

  beforeAll(async () => {
    work = join(inv.root, 'flash-faults');
    mkdirSync(join(work, 'build'), { recursive: true });
    img = await makeFlashTestImage(join(work, 'build'), NODE);
    mkdirSync(join(work, 'zst'));
    zst = join(work, 'zst', `${NODE}.img.zst`);
    writeFileSync(zst, spawnSync('zstd', ['-1', '-q', '-c', img.path], { maxBuffer: 1 << 30 }).stdout);
    loop = await attachLoop(join(work, 'card.raw'), 128 * 1024 * 1024);
  }, 300_000);

  afterAll(async () => {
    await detachLoop(loop);
  });

  const phases = [
    { phase: 'write', tool: 'zstd', pattern: '*" -dc "*', image: () => ['--image', zst], says: () => `the card in ${loop} is incomplete` },
    // the read-back runs in-process (O_DIRECT); its first step drops the device's buffer cache
    { phase: 'read-back', tool: 'blockdev', pattern: '*--flushbufs*', image: () => [NODE, '--build-dir', join(work, 'build')], says: () => `${loop} was written but its read-back check was stopped` },
  ];
  for (const c of phases) {
    it(`SIGTERM during the ${c.phase}: exit 143, the card is said to be incomplete and to need flashing again, no ${c.tool} left running`, async () => {
      const before = sha(readFileSync(img.path));
      const dir = shimDir(`flash-${c.phase}`, c.tool, undefined, c.pattern);
      const child = start(['flash', ...c.image(), '--device', loop!, '--yes', '--allow-loop'], dir, { cwd: work });
      const helper = await phaseReached(dir, c.tool);
      expect(pidAlive(helper)).toBe(true);
      process.kill(child.pid, 'SIGTERM');
      const r = await child.exit;
      expect(r.code, child.stderr()).toBe(143);
      expect(child.stderr()).toContain(c.says());
      expect(child.stderr()).toContain('flash it again');
      expect(child.stderr()).not.toMatch(/^\s+at /m);
      await waitFor(() => !pidAlive(helper), `${c.tool} (pid ${helper}) to be killed`, 30_000);
      expect(sha(readFileSync(img.path))).toBe(before);
      // stopped during the write, the card carries no partition table: it cannot be booted half written
      if (c.phase === 'write') expect((await readDirect(loop!, 512)).equals(Buffer.alloc(512))).toBe(true);
    }, 300_000);
  }
});

/**
 * netboot stopped while it copies the boot partition (mcopy) and while it extracts the root file
 * system (debugfs rdump): never a TFTP folder (what a Pi boots from) without its NFS root, no staging
 * folder left by SIGTERM, and the next run removes what a SIGKILL left and says so.
 */
describe.skipIf(!isRoot)('reliability: faults in netboot', () => {
  const NODE = 'pi-cluster-3';
  const SERIAL = '4e1c0013';
  let nb: ReturnType<typeof writeInventory>;
  let build: string;

  beforeAll(async () => {
    const files = sampleFiles();
    files[`${NODE}.yaml`] = `${files[`${NODE}.yaml`]!}dataDisk:\n  device: /dev/disk/by-label/rancher\n`;
    nb = writeInventory(files);
    build = join(nb.root, 'build', 'images');
    mkdirSync(build, { recursive: true });
    await makeFlashTestImage(build, NODE, {
      bootFiles: { 'cmdline.txt': 'console=serial0,115200 root=PARTUUID=6c586e13-02 rootfstype=ext4 rootwait ds=nocloud;i=pi-cluster-3-0f1e2d3c\n', 'user-data': `#cloud-config\nhostname: ${NODE}\n` },
    });
  }, 300_000);

  afterAll(() => nb?.cleanup());

  const phases = [
    { phase: 'boot partition copy', tool: 'mcopy', pattern: '*" -s "*' },
    { phase: 'root file system extraction', tool: 'debugfs', pattern: '*rdump*' },
  ];
  for (const c of phases) {
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      it(`${signal} during the ${c.phase}: no TFTP folder without its NFS root, ${signal === 'SIGTERM' ? 'no staging folder left' : 'the next run removes the staging folders and says so'}`, async () => {
        const root = join(nb.root, `srv-${c.tool}-${signal}`);
        const args = ['netboot', NODE, '--root', root, '--server', '10.0.0.2', '--build-dir', build];
        const dir = shimDir(`netboot-${c.tool}-${signal}`, c.tool, undefined, c.pattern);
        const child = start(args, dir, { cwd: nb.root });
        const helper = await phaseReached(dir, c.tool);
        process.kill(child.pid, signal);
        const r = await child.exit;
        const tftp = join(root, 'tftp', SERIAL);
        const nfs = join(root, 'nfs', NODE);
        expect(existsSync(tftp), 'a TFTP folder without its NFS root').toBe(existsSync(nfs));
        let stale: string[] = [];
        if (signal === 'SIGTERM') {
          expect(r.code, child.stderr()).toBe(143);
          await waitFor(() => !pidAlive(helper), `${c.tool} (pid ${helper}) to be killed`, 30_000);
          expect(leftovers(root), 'staging folders left by SIGTERM').toEqual([]);
        } else {
          killProcessGroup(helper);
          stale = leftovers(root);
          expect(stale.length).toBeGreaterThan(0);
        }
        const again = start(args, undefined, { cwd: nb.root });
        const ra = await again.exit;
        expect(ra.code, again.stderr()).toBe(0);
        for (const f of stale) expect(again.stderr()).toContain(`removed ${join(root, f)}: a staging folder left by an export that was stopped`);
        expect(leftovers(root)).toEqual([]);
        expect(readdirSync(join(root, 'tftp'))).toEqual([SERIAL]);
        expect(readdirSync(join(root, 'nfs'))).toEqual([NODE]);
      }, 600_000);
    }
  }
});
