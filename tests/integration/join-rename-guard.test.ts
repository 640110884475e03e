/**
 * The join script cancels the user rename that cloud-init's raspberry-pi-os distro re-enables
 * (`rename-user -f -s` after it creates the admin user: userconfig.service enabled, getty@tty1
 * disabled, an sshd banner), and does so before it waits for anything. An agent waits for its server
 * (and a node with a data disk for the disk) for as long as it takes; if it restarts meanwhile with
 * the rename service still enabled, the next boot stops at multi-user.target (the service asks on
 * tty8), cloud-final never finishes, and pi-image-join.service (ordered after it) never runs again.
 *
 * Runs the rendered join script (golden of pi-cluster-4: an agent with a data disk) with its paths
 * moved into a temp directory, `systemctl` recording its calls and `mountpoint` saying the disk is
 * not there yet, one attempt per phase: the run fails in waiting-for-data-disk, with the rename
 * already cancelled.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const JOIN_SCRIPT = join(ROOT, 'tests', 'golden', 'pi-cluster-4', 'rootfs', 'usr', 'local', 'sbin', 'pi-image-join');

let work = '';
afterEach(() => {
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

function runJoin(o: { renameEnabled: boolean }) {
  work = mkdtempSync(join(tmpdir(), 'pi-image-join-rename-'));
  const etc = join(work, 'etc-systemd');
  const sshd = join(work, 'sshd_config.d');
  const bin = join(work, 'bin');
  for (const d of [join(etc, 'multi-user.target.wants'), sshd, bin, join(work, 'run')]) mkdirSync(d, { recursive: true });
  if (o.renameEnabled) {
    // what rename-user left: the service enabled, the banner
    writeFileSync(join(etc, 'multi-user.target.wants', 'userconfig.service'), '');
    writeFileSync(join(sshd, 'rename_user.conf'), 'Banner /usr/share/userconf-pi/sshd_banner\n');
  }
  const calls = join(work, 'systemctl.calls');
  writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >>'${calls}'\n`, { mode: 0o755 });
  writeFileSync(join(bin, 'mountpoint'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });

  const script = readFileSync(JOIN_SCRIPT, 'utf8');
  const moved = script
    .replace("readonly STATUS_DIR='/var/lib/pi-image'", `readonly STATUS_DIR='${join(work, 'state')}'`)
    .replace('readonly ETC_SYSTEMD=/etc/systemd/system', `readonly ETC_SYSTEMD='${etc}'`)
    .replace('readonly SSHD_CONFIG_D=/etc/ssh/sshd_config.d', `readonly SSHD_CONFIG_D='${sshd}'`)
    .replace('mktemp -d /run/pi-image-join.XXXXXX', `mktemp -d '${join(work, 'run')}/pi-image-join.XXXXXX'`);
  for (const needle of [join(work, 'state'), etc, sshd, join(work, 'run')]) expect(moved, `the golden join script changed: ${needle} not substituted`).toContain(needle);
  const path = join(work, 'pi-image-join');
  writeFileSync(path, moved, { mode: 0o755 });

  const r = spawnSync('bash', [path], { env: { PATH: `${bin}:${process.env.PATH}`, PI_IMAGE_PHASE_ATTEMPTS: '1' }, encoding: 'utf8' });
  const status = JSON.parse(readFileSync(join(work, 'state', 'status.json'), 'utf8')) as { phase: string; lastError: string };
  return {
    code: r.status,
    stderr: r.stderr,
    status,
    calls: existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n') : [],
    banner: existsSync(join(sshd, 'rename_user.conf')),
  };
}

describe('join script: the user rename re-enabled by cloud-init is cancelled before any wait', () => {
  it('an agent still waiting for its data disk has already cancelled the rename', () => {
    const r = runJoin({ renameEnabled: true });
    expect(r.code, r.stderr).toBe(1);
    expect(r.status.phase).toBe('waiting-for-data-disk');
    expect(r.status.lastError).toContain('data disk is not mounted');
    expect(r.stderr).toContain('cancelling the first-boot user rename');
    // as cancel-rename on a console system: the banner gone, the service disabled, the console back
    expect(r.banner).toBe(false);
    expect(r.calls).toEqual(['--quiet disable userconfig.service', '--quiet enable getty@tty1.service', '--quiet reload ssh.service']);
    expect(r.stderr.indexOf('cancelling the first-boot user rename')).toBeLessThan(r.stderr.indexOf('phase: waiting-for-clock'));
  });

  it('with the rename service not enabled (the baked guard held), nothing is touched', () => {
    const r = runJoin({ renameEnabled: false });
    expect(r.code, r.stderr).toBe(1);
    expect(r.status.phase).toBe('waiting-for-data-disk');
    expect(r.stderr).not.toContain('cancelling');
    expect(r.calls).toEqual([]);
  });
});
