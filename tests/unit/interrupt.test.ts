/**
 * Ctrl-C restores the terminal: the cursor comes back, line wrapping is on again, a line says
 * "interrupted", and the exit code is the shell's for the signal.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { onInterrupt, RESTORE_TERMINAL } from '../../src/adapters/terminal.js';
import { REPO_ROOT } from '../helpers/sample-inventory.js';

describe('interrupt handling', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('on a terminal, %s shows the cursor, re-enables wrapping, says so and exits %i', (signal, code) => {
    let written = '';
    let exited: number | undefined;
    onInterrupt(signal, { write: (t) => (written += t), isTTY: true, exit: (c) => (exited = c) });
    expect(written.startsWith(RESTORE_TERMINAL)).toBe(true);
    expect(written).toContain('\x1b[?25h'); // cursor visible
    expect(written).toContain('\x1b[?7h'); // auto-wrap on
    expect(written).toContain(`interrupted (${signal})\n`);
    expect(exited).toBe(code);
  });

  it('in a log (no terminal) writes no escape sequences', () => {
    let written = '';
    onInterrupt('SIGINT', { write: (t) => (written += t), isTTY: false, exit: () => undefined });
    expect(written).toBe('\ninterrupted (SIGINT)\n');
  });

  // a real pseudo-terminal through util-linux `script`, a real cli-progress bar and a real SIGINT
  it.skipIf(!existsSync('/usr/bin/script'))('a real bar on a pty: after SIGINT the last sequences restore the terminal', async () => {
    const tsx = `${REPO_ROOT}/node_modules/.bin/tsx`;
    const child = spawn('script', ['-qfec', `${tsx} tests/helpers/interrupt-child.ts`, '/dev/null'], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', () => {
        if (out.includes('ready')) resolve();
      });
      child.on('exit', () => reject(new Error(`child exited early: ${out}`)));
    });
    // Ctrl-C on the terminal: the pty's line discipline sends SIGINT to the foreground process group
    child.stdin.write('\x03');
    const status = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(out).toContain('\x1b[?25l'); // the bar hid the cursor
    const hidden = out.lastIndexOf('\x1b[?25l');
    const shown = out.lastIndexOf('\x1b[?25h');
    expect(shown).toBeGreaterThan(hidden);
    expect(out.lastIndexOf('\x1b[?7h')).toBeGreaterThan(out.lastIndexOf('\x1b[?7l'));
    expect(out).toContain('interrupted (SIGINT)');
    expect(status).toBe(130);
  });
});
