import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Io } from '../../src/app/io.js';
import { createProgress, type ProgressOptions } from '../../src/adapters/progress.js';

const MiB = 1024 * 1024;

/** an Io capturing stderr, and a clock the test moves */
function setup(isTTY: boolean, opts: Omit<ProgressOptions, 'now'> = {}) {
  let err = '';
  let out = '';
  const clock = { ms: 0 };
  const io: Io = { out: (t) => void (out += t), err: (t) => void (err += t), isTTY, env: {}, cwd: '/' };
  const progress = createProgress(io, { ...opts, now: () => clock.ms });
  return { progress, clock, err: () => err, out: () => out, lines: () => err.split('\n').filter((l) => l !== '') };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('progress without a terminal (plain lines)', () => {
  it('bytes: a line every N %, MiB, MiB/s and ETA, in the flash format', () => {
    const s = setup(false, { everyPercent: 10 });
    const t = s.progress.task('writing', 104 * MiB, 'bytes');
    t.update(0);
    s.clock.ms = 100;
    t.update(4 * MiB); // 3 %: not yet
    s.clock.ms = 1000;
    t.update(52 * MiB); // 50 %
    s.clock.ms = 1100;
    t.update(53 * MiB); // 50 %: already said
    s.clock.ms = 2000;
    t.update(104 * MiB);
    t.done(); // 100 % was just said: no second line
    s.progress.stop();
    expect(s.lines()).toEqual([
      'writing: 0% (0/104 MiB, 0.0 MiB/s, ETA 0 s)',
      'writing: 50% (52/104 MiB, 52.0 MiB/s, ETA 1 s)',
      'writing: 100% (104/104 MiB, 52.0 MiB/s, ETA 0 s)',
    ]);
    expect(s.out()).toBe('');
  });

  it('a finished image that is not a whole number of MiB shows the rounded-up total, not one less', () => {
    const s = setup(false, { everyPercent: 10 });
    const t = s.progress.task('hash', 10 * MiB + 5, 'bytes');
    s.clock.ms = 1000;
    t.update(10 * MiB + 5);
    expect(s.lines()).toEqual(['hash: 100% (11/11 MiB, 10.0 MiB/s, ETA 0 s)']);
  });

  it('steps: n/total with the phase, a line on each phase change or after everyMs, and a final 100 % line', () => {
    const s = setup(false, { everyMs: 10_000 });
    const t = s.progress.task('pi-cluster-2', 100);
    t.update(5, 'copy');
    s.clock.ms = 1000;
    t.update(10, 'copy'); // too soon, same phase
    t.update(40, 'seed'); // new phase
    s.clock.ms = 12_000;
    t.update(50, 'seed'); // 11 s later
    t.done('done');
    t.update(60, 'late'); // ignored after done
    expect(s.lines()).toEqual([
      'pi-cluster-2: copy 5% (5/100)',
      'pi-cluster-2: seed 40% (40/100)',
      'pi-cluster-2: seed 50% (50/100)',
      'pi-cluster-2: done 100% (100/100)',
    ]);
  });

  it('done() always ends with a 100 % line, keeping the last phase', () => {
    const s = setup(false, { everyPercent: 25 });
    const t = s.progress.task('import', 8, 'steps');
    t.update(1, 'copy');
    t.done();
    expect(s.lines()).toEqual(['import: copy 12% (1/8)', 'import: copy 100% (8/8)']);
  });

  it('an unknown total: lines by time only, and the final line takes the last amount as the total', () => {
    const s = setup(false, { everyPercent: 10, everyMs: 15_000 });
    const t = s.progress.task('download', undefined, 'bytes');
    s.clock.ms = 1000;
    t.update(MiB);
    s.clock.ms = 2000;
    t.update(2 * MiB); // 1 s later: not yet
    s.clock.ms = 16_000;
    t.update(32 * MiB);
    t.done();
    expect(s.lines()).toEqual([
      'download: (1/? MiB, 1.0 MiB/s)',
      'download: (32/? MiB, 2.0 MiB/s)',
      'download: 100% (32/32 MiB, 2.0 MiB/s, ETA 0 s)',
    ]);
  });

  it('phases: one task per phase, the previous one finished with its 100 % line', () => {
    const s = setup(false, { everyPercent: 50 });
    const phases = s.progress.phases((p) => (p === 'write' ? 'writing' : 'verifying'));
    phases.update({ phase: 'write', bytes: 0, total: 4 * MiB });
    phases.update({ phase: 'write', bytes: 3 * MiB, total: 4 * MiB }); // 75 % (past 50 %): printed as is
    phases.update({ phase: 'verify', bytes: 4 * MiB, total: 4 * MiB });
    phases.done(); // verify already at 100 %
    expect(s.lines().map((l) => l.replace(/ \(.*/, ''))).toEqual(['writing: 0%', 'writing: 75%', 'writing: 100%', 'verifying: 100%']);
  });

  it('quiet: nothing at all', () => {
    const s = setup(false, { quiet: true });
    const t = s.progress.task('x', 10);
    t.update(5);
    t.done();
    s.progress.phases().update({ phase: 'download', bytes: 1, total: 2 });
    s.progress.stop();
    expect(s.err()).toBe('');
  });
});

describe('progress on a terminal (bars)', () => {
  it('draws cli-progress bars through io.err only, bytes with MiB/s and ETA, steps with n/total and the phase', () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const s = setup(true, { columns: 120, labelWidth: 12 });
    const w = s.progress.task('writing', 104 * MiB, 'bytes');
    const n = s.progress.task('pi-cluster-2', 100);
    w.update(52 * MiB);
    n.update(40, 'seed');
    s.clock.ms = 2000;
    w.update(104 * MiB);
    n.done('done');
    s.progress.stop();
    const err = s.err();
    expect(err).toMatch(/writing +\[=+\] 100% \| 104\/104 MiB \| 52\.0 MiB\/s \| ETA \S+/);
    expect(err).toMatch(/pi-cluster-2 +\[=+\] 100% \| 100\/100 \| ETA \S+ \| done/);
    expect(err).toContain('\x1B[?25l'); // cursor hidden while drawing, shown again at the end
    expect(err).toContain('\x1B[?25h');
    expect(err).not.toMatch(/writing: /); // no plain lines
    expect(stderr).not.toHaveBeenCalled();
  });

  it('an unknown total is drawn as ? and filled when done', () => {
    const s = setup(true);
    const phases = s.progress.phases();
    phases.update({ phase: 'download', bytes: 3 * MiB, total: undefined });
    phases.done();
    s.progress.stop();
    expect(s.err()).toMatch(/download +\[=+\] 100% \| 3\/3 MiB \| [\d.]+ MiB\/s/);
  });

  it('nothing is drawn (and the cursor is left alone) until there is a task', () => {
    const s = setup(true);
    s.progress.stop();
    expect(s.err()).toBe('');
  });
});
