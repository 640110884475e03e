/** Runs the pi-image CLI in-process with captured output (see src/cli.ts runCli). */
import { runCli } from '../../src/cli.js';
import type { Io } from '../../src/app/io.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function cli(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; prompt?: Io['prompt'] } = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const io: Io = {
    out: (t) => {
      stdout += t;
    },
    err: (t) => {
      stderr += t;
    },
    isTTY: false,
    env: opts.env ?? process.env,
    cwd: opts.cwd ?? process.cwd(),
    ...(opts.prompt ? { prompt: opts.prompt } : {}),
  };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}
