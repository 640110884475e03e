/**
 * Where commands print. Injected so tests can run the CLI in-process and capture everything
 * (including checking that no secret ever reaches stdout/stderr).
 */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** true when stderr is a terminal (progress bars are drawn only then) */
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** answers an interactive question (flash confirmation); undefined when there is no terminal */
  prompt?: (question: string) => Promise<string>;
  /** like prompt, without echoing what is typed (an SSH key passphrase); undefined when there is no terminal */
  promptSecret?: (question: string) => Promise<string>;
  /** releases the terminal (the prompt's reader) when the run is over */
  close?: () => void;
}

export type OutputFormat = 'text' | 'json';

export function processIo(): Io {
  // One readline for the whole run, read as a stream of lines: answers typed ahead or pasted at
  // once are kept for the next questions (a readline per question would drop them).
  let lines: { rl: import('node:readline').Interface; next: AsyncIterator<string> } | undefined;
  return {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    isTTY: Boolean(process.stderr.isTTY),
    env: process.env,
    cwd: process.cwd(),
    prompt: process.stdin.isTTY
      ? async (question: string) => {
          if (!lines) {
            const { createInterface } = await import('node:readline');
            const rl = createInterface({ input: process.stdin, output: process.stderr });
            lines = { rl, next: rl[Symbol.asyncIterator]() };
          }
          lines.rl.setPrompt(question);
          lines.rl.prompt();
          const r = await lines.next.next();
          return r.done === true ? '' : r.value;
        }
      : undefined,
    promptSecret: process.stdin.isTTY
      ? async (question: string) => {
          // the line reader of `prompt` would compete for stdin: close it first
          lines?.rl.close();
          lines = undefined;
          const { createInterface } = await import('node:readline/promises');
          const { Writable } = await import('node:stream');
          process.stderr.write(question);
          // readline echoes through `output`: give it one that drops everything
          const silent = new Writable({ write: (_chunk, _enc, done) => done() });
          const rl = createInterface({ input: process.stdin, output: silent, terminal: true });
          try {
            return await rl.question('');
          } finally {
            rl.close();
            process.stderr.write('\n');
          }
        }
      : undefined,
    close: () => {
      lines?.rl.close();
      lines = undefined;
    },
  };
}

/** Print a value as pretty JSON followed by a newline. */
export function printJson(io: Io, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}
