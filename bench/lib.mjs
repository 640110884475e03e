/**
 * Shared helpers of the benchmarks in bench/ (not tests: they assert no timings, print ratios
 * against a baseline measured in the same run, and exit 0).
 */
import process from 'node:process';
import { spawnSync } from 'node:child_process';
import { Buffer } from 'node:buffer';
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
export const CLI = join(REPO_ROOT, 'dist', 'cli.js');

/** `--name value` / `--flag` from argv (tiny on purpose: the benches take two or three options). */
export function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith('--') ? true : v;
}

/** Compiles src/ → dist/ (`npm run build`) unless --no-build is given and dist/cli.js exists. */
export function ensureBuilt() {
  if (arg('no-build', false) && existsSync(CLI)) return;
  process.stderr.write('bench: npm run build …\n');
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    process.stderr.write('bench: npm run build failed (see above); fix the build or pass --no-build to use the existing dist/\n');
    process.exit(r.status ?? 1);
  }
}

/** Seconds since `t0` (a process.hrtime.bigint()). */
export function since(t0) {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Runs a command to completion and returns its wall time in seconds; throws on a non-zero exit. */
export function timeCommand(cmd, args, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  const s = since(t0);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stderr ?? ''}${r.error ?? ''}`);
  }
  return s;
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function summary(xs) {
  return { median: round(median(xs)), min: round(Math.min(...xs)), max: round(Math.max(...xs)), runs: xs.length };
}

export function round(x, digits = 4) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Prints rows (arrays of cells) as an aligned text table. */
export function table(header, rows) {
  const all = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(all[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

export const fmtS = (s) => `${s.toFixed(3)} s`;
export const fmtX = (r) => `${r.toFixed(2)}×`;

/** Prints the machine-readable result: one line, `BENCH {json}`. */
export function printResult(result) {
  process.stdout.write(`BENCH ${JSON.stringify(result)}\n`);
}

/** Runs a bench's main(); a failure (a broken bench, not a slow one) is printed and exits 1. */
export function runBench(name, main) {
  main().catch((err) => {
    process.stderr.write(`bench/${name}: ${err.stack ?? err}\n`);
    process.exit(1);
  });
}

const RANDOM_CHUNK = Buffer.alloc(4 * 1024 * 1024);
/**
 * Writes `bytes` of reproducible incompressible data (AES-256-CTR keystream keyed by sha256 of
 * `seed`): the same seed, the same file, on every machine.
 */
export function writeRandomFile(path, bytes, seed) {
  const ks = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16));
  const fd = openSync(path, 'w', 0o644);
  try {
    for (let left = bytes; left > 0; ) {
      const n = Math.min(left, RANDOM_CHUNK.length);
      writeSync(fd, ks.update(RANDOM_CHUNK.subarray(0, n)));
      left -= n;
    }
  } finally {
    closeSync(fd);
  }
}
