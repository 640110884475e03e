/**
 * The one progress display for long work (build, flash, image download/import/verify).
 * Everything goes to `io.err`, so progress never mixes with `-o json` on stdout and in-process
 * tests can capture it.
 *   - terminal (`io.isTTY`): a cli-progress bar per task, drawn through `io.err`;
 *   - otherwise (CI logs, pipes): plain lines, one every `everyPercent` % and/or every `everyMs`
 *     ms (whichever the caller chooses), plus a line when the phase text changes and a final
 *     100 % line from `done()`.
 * Units: 'bytes' shows MiB, speed (MiB/s) and ETA; 'steps' shows n/total.
 *   writing: 40% (41/104 MiB, 180.2 MiB/s, ETA 0 s)      bytes
 *   pi-cluster-2: seed 40% (40/100)                      steps, with a phase
 */
import { MultiBar } from 'cli-progress';

/** Where progress is drawn: standard error, and whether it is a terminal (the commands' Io fits). */
export interface ProgressOutput {
  err(text: string): void;
  isTTY: boolean;
}

export type ProgressUnit = 'bytes' | 'steps';

export interface ProgressOptions {
  /** draw and print nothing (e.g. --dry-run) */
  quiet?: boolean;
  /** without a terminal: a line each time another `everyPercent` % is done */
  everyPercent?: number;
  /** without a terminal: a line at least every `everyMs` ms while updates come in
   * (default 10 s when neither this nor `everyPercent` is given) */
  everyMs?: number;
  /** labels are padded to this width on a terminal so the bars line up (default 10) */
  labelWidth?: number;
  /** terminal width (default: process.stderr's, else 80) */
  columns?: number;
  /** clock in ms, for speed, ETA and `everyMs` (tests pass a fake one) */
  now?: () => number;
}

export interface ProgressReporter {
  /** a named task; `total` undefined when not known (yet) */
  task(label: string, total: number | undefined, unit?: ProgressUnit): ProgressTask;
  /** a stream of `{ phase, bytes, total }` events (download, flash): one bytes task per phase,
   * labelled `labelOf(phase)`; a new phase finishes the previous one */
  phases(labelOf?: (phase: string) => string): PhasedProgress;
  /** end the display (call in `finally`); unfinished tasks are left as they are */
  stop(): void;
}

export interface ProgressTask {
  /** `done` units of the total are done; `phase` is an optional word shown with it */
  update(done: number, phase?: string): void;
  /** the task is complete: show 100 % (keeps the last phase unless one is given) */
  done(phase?: string): void;
}

export interface PhaseEvent {
  phase?: string | undefined;
  bytes: number;
  total?: number | undefined;
}

export interface PhasedProgress {
  update(p: PhaseEvent): void;
  /** the last phase is complete */
  done(): void;
}

const MiB = 1024 * 1024;

/** `41/104 MiB` or `40/100`; unknown totals show `?` */
function amount(unit: ProgressUnit, done: number, total: number | undefined): string {
  if (unit === 'steps') return `${done}/${total ?? '?'}`;
  // a finished task shows e.g. 104/104 MiB, not 103/104
  const d = total !== undefined && done >= total ? Math.ceil(done / MiB) : Math.floor(done / MiB);
  return `${d}/${total === undefined ? '?' : Math.ceil(total / MiB)} MiB`;
}

function mibPerSecond(bytes: number, ms: number): number {
  return ms > 0 ? bytes / MiB / (ms / 1000) : 0;
}

function percent(done: number, total: number | undefined): number | undefined {
  if (total === undefined) return undefined;
  return total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 100;
}

export function createProgress(io: ProgressOutput, opts: ProgressOptions = {}): ProgressReporter {
  const now = opts.now ?? (() => performance.now());
  const display: Display = opts.quiet ? quiet : io.isTTY ? terminal(io, opts, now) : lines(io, opts, now);
  const reporter: ProgressReporter = {
    task: (label, total, unit = 'steps') => display.task(label, total, unit),
    phases(labelOf = (phase) => phase) {
      let current: { phase: string; task: ProgressTask } | undefined;
      return {
        update: (p) => {
          const phase = p.phase ?? '';
          if (current?.phase !== phase) {
            current?.task.done();
            current = { phase, task: reporter.task(labelOf(phase) || 'progress', p.total, 'bytes') };
          }
          current.task.update(p.bytes);
        },
        done: () => current?.task.done(),
      };
    },
    stop: () => display.stop(),
  };
  return reporter;
}

interface Display {
  task(label: string, total: number | undefined, unit: ProgressUnit): ProgressTask;
  stop(): void;
}

const quiet: Display = {
  task: () => ({ update: () => undefined, done: () => undefined }),
  stop: () => undefined,
};

/**
 * Shared bookkeeping of one task: the phase, the last amount, the total (learnt from the
 * amount when unknown), and that `done()` happens once and ends the task.
 */
function trackTask(total: number | undefined, show: (done: number, total: number | undefined, phase: string, final: boolean) => void): ProgressTask {
  let phase = '';
  let last = 0;
  let finished = false;
  return {
    update(done, p = phase) {
      if (finished) return;
      phase = p;
      last = done;
      show(done, total, phase, false);
    },
    done(p = phase) {
      if (finished) return;
      finished = true;
      phase = p;
      const end = total ?? last;
      show(end, end, phase, true);
    },
  };
}

/** cli-progress bars (one MultiBar, created with the first task) written through `io.err` */
function terminal(io: ProgressOutput, opts: ProgressOptions, now: () => number): Display {
  const stream = {
    isTTY: true,
    columns: opts.columns ?? process.stderr.columns ?? 80,
    write: (s: string): boolean => {
      io.err(s);
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  let multi: MultiBar | undefined;
  const width = opts.labelWidth ?? 10;
  return {
    task(label, total, unit) {
      multi ??= new MultiBar({
        stream,
        format: '{label} [{bar}] {percentage}% | {amount}{speed} | ETA {eta_formatted}{phase}',
        barCompleteChar: '=',
        barIncompleteChar: '-',
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 20,
      });
      const started = now();
      const payload = (done: number, total: number | undefined, phase: string) => ({
        amount: amount(unit, done, total),
        speed: unit === 'bytes' ? ` | ${mibPerSecond(done, now() - started).toFixed(1)} MiB/s` : '',
        phase: phase ? ` | ${phase}` : '',
      });
      const bar = multi.create(total ?? 0, 0, { label: label.padEnd(width), ...payload(0, total, '') });
      return trackTask(total, (done, t, phase) => {
        if (t === undefined || total === undefined) bar.setTotal(t ?? done);
        bar.update(done, payload(done, t, phase));
      });
    },
    stop() {
      multi?.stop();
      multi = undefined;
    },
  };
}

/** plain lines for logs: by percentage and/or time, on a phase change, and a final 100 % line */
function lines(io: ProgressOutput, opts: ProgressOptions, now: () => number): Display {
  const everyPercent = opts.everyPercent;
  const everyMs = opts.everyMs ?? (everyPercent === undefined ? 10_000 : undefined);
  return {
    task(label, total, unit) {
      const started = now();
      let last: { at: number; phase: string; pct: number | undefined } | undefined;
      let nextPct = 0;
      return trackTask(total, (done, t, phase, final) => {
        const pct = percent(done, t);
        const due = final
          ? !(last?.pct === 100 && last.phase === phase) // unless that was just said
          : last === undefined ||
            phase !== last.phase ||
            (everyPercent !== undefined && pct !== undefined && pct >= nextPct) ||
            (everyMs !== undefined && now() - last.at >= everyMs);
        if (!due) return;
        let detail = amount(unit, done, t);
        if (unit === 'bytes') {
          const rate = mibPerSecond(done, now() - started);
          detail += `, ${rate.toFixed(1)} MiB/s`;
          if (t !== undefined) detail += `, ETA ${Math.ceil(rate > 0 ? (t - done) / MiB / rate : 0)} s`;
        }
        io.err(`${label}: ${phase ? `${phase} ` : ''}${pct === undefined ? '' : `${pct}% `}(${detail})\n`);
        last = { at: now(), phase, pct };
        if (pct !== undefined && everyPercent !== undefined) {
          nextPct = pct >= 100 ? Infinity : Math.min(100, pct - (pct % everyPercent) + everyPercent);
        }
      });
    },
    stop: () => undefined,
  };
}
