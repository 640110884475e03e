/**
 * A REAL OpenSSH server (Debian openssh-server) for tests: started on 127.0.0.1 on a free port with
 * its own host key, authorized_keys and config in a temp dir; root logins by key only (the tests
 * that use it run as root).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export function keygen(path: string, passphrase = ''): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', 'pi-image-test', '-f', path], { stdio: 'pipe' });
}

export interface TestSshd {
  dir: string;
  port: number;
  /** a client key whose public half is authorized */
  identity: string;
  stop(): Promise<void>;
}

export async function startSshd(): Promise<TestSshd> {
  const dir = mkdtempSync(join(tmpdir(), 'pi-image-sshd-'));
  keygen(join(dir, 'host_ed25519'));
  const identity = join(dir, 'id_ed25519');
  keygen(identity);
  execFileSync('cp', [`${identity}.pub`, join(dir, 'authorized_keys')]);
  const port = await freePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_ed25519')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation dir sshd insists on
  let log = '';
  const sshd: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'pipe', 'pipe'] });
  sshd.stdout?.on('data', (c: Buffer) => (log += c.toString()));
  sshd.stderr?.on('data', (c: Buffer) => (log += c.toString()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const up = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1', () => (s.end(), r(true)));
      s.on('error', () => r(false));
    });
    if (up) break;
    if (Date.now() > deadline || sshd.exitCode !== null) throw new Error(`sshd did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    dir,
    port,
    identity,
    stop: async () => {
      if (sshd.exitCode === null) {
        const exited = new Promise((r) => sshd.once('exit', r));
        sshd.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
