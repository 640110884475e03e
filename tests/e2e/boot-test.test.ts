/**
 * The promise of pi-image, end to end: images built from the sample inventory on the Pi-OS-shaped
 * test base boot under qemu-system-aarch64 and provision themselves; `pi-image boot-test` checks
 * them over SSH as the inventory's admin user and prints its per-check report.
 *
 *   npm run test:e2e     (root; first run builds the test base, see tests/e2e/base/build-base.sh)
 *
 * k3s cannot be downloaded here, so the images carry an air-gap payload whose k3s binary and
 * install.sh are stand-ins (tests/e2e/fixtures/) that refuse what the real ones refuse: the k3s
 * stand-in parses config.yaml with k3s' per-role flag lists, needs the token file, and fails unless
 * the air-gap images are in <data-dir>/agent/images. The server has a data disk (a second virtio
 * disk boot-test attaches), mounted over /var/lib/rancher: its images and manifests are found only
 * because the join script copies them there from where the bake staged them. The test base carries
 * userconf-pi's rename service, which holds first boot unless the bake's guard disabled it. The
 * agent shows the other half: it waits for the server and retries with backoff.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmExec } from '../../src/adapters/qemu.js';
import { cli } from '../helpers/run-cli.js';
import { expectServerProvisioned, keptVm } from './fixtures/provisioned.js';
import { baseKernel, bootableInventory, type BootableInventory, testBase } from './fixtures/setup.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('[e2e boot-test] SKIPPED: must run as root (the test base is built with mmdebstrap in an arm64 chroot)');

describe.skipIf(!isRoot)('e2e: pi-image build + boot-test under QEMU', () => {
  let inv: BootableInventory['inv'];
  let env: NodeJS.ProcessEnv;
  let key = '';
  let otherKey = '';
  let kernel = { kernel: '', initrd: '' };

  beforeAll(async () => {
    const base = await testBase('e2e');
    ({ inv, env, key } = await bootableInventory({ run: (argv, o) => cli(argv, o) }));
    otherKey = join(inv.root, 'not-the-admin-key');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'someone-else', '-f', otherKey]);
    kernel = await baseKernel(base, join(inv.root, 'qemu-kernel'));
    const t0 = Date.now();
    const built = await cli(['build', 'pi-cluster-1', 'pi-cluster-2', '--base', base, '--jobs', '2'], { cwd: inv.root, env });
    expect(built.code, built.stderr).toBe(0);
    console.log(`[e2e] built pi-cluster-1 and pi-cluster-2 in ${((Date.now() - t0) / 1000).toFixed(0)} s\n${built.stdout}`);
  }, 60 * 60_000);

  afterAll(() => inv?.cleanup());

  const bootTest = async (node: string, identity: string, timeout = '25m', extra: string[] = []) => {
    const r = await cli(['boot-test', node, '--identity', identity, '--timeout', timeout, ...extra], { cwd: inv.root, env });
    console.log(`[e2e] pi-image boot-test ${node} → exit ${r.code}\n${r.stdout}${r.stderr}`);
    return r;
  };

  it('the server provisions itself past the rename service, finds its images and manifests on its data disk, and joins', async () => {
    const r = await bootTest('pi-cluster-1', key, '25m', ['--keep']);
    const kept = keptVm(r.stdout);
    try {
      expectServerProvisioned(r);

      // the k3s stand-in on the node refuses a server-only key as an agent, as k3s agent does
      expect(kept, r.stdout).toBeDefined();
      const vm = { sshPort: kept!.sshPort };
      const wrongRole = await vmExec(
        vm,
        "printf 'server: https://10.0.0.11:6443\\ntoken-file: /etc/rancher/k3s/pi-image-token\\ndisable:\\n  - traefik\\n' >/tmp/wrong-role.yaml && sudo -n env K3S_CONFIG_FILE=/tmp/wrong-role.yaml K3S_STANDIN_ONESHOT=1 K3S_STANDIN_REPORT=/tmp/report /usr/local/bin/k3s agent",
        { user: 'pi-admin', identityFile: key, timeoutMs: 120_000 },
      );
      console.log(`[e2e] k3s agent with a server-only key → exit ${wrongRole.exitCode}: ${wrongRole.stderr.trim()}`);
      expect(wrongRole.exitCode).toBe(1);
      expect(wrongRole.stderr).toContain('flag provided but not defined: -disable');
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

  it('the agent provisions itself and keeps retrying until the server answers', async () => {
    const r = await bootTest('pi-cluster-2', key);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ok\s+pi-cluster-2\s+cloud-init\s+done, no errors or warnings/m);
    expect(r.stdout).toMatch(/^ok\s+pi-cluster-2\s+agent-token-file\s+.*absent/m);
    expect(r.stdout).toMatch(/join-unit\s+enabled and ran: phase waiting-for-server, run \d+, attempt \d+/);
    expect(r.stdout).toMatch(/^warn\s+pi-cluster-2\s+install-path\s+waiting for the server/m);
    expect(r.stdout).toMatch(/^ok\s+pi-cluster-2\s+first-boot\s+multi-user.target reached/m);
    // nothing staged yet: an agent copies its images once the server answers
    expect(r.stdout).toMatch(/^warn\s+pi-cluster-2\s+airgap-images\s+not staged yet/m);
    expect(r.stdout).toMatch(/^warn\s+pi-cluster-2\s+k3s-service\s+k3s-agent.service not installed yet/m);
  });

  it('an image that does not accept the given key is reported as failed, with the reason and the console log', async () => {
    // also boots a kernel given on the command line (how the workflow boots Raspberry Pi OS images)
    const r = await bootTest('pi-cluster-2', otherKey, '15m', ['--kernel', kernel.kernel, '--initrd', kernel.initrd]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^FAIL\s+pi-cluster-2\s+ssh-login\s+sshd refuses pi-admin .*does not accept this key/m);
    expect(r.stdout).toMatch(/^FAIL: pi-cluster-2/m);
    expect(r.stderr).toMatch(/console log: \S+/);
  });
});
