/**
 * The process group of a program pi-image started is signalled only while that program runs: once
 * it has exited its pid (and so the group id) may belong to another program (pid_max is 32768 on
 * many hosts), and a late `kill(-pid)` would stop a stranger.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { spawnStream } from '../../src/adapters/process.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('spawnStream().kill', () => {
  it('stops a running program and what it started (its whole process group)', async () => {
    const child = spawnStream('sh', ['-c', 'sleep 600 & wait']);
    child.kill();
    await expect(child.done).rejects.toThrow(/killed by SIG(KILL|TERM)/);
  });

  it('signals nothing once the program has exited (its pid may have been given to another program)', async () => {
    const child = spawnStream('cat', []);
    child.stdin.end('x');
    child.stdout.resume();
    await child.done;
    const kill = vi.spyOn(process, 'kill');
    child.kill();
    expect(kill).not.toHaveBeenCalled();
  });
});
