#!/usr/bin/env node
/**
 * bench/startup — how long `pi-image --help` and `pi-image validate` (the sample inventory) take to
 * start and finish, against `node -e ''` (the floor: starting Node itself) measured in the same run,
 * interleaved so a loaded machine slows all three alike. Target: each at most 2× the floor
 * (commands load lazily: `--help` imports no command module, `validate` only its own).
 *
 *   npm run bench:startup                 # builds dist/ first (npm run build)
 *   node bench/startup.mjs --runs 15 --no-build
 *
 * Not a test: asserts no timings, prints a table and one JSON line (prefix `BENCH `), exits 0.
 */
import process from 'node:process';
import { arg, CLI, ensureBuilt, fmtS, fmtX, median, REPO_ROOT, printResult, round, runBench, summary, table, timeCommand } from './lib.mjs';

const RUNS = Number(arg('runs', 11));
const TARGET = 2;

runBench('startup', async () => {
  ensureBuilt();
  const opts = { cwd: REPO_ROOT, env: { ...process.env, NO_COLOR: '1' } };
  const cases = {
    floor: () => timeCommand(process.execPath, ['-e', ''], opts),
    help: () => timeCommand(process.execPath, [CLI, '--help'], opts),
    validate: () => timeCommand(process.execPath, [CLI, 'validate', '-i', 'nodes'], opts),
  };
  // one warm-up each (file cache), then interleaved runs
  for (const f of Object.values(cases)) f();
  const times = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < RUNS; i++) for (const [k, f] of Object.entries(cases)) times[k].push(f());

  const floor = median(times.floor);
  const rows = Object.entries(times).map(([k, xs]) => [
    k === 'floor' ? "node -e ''" : k === 'help' ? 'pi-image --help' : 'pi-image validate',
    fmtS(median(xs)),
    fmtS(Math.min(...xs)),
    k === 'floor' ? '1.00×' : fmtX(median(xs) / floor),
    k === 'floor' ? '' : median(xs) / floor <= TARGET ? `≤ ${TARGET}× ok` : `> ${TARGET}× (target ${TARGET}×)`,
  ]);
  process.stdout.write(`start-up, median of ${RUNS} interleaved runs (dist/cli.js)\n`);
  process.stdout.write(`${table(['command', 'median', 'min', 'ratio', 'target'], rows)}\n`);
  printResult({
    bench: 'startup',
    runs: RUNS,
    floor: summary(times.floor),
    help: { ...summary(times.help), ratio: round(median(times.help) / floor, 3) },
    validate: { ...summary(times.validate), ratio: round(median(times.validate) / floor, 3) },
    target: TARGET,
  });
});
