/**
 * Smoke test of the e2e foundation: the Pi-OS-shaped arm64 test base (tests/e2e/base/build-base.sh,
 * cached) boots under QEMU with a hand-made NoCloud seed on its FAT partition, cloud-init finishes
 * cleanly, and the seeded user can log in over SSH. The base is unguarded (no pi-image bake): its
 * userconf-pi rename service holds multi-user.target as on a Raspberry Pi OS Lite image, so
 * cloud-final waits until the service is stopped; the seed starts sshd early (bootcmd) to see that.
 *
 *   npx vitest run --config vitest.e2e.config.ts tests/e2e/base.test.ts
 *
 * Needs root (the base is built with mmdebstrap in an arm64 chroot) unless the image is already in
 * the cache. First run: ~15–25 min to build the base; later runs reuse it and take ~3–5 min.
 */
import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sparseCopy } from '../../src/adapters/image-files.js';
import { run } from '../../src/adapters/process.js';
import { startVm, vmExec, waitForSsh, type Vm } from '../../src/adapters/qemu.js';
import { bootPartitionOffset } from '../../src/adapters/partitions.js';

const here = dirname(fileURLToPath(import.meta.url));
const BUILD_SCRIPT = join(here, 'base', 'build-base.sh');
const isRoot = process.getuid?.() === 0;
const MTOOLS_ENV = { MTOOLS_SKIP_CHECK: '1' };

if (!isRoot) {
  console.warn('[e2e base] SKIPPED: must run as root (build-base.sh runs mmdebstrap in an arm64 chroot)');
}

/** Builds (or fetches from the cache) the test base; returns the image path. */
async function getTestBase(): Promise<string> {
  const t0 = Date.now();
  const r = await execa('bash', [BUILD_SCRIPT], { stdout: 'pipe', stderr: 'inherit' });
  const path = r.stdout.trim().split('\n').pop() ?? '';
  console.log(`[e2e base] base image ${path} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return path;
}

describe.skipIf(!isRoot)('e2e: Pi-OS-shaped trixie base boots under QEMU with a NoCloud seed', () => {
  const user = 'tester';
  const hostname = 'e2e-base-node';
  const instanceId = `e2e-base-${Date.now().toString(36)}`;
  const dsToken = `ds=nocloud;i=${instanceId}`;
  let work = '';
  let key = '';
  let vm: Vm | undefined;
  let bootToSshMs = 0;

  beforeAll(async () => {
    const base = await getTestBase();
    work = await mkdtemp(join(tmpdir(), 'pi-image-e2e-base-'));
    const image = join(work, 'node.img');
    await sparseCopy(base, image);

    key = join(work, 'id_ed25519');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'pi-image-e2e', '-f', key]);
    const pub = (await readFile(`${key}.pub`, 'utf8')).trim();

    const seed: Record<string, string> = {
      'user-data': [
        '#cloud-config',
        `hostname: ${hostname}`,
        'manage_etc_hosts: true',
        'user:',
        `  name: ${user}`,
        '  sudo: ALL=(ALL) NOPASSWD:ALL',
        '  shell: /bin/bash',
        '  lock_passwd: true',
        '  ssh_authorized_keys:',
        `    - ${pub}`,
        'ssh_pwauth: false',
        // early, without waiting: multi-user.target (and so cloud-final's runcmd) is held by userconfig.service
        'bootcmd:',
        '  - [systemctl, enable, --now, --no-block, ssh]',
        'runcmd:',
        '  - [systemctl, enable, --now, ssh]',
        '',
      ].join('\n'),
      'meta-data': `instance-id: ${instanceId}\n`,
      'network-config': [
        'network:',
        '  version: 2',
        '  ethernets:',
        '    eth0:',
        '      dhcp4: true',
        '      optional: false',
        '      nameservers:',
        '        addresses: [10.0.2.3]', // QEMU user-net DNS; also marks the config as ours, not the fallback
        '',
      ].join('\n'),
    };
    const drive = `${image}@@${await bootPartitionOffset(image)}`;
    const cmdline = (await run('mtype', ['-i', drive, '::/cmdline.txt'], { env: MTOOLS_ENV })).stdout.trim();
    seed['cmdline.txt'] = `${cmdline} ${dsToken}\n`;
    for (const [name, text] of Object.entries(seed)) {
      const f = join(work, name);
      await writeFile(f, text);
      await run('mcopy', ['-o', '-i', drive, f, `::/${name}`], { env: MTOOLS_ENV });
    }

    vm = await startVm({ image, consoleLog: join(work, 'console.log') });
    console.log(`[e2e base] booting: qemu pid ${vm.pid}, ssh 127.0.0.1:${vm.sshPort}, console ${vm.consoleLog}`);
    console.log(`[e2e base] kernel cmdline: ${vm.cmdline}`);
    bootToSshMs = await waitForSsh(vm, { user, identityFile: key, timeoutMs: 15 * 60_000 });
    console.log(`[e2e base] boot-to-SSH: ${(bootToSshMs / 1000).toFixed(1)} s`);
  });

  afterAll(async () => {
    if (vm !== undefined) {
      const t0 = Date.now();
      await vm.stop({ gracefulMs: 60_000 });
      console.log(`[e2e base] VM stopped in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    if (work !== '' && process.env.PI_IMAGE_KEEP_E2E !== '1') await rm(work, { recursive: true, force: true });
  });

  const ssh = async (cmd: string): Promise<string> => {
    if (vm === undefined) throw new Error('VM not started');
    const r = await vmExec(vm, cmd, { user, identityFile: key, timeoutMs: 20 * 60_000 });
    if (r.exitCode !== 0 && r.exitCode !== 2) throw new Error(`\`${cmd}\` failed (${r.exitCode}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  it('userconf-pi\'s rename service holds first boot, as on a Lite image, until it is stopped', async () => {
    // a target whose start job waits on another unit is "inactive" with a queued job (systemctl list-jobs:
    // JOB UNIT TYPE STATE), not "activating"
    const state = await ssh('echo "target=$(systemctl is-active multi-user.target) job=$(systemctl list-jobs --no-legend | awk \'$2 == "multi-user.target" {print $3 "/" $4}\') userconfig=$(systemctl is-active userconfig.service) enabled=$(systemctl is-enabled userconfig.service) cloud-init=$(cloud-init status | sed -n \'s/^status: //p\') pi=$(id -u pi) $(sudo -n passwd -S pi | cut -d" " -f2)"');
    console.log(`[e2e base] before stopping userconfig.service: ${state.trim()}`);
    expect(state).toContain('target=inactive');
    expect(state).toContain('job=start/waiting');
    expect(state).toContain('userconfig=activating');
    expect(state).toContain('enabled=enabled');
    expect(state).toContain('cloud-init=running');
    expect(state).toMatch(/pi=1000 L/); // the locked first user pi-gen makes
    await ssh('sudo -n systemctl stop userconfig.service');
    expect((await ssh('cloud-init status --wait >/dev/null; systemctl is-active multi-user.target')).trim()).toBe('active');
  });

  it('cloud-init finished from the /boot/firmware seed with no errors', async () => {
    const long = await ssh('cloud-init status --wait --long');
    console.log(`[e2e base] cloud-init status --long:\n${long}`);
    const st = JSON.parse(await ssh('cloud-init status --long --format json')) as {
      status: string;
      errors: unknown[];
      recoverable_errors: Record<string, unknown>;
      datasource: string;
      detail: string;
    };
    expect(st.status).toBe('done');
    expect(st.errors).toEqual([]);
    expect(st.recoverable_errors).toEqual({});
    expect(st.datasource).toBe('nocloud');
    expect(st.detail).toContain('/boot/firmware');
    expect(long).toMatch(/^status: done$/m);
  });

  it('applied the hostname and the kernel saw the ds= token', async () => {
    expect((await ssh('hostname')).trim()).toBe(hostname);
    expect(await ssh('cat /proc/cmdline')).toContain(dsToken);
    expect((await ssh('cloud-init query instance-id')).trim()).toBe(instanceId);
  });

  it('brought eth0 up with the seeded network-config through netplan → NetworkManager', async () => {
    const info = await ssh(
      'ip -4 -br addr show eth0; echo ---; sudo cat /etc/netplan/50-cloud-init.yaml; echo ---; nmcli -t -f DEVICE,STATE,CONNECTION dev',
    );
    console.log(`[e2e base] network:\n${info}`);
    expect(info).toMatch(/^eth0\s+UP\s+\d+\.\d+\.\d+\.\d+\//m);
    expect(info).toMatch(/eth0:connected:/);
    expect(info).toContain('10.0.2.3'); // the seeded network-config, not cloud-init's fallback
    expect((await ssh('sudo -n true && echo sudo-ok')).trim()).toBe('sudo-ok');
    console.log(`[e2e base] boot-to-SSH was ${(bootToSshMs / 1000).toFixed(1)} s`);
  });
});
