/**
 * Raspberry Pi OS trixie runs cloud-init with Raspberry Pi's `raspberry-pi-os` distro, which the
 * trixie test base (cloud-init 25.1.4, `debian` distro) cannot show. This case derives a variant of
 * the cached base with Debian sid's cloud-init (26.x) set up as cloud-init's raspberry-pi-os build
 * variant, with stand-ins for raspi-config and rename-user that record their calls
 * (tests/e2e/fixtures/rpios-variant.ts), builds the sample server from it with `pi-image build`
 * and boots it with `pi-image boot-test`. It must provision as on the plain base, and the distro
 * must have made exactly the calls its code makes for pi-image's user-data
 * (docs/reference/cloud-init-raspberry-pi-os.md): the second `rename-user -f -s` re-enables
 * userconf-pi's rename service after the bake disabled it, and the node must end with the service
 * disabled and getty@tty1 enabled again.
 *
 *   npx vitest run --config vitest.e2e.config.ts tests/e2e/rpios-distro.test.ts   (root)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmExec } from '../../src/adapters/qemu.js';
import { cli } from '../helpers/run-cli.js';
import { expectServerProvisioned, keptVm } from './fixtures/provisioned.js';
import { RASPI_CONFIG_LOG, RENAME_USER_LOG, rpiOsVariant, type RpiOsVariant } from './fixtures/rpios-variant.js';
import { bootableInventory, type BootableInventory, testBase } from './fixtures/setup.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('[e2e rpios] SKIPPED: must run as root (the test base is built with mmdebstrap in an arm64 chroot)');

describe.skipIf(!isRoot)("e2e: cloud-init's raspberry-pi-os distro (Debian sid's cloud-init in the test base)", () => {
  let inv: BootableInventory['inv'];
  let env: NodeJS.ProcessEnv;
  let key = '';
  let variant: RpiOsVariant;

  beforeAll(async () => {
    const base = await testBase('e2e rpios');
    ({ inv, env, key } = await bootableInventory({ run: (argv, o) => cli(argv, o) }));
    variant = await rpiOsVariant(base, inv.root, 'e2e rpios');
    const t0 = Date.now();
    const built = await cli(['build', 'pi-cluster-1', '--base', variant.image], { cwd: inv.root, env });
    expect(built.code, built.stderr).toBe(0);
    console.log(`[e2e rpios] built pi-cluster-1 in ${((Date.now() - t0) / 1000).toFixed(0)} s\n${built.stdout}`);
  }, 60 * 60_000);

  afterAll(() => inv?.cleanup());

  it('the server provisions itself under the raspberry-pi-os distro, which made the raspi-config and rename-user calls its code makes, and the rename service stays off', async () => {
    const t0 = Date.now();
    const r = await cli(['boot-test', 'pi-cluster-1', '--identity', key, '--timeout', '40m', '--keep'], { cwd: inv.root, env });
    console.log(`[e2e rpios] pi-image boot-test pi-cluster-1 → exit ${r.code} after ${((Date.now() - t0) / 1000).toFixed(0)} s\n${r.stdout}${r.stderr}`);
    const kept = keptVm(r.stdout);
    try {
      // boot-test probes once the join settled: the server joined
      expectServerProvisioned(r);
      expect(r.stdout).toMatch(/^ok\s+pi-cluster-1\s+cloud-init\s+done, no errors or warnings/m);
      expect(kept, r.stdout).toBeDefined();
      const ssh = async (cmd: string): Promise<string> => {
        const res = await vmExec({ sshPort: kept!.sshPort }, cmd, { user: 'pi-admin', identityFile: key, timeoutMs: 15 * 60_000 });
        expect(res.exitCode, `${cmd}: ${res.stderr}`).toBe(0);
        return res.stdout;
      };
      const joined = await ssh('for i in $(seq 1 150); do grep -q \'"phase":"joined"\' /var/lib/pi-image/status.json && break; sleep 5; done; cat /var/lib/pi-image/status.json');

      // everything first, then the assertions (one failing must not hide the others in the log)
      const version = (await ssh('cloud-init --version 2>&1')).trim();
      const distroLines = (await ssh("sudo -n grep -h -o 'Using distro class .*' /var/log/cloud-init.log | sort -u")).trim();
      const renameCalls = (await ssh(`sudo -n cat ${RENAME_USER_LOG} || true`)).trim().split('\n');
      const raspiCalls = (await ssh(`sudo -n cat ${RASPI_CONFIG_LOG} || true`)).trim().split('\n');
      const effects = await ssh('grep "^XKBLAYOUT=" /etc/default/keyboard; grep "^LANG=" /etc/default/locale; grep -v "^#" /etc/locale.gen | grep . || true');
      const cancelled = (await ssh('sudo -n journalctl -u pi-image-join.service -o cat --no-pager | grep -c "cancelling the first-boot user rename" || true')).trim();
      const blame = (await ssh('sudo -n cloud-init analyze blame 2>&1 | head -12 || true')).trim();
      const guard = (
        await ssh(
          'echo "userconfig=$(systemctl is-enabled userconfig.service) getty=$(systemctl is-enabled getty@tty1.service) banner=$(test -e /etc/ssh/sshd_config.d/rename_user.conf && echo present || echo absent)"',
        )
      ).trim();
      console.log(
        `[e2e rpios] join: ${joined.trim()}\n[e2e rpios] ${version} (package ${variant.cloudInitVersion}); ${distroLines}\n[e2e rpios] recorded:\n  ${[...renameCalls, ...raspiCalls].join('\n  ')}\n` +
          `[e2e rpios] effects: ${effects.trim().split('\n').join('; ')}\n[e2e rpios] join script cancelled the rename ${cancelled} time(s); after first boot: ${guard}\n` +
          `[e2e rpios] cloud-init analyze blame:\n${blame}`,
      );

      expect(joined).toContain('"phase":"joined"');
      // cloud-init is the sid package, and it ran with the raspberry-pi-os distro class
      expect(version).toContain(variant.cloudInitVersion.replace(/-.*$/, ''));
      expect(distroLines).toBe("Using distro class <class 'cloudinit.distros.raspberry_pi_os.Distro'>");
      // the calls cloudinit/distros/raspberry_pi_os.py makes for pi-image's user-data (user pi-admin,
      // keyboard gb, locale en_GB.UTF-8), and rename-user's own two raspi-config questions, in order
      expect(renameCalls).toEqual(['rename-user -f -s (SUDO_USER=pi-admin)']);
      expect(raspiCalls).toEqual([
        'raspi-config nonint get_autologin (SUDO_USER=pi-admin)',
        'raspi-config nonint get_boot_cli (SUDO_USER=pi-admin)',
        'raspi-config nonint update_labwc_keyboard',
        'raspi-config nonint update_squeekboard restart',
        'raspi-config nonint do_change_locale en_GB.UTF-8',
      ]);
      // what those calls did: the keyboard file from the debian parent, the locale through raspi-config
      expect(effects).toMatch(/^XKBLAYOUT="gb"$/m);
      expect(effects).toMatch(/^LANG=en_GB\.UTF-8$/m);
      expect(effects).toMatch(/^en_GB\.UTF-8 UTF-8$/m);
      // rename-user re-enabled the rename service during first boot; the join script undid it, so
      // the bake's guard holds on the node: userconfig.service disabled, getty@tty1 enabled, no banner
      expect(Number(cancelled)).toBeGreaterThanOrEqual(1);
      expect(guard).toBe('userconfig=disabled getty=enabled banner=absent');
    } finally {
      if (kept) {
        try {
          process.kill(kept.pid);
        } catch {
          /* already gone */
        }
      }
    }
  });
});
