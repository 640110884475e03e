/** boot-test's judgement of a probed node: realistic probe output in, named checks out. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type BootExpectations, evaluateBoot, joinSettled, parseProbe, probeScript } from '../../src/core/boottest.js';
import { NODE_PATHS } from '../../src/core/render/paths.js';
import { renderNodeFiles } from '../../src/core/render/node.js';
import { loadTemplates } from '../../src/adapters/templates.js';
import { BUILD_YEAR, FAKE_SECRETS, fixtureInventory } from '../helpers/render-fixture.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

async function expectationsFor(hostname: string, airgap = false): Promise<BootExpectations> {
  const inv = fixtureInventory();
  const [set] = renderNodeFiles(inv, FAKE_SECRETS, await loadTemplates(), { buildYear: BUILD_YEAR, only: [hostname] });
  const node = inv.nodes.find((n) => n.hostname === hostname)!;
  const file = (p: string) => set!.files.find((f) => f.target === 'build' && f.path === p)?.contents;
  const secretFiles: Record<string, string | null> = {};
  for (const p of [NODE_PATHS.tokenFile, NODE_PATHS.agentTokenFile, NODE_PATHS.nodePassword]) {
    const c = file(p);
    secretFiles[p] = c === undefined ? null : sha(c);
  }
  return {
    hostname,
    role: node.role,
    adminUser: inv.cluster.admin.user,
    sshKeys: inv.cluster.admin.sshKeys,
    instanceId: set!.instanceId,
    k3sConfigYaml: file(NODE_PATHS.k3sConfig)!,
    secretFiles,
    airgap,
  };
}

/** What a healthy node prints for the probe (shaped like the real commands' output). */
function healthyOutput(exp: BootExpectations, overrides: Record<string, string> = {}): string {
  const files = Object.entries(exp.secretFiles)
    .map(([p, h]) => (h === null ? `${p} absent` : `${p} 600 root ${h}`))
    .join('\n');
  const sections: Record<string, string> = {
    hostname: exp.hostname,
    groups: `${exp.adminUser} adm dialout cdrom audio users sudo video plugdev`,
    'authorized-keys': exp.sshKeys.join('\n'),
    passwd: `${exp.adminUser} L 11/26/2026 0 99999 7 -1`,
    sshd: 'permitrootlogin without-password\npasswordauthentication no\nkbdinteractiveauthentication no',
    'cloud-init': JSON.stringify({ status: 'done', extended_status: 'done', errors: [], recoverable_errors: {} }),
    cmdline: `console=ttyAMA0 root=/dev/vda2 rootwait net.ifnames=0 cgroup_enable=memory ds=nocloud;i=${exp.instanceId}`,
    'k3s-config': exp.k3sConfigYaml,
    files,
    unit: 'UnitFileState=enabled\nActiveState=activating\nSubState=start\nResult=success\nNRestarts=0\nExecMainStatus=0\nk3s-binary=' + (exp.airgap ? 'present' : 'absent'),
    status: JSON.stringify({ node: exp.hostname, phase: exp.role === 'agent' ? 'waiting-for-server' : 'installing', run: 1, attempts: 3 }),
    journal:
      exp.role === 'agent'
        ? 'phase: waiting-for-server\nattempt 3: https://10.0.0.11:6443 does not answer yet'
        : exp.airgap
          ? 'phase: installing\nk3s installed (air-gapped)'
          : 'phase: installing\nattempt 3: downloading the k3s installer from https://get.k3s.io failed (curl exit 6)',
    ...overrides,
  };
  return Object.entries(sections).map(([k, v]) => `@@${k}\n${v}`).join('\n') + '\n@@end\n';
}

describe('boot-test checks', () => {
  it('the probe script prints every section and never cats a token file', async () => {
    const exp = await expectationsFor('pi-cluster-4');
    const script = probeScript(exp);
    for (const s of ['hostname', 'cloud-init', 'k3s-config', 'files', 'unit', 'status', 'journal']) expect(script).toContain(`@@${s}`);
    expect(script).not.toMatch(/cat .*pi-image-token/);
    expect(script).not.toMatch(/cat .*node\/password/);
  });

  for (const [host, role] of [
    ['pi-cluster-1', 'server'],
    ['pi-cluster-4', 'agent'],
  ] as const) {
    it(`a healthy ${role} passes every check`, async () => {
      const exp = await expectationsFor(host);
      const checks = evaluateBoot(exp, parseProbe(healthyOutput(exp)));
      const failing = checks.filter((c) => c.status === 'fail');
      expect(failing).toEqual([]);
      expect(checks.map((c) => c.name)).toEqual(
        expect.arrayContaining(['hostname', 'admin-user', 'password-login', 'cloud-init', 'kernel-cmdline', 'k3s-config', 'token-file', 'node-password', 'join-unit', 'install-path']),
      );
      if (role === 'agent') expect(checks.find((c) => c.name === 'agent-token-file')?.message).toContain('absent');
    });
  }

  it('an air-gapped agent still waiting for its server is a warning, not a failure', async () => {
    const exp = await expectationsFor('pi-cluster-4', true);
    const c = evaluateBoot(exp, parseProbe(healthyOutput(exp))).find((x) => x.name === 'install-path');
    expect(c?.status).toBe('warn');
    expect(c?.message).toMatch(/waiting for the server \(attempt 3\)/);
  });

  it('names the failing cloud-init module from the per-stage errors', async () => {
    const exp = await expectationsFor('pi-cluster-4');
    const status = {
      status: 'error',
      extended_status: 'error - done',
      errors: [],
      recoverable_errors: {},
      'modules-config': { errors: ["('keyboard', CalledProcessError('Unexpected error'))"], recoverable_errors: { WARNING: ['Running module keyboard failed'] } },
    };
    const c = evaluateBoot(exp, parseProbe(healthyOutput(exp, { 'cloud-init': JSON.stringify(status) }))).find((x) => x.name === 'cloud-init');
    expect(c?.status).toBe('fail');
    expect(c?.message).toContain("status error - done: modules-config: ('keyboard'");
    expect(c?.message).toContain('modules-config WARNING: Running module keyboard failed');
  });

  it('the air-gap branch passes only when the baked binary was used', async () => {
    const exp = await expectationsFor('pi-cluster-1', true);
    expect(evaluateBoot(exp, parseProbe(healthyOutput(exp))).find((c) => c.name === 'install-path')?.status).toBe('pass');
    const noBinary = healthyOutput(exp, { unit: 'UnitFileState=enabled\nk3s-binary=absent' });
    expect(evaluateBoot(exp, parseProbe(noBinary)).find((c) => c.name === 'install-path')?.status).toBe('fail');
  });

  const failures: [string, string, Record<string, string> | ((e: BootExpectations) => Record<string, string>), RegExp][] = [
    ['wrong hostname', 'hostname', { hostname: 'raspberrypi' }, /hostname is raspberrypi, want pi-cluster-4/],
    ['missing SSH key', 'admin-user', { 'authorized-keys': 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOtherKeyOtherKeyOtherKeyOtherKey00 x' }, /inventory key\(s\) missing/],
    ['password login allowed', 'password-login', { sshd: 'passwordauthentication yes' }, /PasswordAuthentication yes/],
    ['cloud-init error', 'cloud-init', { 'cloud-init': JSON.stringify({ status: 'error', extended_status: 'error', errors: ['module locale failed'] }) }, /status error: module locale failed/],
    ['cloud-init warnings', 'cloud-init', { 'cloud-init': JSON.stringify({ status: 'done', errors: [], recoverable_errors: { WARNING: ['ssh key type unknown'] } }) }, /done with problems: WARNING: ssh key type unknown/],
    ['cmdline without ds token', 'kernel-cmdline', { cmdline: 'console=ttyAMA0 root=/dev/vda2 cgroup_enable=memory' }, /missing ds=nocloud;i=/],
    ['k3s config differs', 'k3s-config', (e) => ({ 'k3s-config': e.k3sConfigYaml.replace('node-ip: 10.0.0.14', 'node-ip: 10.0.0.99') }), /differs from the rendered config in node-ip/],
    ['token file world-readable', 'token-file', (e) => ({ files: `${NODE_PATHS.tokenFile} 644 root ${e.secretFiles[NODE_PATHS.tokenFile]}\n${NODE_PATHS.agentTokenFile} absent\n${NODE_PATHS.nodePassword} 600 root ${e.secretFiles[NODE_PATHS.nodePassword]}` }), /mode 644 \(want 600\)/],
    ['agent holding the agent-token file', 'agent-token-file', (e) => ({ files: `${NODE_PATHS.tokenFile} 600 root ${e.secretFiles[NODE_PATHS.tokenFile]}\n${NODE_PATHS.agentTokenFile} 600 root abc\n${NODE_PATHS.nodePassword} 600 root ${e.secretFiles[NODE_PATHS.nodePassword]}` }), /present on an agent/],
    ['wrong node password', 'node-password', (e) => ({ files: `${NODE_PATHS.tokenFile} 600 root ${e.secretFiles[NODE_PATHS.tokenFile]}\n${NODE_PATHS.agentTokenFile} absent\n${NODE_PATHS.nodePassword} 600 root 0000` }), /contents differ/],
    ['join unit never ran', 'join-unit', { status: 'cat: /var/lib/pi-image/status.json: No such file or directory', journal: '' }, /enabled but never ran/],
    ['join unit not installed', 'join-unit', { unit: 'UnitFileState=\nActiveState=inactive' }, /is not installed/],
  ];
  for (const [name, checkName, overrides, message] of failures) {
    it(`fails on ${name}`, async () => {
      const exp = await expectationsFor('pi-cluster-4');
      const o = typeof overrides === 'function' ? overrides(exp) : overrides;
      const c = evaluateBoot(exp, parseProbe(healthyOutput(exp, o))).find((x) => x.name === checkName);
      expect(c?.status).toBe('fail');
      expect(c?.message).toMatch(message);
    });
  }
});

describe('boot-test: where k3s looks for what the image carries', () => {
  const k3s = { dataDir: '/var/lib/rancher/k3s', dataMount: '/var/lib/rancher', service: 'k3s' as const, airgapImages: ['k3s-airgap-images-arm64.tar.zst'], manifests: ['00-namespaces.yaml', '10-rbac.yaml'] };
  const joinedServer = (over: Record<string, string> = {}) => ({
    status: JSON.stringify({ node: 'pi-cluster-1', phase: 'joined', run: 1, attempts: 1 }),
    'first-boot': 'multi-user.target=active\nuserconfig=disabled',
    'k3s-data': 'mounted=yes\ndata-dir=/var/lib/rancher/k3s\nimages=k3s-airgap-images-arm64.tar.zst \nmanifests=00-namespaces.yaml 10-rbac.yaml ',
    'k3s-service': 'LoadState=loaded\nUnitFileState=enabled\nActiveState=active\nSubState=running\nType=notify\njournal=k3s stand-in: server running: data-dir /var/lib/rancher/k3s, manifests: 00-namespaces.yaml 10-rbac.yaml',
    ...over,
  });
  const judge = async (over: Record<string, string>, host = 'pi-cluster-1', ke: BootExpectations['k3s'] = k3s) => {
    const exp = { ...(await expectationsFor(host, true)), k3s: ke };
    return evaluateBoot(exp, parseProbe(healthyOutput(exp, over)));
  };
  const byName = (cs: { name: string }[], n: string) => cs.find((c) => c.name === n) as { status: string; message: string } | undefined;

  it('the probe looks at the data dir and the unit install.sh made', async () => {
    const script = probeScript({ ...(await expectationsFor('pi-cluster-1')), k3s });
    expect(script).toContain("d='/var/lib/rancher/k3s'");
    expect(script).toContain("mountpoint -q '/var/lib/rancher'");
    expect(script).toContain('systemctl show k3s.service');
    expect(script).toContain('systemctl is-enabled userconfig.service');
  });

  it('a joined server with a data disk passes: images and manifests where k3s looks, unit active', async () => {
    const cs = await judge(joinedServer());
    for (const n of ['first-boot', 'data-disk', 'airgap-images', 'manifests', 'k3s-service']) expect(byName(cs, n)?.status, n).toBe('pass');
    expect(byName(cs, 'k3s-service')?.message).toContain('last log: k3s stand-in: server running');
  });

  it('fails when the manifests stayed hidden, the disk is not mounted, the unit is dead or the rename service holds boot', async () => {
    expect(byName(await judge(joinedServer({ 'k3s-data': 'mounted=yes\nimages=k3s-airgap-images-arm64.tar.zst\nmanifests=' })), 'manifests')).toMatchObject({ status: 'fail', message: expect.stringContaining('missing from /var/lib/rancher/k3s/server/manifests: 00-namespaces.yaml') });
    expect(byName(await judge(joinedServer({ 'k3s-data': 'mounted=no\nimages=\nmanifests=' })), 'data-disk')?.status).toBe('fail');
    expect(byName(await judge(joinedServer({ 'k3s-service': 'LoadState=loaded\nUnitFileState=enabled\nActiveState=failed\nSubState=failed\njournal=k3s stand-in: Incorrect Usage: flag provided but not defined: -disable' })), 'k3s-service')).toMatchObject({
      status: 'fail',
      message: expect.stringContaining('flag provided but not defined'),
    });
    expect(byName(await judge(joinedServer({ 'first-boot': 'multi-user.target=activating\nuserconfig=enabled' })), 'first-boot')?.status).toBe('fail');
  });

  it('an agent still waiting for its server gets warnings, not failures', async () => {
    const cs = await judge(
      { 'first-boot': 'multi-user.target=active\nuserconfig=', 'k3s-data': 'images=\nmanifests=', 'k3s-service': 'LoadState=not-found' },
      'pi-cluster-4',
      { dataDir: '/var/lib/rancher/k3s', service: 'k3s-agent', airgapImages: ['k3s-airgap-images-arm64.tar.zst'], manifests: [] },
    );
    expect(byName(cs, 'airgap-images')?.status).toBe('warn');
    expect(byName(cs, 'k3s-service')?.status).toBe('warn');
    expect(byName(cs, 'manifests')).toBeUndefined();
    expect(cs.filter((c) => c.status === 'fail')).toEqual([]);
  });
});

describe('joinSettled: when boot-test probes', () => {
  it('joined and waiting-for-server are where a lone VM ends; every other phase is still on its way', () => {
    expect(joinSettled('{"phase":"joined","run":1}')).toEqual({ settled: true, phase: 'joined' });
    expect(joinSettled('{"phase":"waiting-for-server","attempts":3}')).toEqual({ settled: true, phase: 'waiting-for-server' });
    for (const phase of ['starting', 'waiting-for-data-disk', 'installing', 'starting-k3s', 'waiting-for-registration', 'removing-seed-secrets']) {
      expect(joinSettled(JSON.stringify({ phase }))).toEqual({ settled: false, phase });
    }
    expect(joinSettled('')).toEqual({ settled: false });
    expect(joinSettled('cat: permission denied')).toEqual({ settled: false });
    expect(joinSettled('{"phase":7}')).toEqual({ settled: false });
  });
});
