/**
 * Progress for long work: a cli-progress bar on a terminal, periodic plain lines otherwise
 * (CI logs), nothing with -o json on stdout (progress always goes to stderr).
 */
import cliProgress from 'cli-progress';
import type { Io } from '../app/io.js';

export interface ProgressReporter {
  /** a named task with a total (bytes or steps); returns its updater */
  task(label: string, total: number, unit?: 'bytes' | 'steps'): ProgressTask;
  stop(): void;
}
export interface ProgressTask {
  update(done: number, phase?: string): void;
  done(phase?: string): void;
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(0)} MiB`;
}

export function createProgress(io: Io, opts: { quiet?: boolean; interval?: number } = {}): ProgressReporter {
  if (opts.quiet) {
    const noop: ProgressTask = { update: () => undefined, done: () => undefined };
    return { task: () => noop, stop: () => undefined };
  }
  if (io.isTTY) {
    const multi = new cliProgress.MultiBar(
      {
        stream: process.stderr, // only when io.isTTY, which processIo() sets from process.stderr
        format: '{label} [{bar}] {percentage}% {value_fmt}/{total_fmt} {phase} ETA {eta_formatted}',
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    return {
      task(label, total, unit = 'steps') {
        const fmt = (n: number) => (unit === 'bytes' ? mib(n) : String(n));
        const bar = multi.create(total, 0, { label: label.padEnd(14), phase: '', value_fmt: fmt(0), total_fmt: fmt(total) });
        return {
          update: (done, phase = '') => bar.update(done, { phase, value_fmt: fmt(done) }),
          done: (phase = 'done') => bar.update(total, { phase, value_fmt: fmt(total) }),
        };
      },
      stop: () => multi.stop(),
    };
  }
  const interval = opts.interval ?? 10_000;
  return {
    task(label, total, unit = 'steps') {
      let lastPrint = 0;
      let lastPhase = '';
      const line = (done: number, phase: string) => {
        const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
        const amount = unit === 'bytes' ? `${mib(done)}/${mib(total)}` : `${done}/${total}`;
        io.err(`${label}: ${phase ? `${phase} ` : ''}${pct}% (${amount})\n`);
      };
      return {
        update(done, phase = '') {
          const now = Date.now();
          if (phase !== lastPhase || now - lastPrint >= interval) {
            lastPrint = now;
            lastPhase = phase;
            line(done, phase);
          }
        },
        done(phase = 'done') {
          line(total, phase);
        },
      };
    },
    stop: () => undefined,
  };
}
