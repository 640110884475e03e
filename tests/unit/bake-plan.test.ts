/** The pure bake plan: payload selection, air-gap completeness, the space a build needs. */
import { describe, expect, it } from 'vitest';
import { airgapPayload, buildSpaceNeeded, describePlan, MANIFESTS_DIR, planBake } from '../../src/core/bake.js';
import { InputError } from '../../src/core/errors.js';
import type { NodeFileSet } from '../../src/core/model.js';
import { fixtureInventory } from '../helpers/render-fixture.js';

const MiB = 1024 * 1024;
const set = (node: string): NodeFileSet => ({
  node,
  instanceId: `${node}-0000`,
  files: [
    { path: 'user-data', target: 'boot', mode: 0o600, contents: '#cloud-config\n', secret: true },
    { path: 'meta-data', target: 'boot', mode: 0o644, contents: 'instance-id: x\n', secret: false },
  ],
});
const manifests = [{ name: '00-namespaces.yaml', path: '/m/00-namespaces.yaml', size: 100 }];
const airgap = {
  dir: '/ag',
  files: [
    { name: 'k3s-arm64', path: '/ag/k3s-arm64', size: 70 * MiB },
    { name: 'install.sh', path: '/ag/install.sh', size: 30_000 },
    { name: 'k3s-airgap-images-arm64.tar.zst', path: '/ag/k3s-airgap-images-arm64.tar.zst', size: 150 * MiB },
  ],
};
const inputs = { basePath: '/base.img', baseName: 'base', output: '/out/x.img', compress: 'none' as const, manifests };

describe('planBake', () => {
  it('puts manifests on servers only, with the air-gap payload on every node', () => {
    const inv = fixtureInventory();
    const server = inv.nodes.find((n) => n.role === 'server')!.hostname;
    const agent = inv.nodes.find((n) => n.role === 'agent')!.hostname;
    const s = planBake(inv, set(server), { ...inputs, airgap });
    const a = planBake(inv, set(agent), { ...inputs, airgap });
    expect(s.payload.map((p) => p.dest)).toEqual(['/usr/local/bin/k3s', '/usr/local/share/pi-image/install.sh', '/var/lib/pi-image/airgap/k3s-airgap-images-arm64.tar.zst', `${MANIFESTS_DIR}/00-namespaces.yaml`]);
    // staged outside /var/lib/rancher: a data disk mounted there would hide them (the join script copies them in)
    expect(s.payload.every((p) => !p.dest.startsWith('/var/lib/rancher/'))).toBe(true);
    expect(s.edits).toEqual([]);
    expect(a.payload.map((p) => p.dest)).not.toContain(`${MANIFESTS_DIR}/00-namespaces.yaml`);
    expect(s.boot.map((b) => b.path)).toEqual(['user-data', 'meta-data', 'cmdline.txt']);
    expect(describePlan(s).join('\n')).toContain('the base itself is not modified');
  });

  it('bakes the userconf-pi guard (cancel-rename on a console system) only into a base that has userconf-pi', () => {
    const inv = fixtureInventory();
    const node = inv.nodes[0]!.hostname;
    const guarded = planBake(inv, set(node), { ...inputs, baseFacts: { userconfPi: true } });
    expect(guarded.edits).toEqual([
      { kind: 'remove', path: '/etc/systemd/system/multi-user.target.wants/userconfig.service' },
      { kind: 'symlink', path: '/etc/systemd/system/getty.target.wants/getty@tty1.service', target: '/usr/lib/systemd/system/getty@.service' },
      { kind: 'remove', path: '/etc/ssh/sshd_config.d/rename_user.conf' },
      { kind: 'remove', path: '/var/lib/userconf-pi/autologin' },
    ]);
    expect(describePlan(guarded).join('\n')).toContain('userconf-pi guard');
    expect(planBake(inv, set(node), { ...inputs, baseFacts: { userconfPi: false } }).edits).toEqual([]);
  });

  it('names the output after the compression', () => {
    const inv = fixtureInventory();
    expect(planBake(inv, set(inv.nodes[0]!.hostname), { ...inputs, compress: 'zstd' }).output).toBe('/out/x.img.zst');
    expect(planBake(inv, set(inv.nodes[0]!.hostname), { ...inputs, compress: 'xz' }).output).toBe('/out/x.img.xz');
  });

  it('refuses an incomplete air-gap directory, naming every missing file', () => {
    const inv = fixtureInventory();
    const e = (() => {
      try {
        airgapPayload(inv, { dir: '/ag', files: [airgap.files[0]!] });
      } catch (err) {
        return err as InputError;
      }
      throw new Error('expected an error');
    })();
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toContain('lacks install.sh, k3s-airgap-images-arm64.tar.zst');
  });
});

describe('buildSpaceNeeded', () => {
  const per = 1000 * MiB;
  it('counts every uncompressed image, since they all stay', () => {
    expect(buildSpaceNeeded(per, 4, 2, 'none')).toBe(4 * per + 64 * MiB);
  });
  it('counts raw images in the works plus the compressed outputs', () => {
    expect(buildSpaceNeeded(per, 4, 1, 'zstd')).toBe(2 * per + 2 * per + 64 * MiB);
    expect(buildSpaceNeeded(per, 1, 2, 'xz')).toBe(per + per / 2 + 64 * MiB);
  });
});
