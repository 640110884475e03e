/**
 * Reliability: injected faults. pi-image runs as a real child process (signals reach a real
 * process); a phase is reached deterministically through a shim for the program that phase runs
 * (cp, mcopy, debugfs, xz, zstd) placed first on PATH: the shim records its pid and waits, the test
 * signals pi-image. ENOSPC comes from a small tmpfs the test mounts (the shim fills it at the right
 * moment), read-only outputs from a read-only tmpfs. Every case asserts the exit code (never 70), a
 * message naming the culprit where there is one, no output under a final name that is partial, no
 * helper program left running, the base unchanged, and no secret in any world-readable file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
function shim(dir: string, tool: string, action = PAUSE): void {
  const real = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  const caught = tool === 'debugfs' ? '*" -w "*' : tool === 'cp' ? '*.tmp-*' : '*';
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

function start(argv: string[], extraPath?: string): Child {
  const child = spawn(process.execPath, ['--import', TSX, CLI, ...argv], {
    cwd: inv.root,
    env: { ...env, PATH: extraPath ? `${extraPath}:${env.PATH}` : env.PATH },
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
  expect(names.filter((n) => /\.(img|img\.xz|img\.zst|json)$/.test(n)), names.join(', ')).toEqual([]);
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
function shimDir(name: string, tool: string, action?: string): string {
  const dir = join(shims, name);
  mkdirSync(dir, { recursive: true });
  shim(dir, tool, action);
  return dir;
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
      const child = start(['build', c.node ?? 'pi-cluster-4', '--base', base.path, '--out', out, '--compress', c.compress, '--jobs', '1'], dir);
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
      const args = ['build', c.node ?? 'pi-cluster-4', '--base', base.path, '--out', out, '--compress', c.compress, '--jobs', '1'];
      const child = start(args, dir);
      await waitFor(() => existsSync(join(dir, `${c.tool}.pid`)), `${c.tool} to start`);
      const helper = Number(readFileSync(join(dir, `${c.tool}.pid`), 'utf8'));
      process.kill(child.pid, 'SIGKILL');
      await child.exit;
      try {
        process.kill(-helper, 'SIGKILL'); // a SIGKILLed process cannot stop its children; the test does
      } catch {
        process.kill(helper, 'SIGKILL');
      }
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
    const child = start(['build', 'pi-cluster-4', '--base', base.path, '--out', out, '--jobs', '1'], dir);
    const r = await child.exit;
    expect(existsSync(join(dir, 'mcopy.pid'))).toBe(true);
    expect(r.code, child.stderr()).toBe(4);
    expect(child.stderr()).toMatch(/mcopy|space/i);
    expect(child.stderr()).not.toMatch(/^\s+at /m);
    expectNoFinalOutputs(out);
    expect(readdirSync(out).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expectBaseUnchanged();
  }, 300_000);

  it('ENOSPC while the build record is written: no new image without its record', async () => {
    const out = join(inv.root, 'out-enospc-record');
    mountTmpfs(out, 'size=96m');
    // debugfs is the last program of the bake: after it the disk is full, before hash, rename and record
    const dir = shimDir('enospc-debugfs', 'debugfs', `echo $$ > "$MARK"\n"$REAL" "$@"; rc=$?\ndd if=/dev/zero of="${out}/fill" bs=1M 2>/dev/null\nexit $rc`);
    const child = start(['build', 'pi-cluster-1', '--base', base.path, '--out', out, '--jobs', '1'], dir);
    const r = await child.exit;
    expect(existsSync(join(dir, 'debugfs.pid'))).toBe(true);
    expect(r.code, child.stderr()).toBe(4);
    expect(child.stderr()).toContain('pi-cluster-1.json');
    expect(child.stderr()).not.toMatch(/^\s+at /m);
    const names = readdirSync(out);
    // image and record are a pair: neither, or both
    expect(names.includes('pi-cluster-1.img'), names.join(', ')).toBe(names.includes('pi-cluster-1.json'));
    expect(names.filter((n) => n.includes('.tmp-'))).toEqual([]);
    expectBaseUnchanged();
  }, 300_000);

  it('read-only --out for build: exit 4 naming the directory', async () => {
    const out = join(inv.root, 'out-ro-build');
    mountTmpfs(out, 'size=128m,ro');
    const r = await cli(['build', 'pi-cluster-4', '--base', base.path, '--out', out], { cwd: inv.root, env });
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

  it('two builds of the same node into one directory at once: a consistent image and record', async () => {
    const out = join(inv.root, 'out-concurrent');
    const args = ['build', 'pi-cluster-4', '--base', base.path, '--out', out, '--jobs', '1'];
    const a = start(args);
    const b = start(args);
    const [ra, rb] = await Promise.all([a.exit, b.exit]);
    expect(ra.code, a.stderr()).not.toBe(70);
    expect(rb.code, b.stderr()).not.toBe(70);
    expect(ra.code === 0 || rb.code === 0, a.stderr() + b.stderr()).toBe(true);
    const record = JSON.parse(readFileSync(join(out, 'pi-cluster-4.json'), 'utf8')) as { image: { sha256: string } };
    expect(sha(readFileSync(join(out, 'pi-cluster-4.img')))).toBe(record.image.sha256);
    expect(readdirSync(out).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expectBaseUnchanged();
    expectNoWorldReadableSecret(out);
  }, 600_000);

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
