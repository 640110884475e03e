/**
 * `-v` tracing (src/adapters/trace.ts): lines reach only the run that installed the sink, programs
 * run through adapters/process.ts are traced with their command line, exit code and time, and the
 * caller's redact strings are masked.
 */
import { describe, expect, it } from 'vitest';
import { commandLine, trace, tracing, withTrace } from '../../src/adapters/trace.js';
import { run } from '../../src/adapters/process.js';

describe('trace', () => {
  it('prints nothing outside a traced run', () => {
    expect(tracing()).toBe(false);
    expect(() => trace('nobody listens')).not.toThrow();
  });

  it('sends each line to the sink of its own run only, across awaits', async () => {
    const a: string[] = [];
    const b: string[] = [];
    await Promise.all([
      withTrace((l) => a.push(l), async () => {
        await new Promise((r) => setTimeout(r, 5));
        trace('from a');
      }),
      withTrace((l) => b.push(l), async () => {
        trace('from b');
        await new Promise((r) => setTimeout(r, 1));
        expect(tracing()).toBe(true);
      }),
    ]);
    expect(a).toEqual(['+ from a\n']);
    expect(b).toEqual(['+ from b\n']);
  });

  it('masks the given secrets', () => {
    const lines: string[] = [];
    withTrace((l) => lines.push(l), () => trace('token K10abc::server:s3cret in /run/x', ['s3cret']));
    expect(lines).toEqual(['+ token K10abc::server:*** in /run/x\n']);
  });

  it('quotes arguments as a shell would need them and shortens scripts', () => {
    expect(commandLine('debugfs', ['-R', 'stat "/etc/x"', 'img?offset=512'])).toBe(`debugfs -R 'stat "/etc/x"' 'img?offset=512'`);
    expect(commandLine('sh', ['-c', "echo 'hi'"])).toBe(`sh -c 'echo '\\''hi'\\'''`);
    expect(commandLine('python3', ['-c', 'import os\nprint(1)\n', 'f'])).toBe('python3 -c <script: 2 lines> f');
    expect(commandLine('x', ['a'.repeat(400)])).toBe(`x '${'a'.repeat(300)}…'`);
  });

  it('traces a program run with its exit code and time, redacting what the caller asked', async () => {
    const lines: string[] = [];
    await withTrace((l) => lines.push(l), () => run('sh', ['-c', 'exit 3', 'secret-arg'], { okExitCodes: [3], redact: ['secret-arg'] }));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\+ sh -c 'exit 3' \*\*\* {2}\(exit 3, \d+\.\d\d s\)\n$/);
  });
});
