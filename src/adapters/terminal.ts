/**
 * The terminal after an interrupt. Progress bars (cli-progress) hide the cursor (`ESC[?25l`) and
 * turn line wrapping off (`ESC[?7l`) while they draw, and put both back in their stop(). Ctrl-C
 * (SIGINT) or a kill (SIGTERM) ends the process before any `finally` runs, so without this the
 * shell is left with no cursor and lines that do not wrap. On either signal pi-image writes the
 * restore sequences (on a terminal only), a line saying it was interrupted, and exits with the
 * shell's code for the signal (128 + number: 130 for SIGINT, 143 for SIGTERM).
 */

/** show the cursor, re-enable auto-wrap (DECTCEM / DECAWM) */
export const RESTORE_TERMINAL = '\x1b[?25h\x1b[?7h';

export const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
export type HandledSignal = keyof typeof SIGNAL_EXIT_CODES;

export interface InterruptSink {
  /** writes to stderr */
  write(text: string): void;
  /** stderr is a terminal */
  isTTY: boolean;
  exit(code: number): void;
}

/** What an interrupted command has left half done, said after "interrupted" (e.g. a card half written). */
const interruptNotes = new Set<() => string>();

/**
 * Registers a line to print if the process is interrupted now (the text is taken at that moment,
 * so it can follow the phase); returns the function that removes it again.
 */
export function noteOnInterrupt(line: () => string): () => void {
  interruptNotes.add(line);
  return () => {
    interruptNotes.delete(line);
  };
}

/** What pi-image does on SIGINT / SIGTERM: restore the terminal, say so (and what was left half done), exit 130 / 143. */
export function onInterrupt(signal: HandledSignal, sink: InterruptSink): void {
  // a bar may be half-drawn on the current line: clear it (CR + erase line) before the message
  sink.write(sink.isTTY ? `${RESTORE_TERMINAL}\r\x1b[2K` : '\n');
  sink.write(`interrupted (${signal})\n`);
  for (const note of interruptNotes) sink.write(`${note()}\n`);
  sink.exit(SIGNAL_EXIT_CODES[signal]);
}

/**
 * Installs the handlers for the real process (bin/pi-image only; tests call onInterrupt directly).
 * The exit waits for the other listeners of the same signal (e.g. removeOnSignal's temp-file
 * cleanup) to run first; a second signal exits at once.
 */
export function installInterruptHandlers(proc: NodeJS.Process = process): void {
  let interrupted = false;
  for (const signal of Object.keys(SIGNAL_EXIT_CODES) as HandledSignal[]) {
    proc.on(signal, () => {
      if (interrupted) proc.exit(SIGNAL_EXIT_CODES[signal]);
      interrupted = true;
      onInterrupt(signal, {
        write: (t) => proc.stderr.write(t),
        isTTY: Boolean(proc.stderr.isTTY),
        exit: (code) => setImmediate(() => proc.exit(code)),
      });
    });
  }
}
