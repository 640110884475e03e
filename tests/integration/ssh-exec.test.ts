/**
 * The one SSH client (src/adapters/ssh.ts) as boot-test uses it for a guest (`vmExec`: key file
 * only, throwaway host keys unchecked), against a REAL OpenSSH server on 127.0.0.1.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmExec } from '../../src/adapters/qemu.js';
import { freePort, keygen, startSshd, type TestSshd } from '../helpers/sshd.js';

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('vmExec over the one SSH client', () => {
  let sshd: TestSshd;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => sshd?.stop());

  it('runs a command: stdout, stderr and its exit code (a non-zero exit is a result, not an error)', async () => {
    const r = await vmExec({ sshPort: sshd.port }, 'echo out; echo err >&2; exit 3', { user: 'root', identityFile: sshd.identity, timeoutMs: 60_000 });
    expect(r).toEqual({ stdout: 'out\n', stderr: 'err', exitCode: 3 });
  });

  it('a refused key and a closed port come back as exit 255 with the reason boot-test tells apart', async () => {
    const stranger = join(sshd.dir, 'stranger');
    keygen(stranger);
    const refused = await vmExec({ sshPort: sshd.port }, 'true', { user: 'root', identityFile: stranger, timeoutMs: 60_000 });
    expect(refused).toMatchObject({ exitCode: 255, failure: 'refused' });
    expect(refused.stderr).toContain('the server refused');
    const closed = await vmExec({ sshPort: await freePort() }, 'true', { user: 'root', identityFile: sshd.identity, timeoutMs: 60_000 });
    expect(closed).toMatchObject({ exitCode: 255, failure: 'unreachable' });
    expect(closed.stderr).toContain('ECONNREFUSED');
  });

  it('a key file that cannot be used is an environment error, not a retryable failure', async () => {
    await expect(vmExec({ sshPort: sshd.port }, 'true', { user: 'root', identityFile: `${sshd.identity}.pub`, timeoutMs: 60_000 })).rejects.toMatchObject({ category: 'environment' });
  });
});
