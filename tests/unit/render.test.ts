import { createHmac } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadTemplates } from '../../src/adapters/templates.js';
import { InputError } from '../../src/core/errors.js';
import type { Inventory, NodeFileSet, RenderedFile, Secrets } from '../../src/core/model.js';
import { k3sDataDir, nodePassword } from '../../src/core/render/k3s.js';
import { renderNode, renderNodeFiles } from '../../src/core/render/node.js';
import { NODE_PATHS } from '../../src/core/render/paths.js';
import { shq } from '../../src/core/render/shell.js';
import type { Templates } from '../../src/core/render/templates.js';
import { toYaml } from '../../src/core/render/yaml.js';
import { BUILD_YEAR, FAKE_SECRETS, FAKE_WIFI_PSK, fixtureInventory, fixtureWithWifi } from '../helpers/render-fixture.js';

let templates: Templates;
beforeAll(async () => {
  templates = await loadTemplates();
});

function renderAll(inv: Inventory = fixtureInventory(), secrets: Secrets = FAKE_SECRETS): NodeFileSet[] {
  return renderNodeFiles(inv, secrets, templates, { buildYear: BUILD_YEAR });
}

function file(set: NodeFileSet, target: RenderedFile['target'], path: string): RenderedFile {
  const f = set.files.find((x) => x.target === target && x.path === path);
  if (!f) throw new Error(`${set.node} has no ${target}:${path}`);
  return f;
}

function byNode(sets: NodeFileSet[], hostname: string): NodeFileSet {
  const s = sets.find((x) => x.node === hostname);
  if (!s) throw new Error(`no ${hostname}`);
  return s;
}

type Doc = Record<string, unknown> & {
  user: Record<string, unknown>;
  write_files: { path: string; content: string; permissions: string; owner: string }[];
  runcmd: string[][];
  mounts?: string[][];
};

function userData(set: NodeFileSet): Doc {
  return parse(file(set, 'boot', 'user-data').contents, { version: '1.1' }) as Doc;
}

function k3sConfigOf(set: NodeFileSet): Record<string, unknown> {
  return parse(file(set, 'build', NODE_PATHS.k3sConfig).contents) as Record<string, unknown>;
}

describe('determinism and instance ids', () => {
  it('rendering twice gives identical bytes', () => {
    const a = renderAll();
    const b = renderAll();
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
  });

  it('meta-data carries the instance id and the hostname', () => {
    for (const s of renderAll()) {
      expect(parse(file(s, 'boot', 'meta-data').contents)).toEqual({ 'instance-id': s.instanceId, 'local-hostname': s.node });
      expect(s.instanceId).toMatch(new RegExp(`^${s.node}-[0-9a-f]{16}$`));
    }
  });

  it('changing one node changes only that node’s instance id', () => {
    const before = renderAll();
    const inv = fixtureInventory();
    inv.nodes[2]!.labels['pi-image.io/rack'] = 'shelf-c';
    const after = renderAll(inv);
    for (const s of after) {
      const old = byNode(before, s.node);
      if (s.node === 'pi-cluster-3') expect(s.instanceId).not.toBe(old.instanceId);
      else expect(s.instanceId).toBe(old.instanceId);
    }
  });

  it('a different build year or secret is a new instance (the rendered config changed)', () => {
    const base = byNode(renderAll(), 'pi-cluster-2').instanceId;
    const year = renderNodeFiles(fixtureInventory(), FAKE_SECRETS, templates, { buildYear: BUILD_YEAR + 1 });
    expect(byNode(year, 'pi-cluster-2').instanceId).not.toBe(base);
    const rotated = renderAll(fixtureInventory(), { ...FAKE_SECRETS, agentToken: 'FAKE-ROTATED-AGENT-TOKEN' });
    expect(byNode(rotated, 'pi-cluster-2').instanceId).not.toBe(base);
  });

  it('renderNode of one node equals that node in renderNodeFiles', () => {
    const one = renderNode(fixtureInventory(), 'pi-cluster-4', FAKE_SECRETS, templates, { buildYear: BUILD_YEAR });
    expect(one).toEqual(byNode(renderAll(), 'pi-cluster-4'));
  });
});

describe('tokens', () => {
  const everything = (s: NodeFileSet) => s.files.map((f) => f.contents).join('\n');

  it('servers carry the cluster token and the agent token; agents only the agent token', () => {
    for (const s of renderAll()) {
      const all = everything(s);
      const role = fixtureInventory().nodes.find((n) => n.hostname === s.node)!.role;
      expect(all).toContain(FAKE_SECRETS.agentToken);
      if (role === 'server') {
        expect(file(s, 'build', NODE_PATHS.tokenFile).contents).toBe(`${FAKE_SECRETS.clusterToken}\n`);
        expect(file(s, 'build', NODE_PATHS.agentTokenFile).contents).toBe(`${FAKE_SECRETS.agentToken}\n`);
        expect(k3sConfigOf(s)).toMatchObject({ 'token-file': NODE_PATHS.tokenFile, 'agent-token-file': NODE_PATHS.agentTokenFile });
      } else {
        expect(all).not.toContain(FAKE_SECRETS.clusterToken);
        expect(file(s, 'build', NODE_PATHS.tokenFile).contents).toBe(`${FAKE_SECRETS.agentToken}\n`);
        expect(s.files.some((f) => f.path === NODE_PATHS.agentTokenFile)).toBe(false);
        expect(k3sConfigOf(s)).not.toHaveProperty('agent-token-file');
      }
    }
  });

  it('secrets appear only in files flagged secret, never in config.yaml, the script, the unit or runcmd', () => {
    const secretValues = [FAKE_SECRETS.clusterToken, FAKE_SECRETS.agentToken, FAKE_SECRETS.nodePasswordSeed];
    for (const s of renderAll()) {
      const pw = nodePassword(FAKE_SECRETS.nodePasswordSeed, s.node);
      for (const f of s.files) {
        const leaks = [...secretValues, pw].filter((v) => f.contents.includes(v));
        if (!f.secret) expect(leaks, `${s.node} ${f.target}:${f.path}`).toEqual([]);
      }
      expect(JSON.stringify(userData(s).runcmd)).not.toMatch(/FAKE-|[0-9a-f]{64}/);
      expect(everything(s)).not.toContain(FAKE_SECRETS.nodePasswordSeed);
    }
  });

  it('token and password files are 0600 in write_files', () => {
    for (const s of renderAll()) {
      const wf = userData(s).write_files;
      for (const p of [NODE_PATHS.tokenFile, NODE_PATHS.nodePassword, NODE_PATHS.k3sConfig]) {
        expect(wf.find((w) => w.path === p)).toMatchObject({ permissions: '0600', owner: 'root:root' });
      }
      expect(wf.find((w) => w.path === NODE_PATHS.joinScript)?.permissions).toBe('0755');
    }
  });

  it('missing secrets are an InputError naming what is missing, without values', () => {
    expect(() => renderAll(fixtureInventory(), { ...FAKE_SECRETS, clusterToken: '' })).toThrow(InputError);
    expect(() => renderAll(fixtureInventory(), { ...FAKE_SECRETS, clusterToken: '' })).toThrow(/cluster token/);
    try {
      renderAll(fixtureInventory(), { ...FAKE_SECRETS, agentToken: 'has space' });
      expect.unreachable();
    } catch (e) {
      expect((e as Error).message).not.toContain('has space');
    }
  });
});

describe('node password', () => {
  it('is hex HMAC-SHA256(seed, hostname), stable and different per node', () => {
    const sets = renderAll();
    const pws = sets.map((s) => file(s, 'build', NODE_PATHS.nodePassword).contents.trim());
    for (const [i, s] of sets.entries()) {
      expect(pws[i]).toBe(createHmac('sha256', FAKE_SECRETS.nodePasswordSeed).update(s.node).digest('hex'));
    }
    expect(new Set(pws).size).toBe(sets.length);
  });
});

describe('k3s config.yaml', () => {
  it('cluster-init only on the first server; every other node points at the server URL', () => {
    for (const s of renderAll()) {
      const c = k3sConfigOf(s);
      if (s.node === 'pi-cluster-1') {
        expect(c['cluster-init']).toBe(true);
        expect(c).not.toHaveProperty('server');
      } else {
        expect(c).not.toHaveProperty('cluster-init');
        expect(c.server).toBe('https://10.0.0.11:6443');
      }
      expect(c['node-name']).toBe(s.node);
    }
  });

  it('labels, taints, node-ip, tls-san, kubeconfig mode, data-dir and extras', () => {
    const sets = renderAll();
    const inv = fixtureInventory();
    const server = k3sConfigOf(byNode(sets, 'pi-cluster-1'));
    expect(server['tls-san']).toEqual(['10.0.0.11']);
    expect(server['write-kubeconfig-mode']).toBe('0600');
    expect(server.disable).toEqual(['servicelb']);
    expect(server['node-label']).toEqual(['pi-image.io/rack=shelf-a', 'pi-image.io/extra=yes']);
    const c3 = k3sConfigOf(byNode(sets, 'pi-cluster-3'));
    expect(c3).not.toHaveProperty('node-ip');
    expect(c3).not.toHaveProperty('tls-san');
    expect(c3['node-taint']).toEqual(['dedicated=storage:PreferNoSchedule']);
    expect(c3['data-dir']).toBe('/srv/data/k3s');
    const c4 = k3sConfigOf(byNode(sets, 'pi-cluster-4'));
    expect(c4['node-ip']).toBe('10.0.0.14');
    expect(c4['node-taint']).toEqual(['gpu:NoSchedule']);
    expect(c4).not.toHaveProperty('data-dir');
    expect(k3sDataDir(inv.nodes[3]!)).toBe('/var/lib/rancher/k3s');
    const c2 = k3sConfigOf(byNode(sets, 'pi-cluster-2'));
    expect(c2['node-label']).toEqual(Object.entries(inv.nodes[1]!.labels).map(([k, v]) => `${k}=${v}`));
  });

  it('tls-san lists the endpoint host and every static server address', () => {
    const inv = fixtureInventory();
    inv.cluster.k3s.serverUrl = 'https://k3s.lan:6443';
    inv.nodes.splice(1, 0, { ...inv.nodes[0]!, hostname: 'pi-cluster-0', clusterInit: false, address: { mode: 'static', address: '10.0.0.10', prefix: 24 } });
    const c = k3sConfigOf(byNode(renderAll(inv), 'pi-cluster-0'));
    expect(c['tls-san']).toEqual(['k3s.lan', '10.0.0.11', '10.0.0.10']);
    expect(c.server).toBe('https://k3s.lan:6443');
    expect(c['agent-token-file']).toBe(NODE_PATHS.agentTokenFile);
  });

  it('honours data-dir from the k3s extras end to end: config.yaml and the join script wait there', () => {
    const inv = fixtureInventory();
    inv.nodes[1]!.k3sExtra = { 'data-dir': '/var/lib/rancher/k3s-data/' };
    expect(k3sDataDir(inv.nodes[1]!)).toBe('/var/lib/rancher/k3s-data');
    const set = byNode(renderAll(inv), 'pi-cluster-2');
    expect(k3sConfigOf(set)['data-dir']).toBe('/var/lib/rancher/k3s-data');
    const join = file(set, 'build', NODE_PATHS.joinScript).contents;
    expect(join).toContain(`readonly DATA_DIR=${shq('/var/lib/rancher/k3s-data')}`);
    expect(join).toContain('local kubeconfig="$DATA_DIR/agent/kubelet.kubeconfig"');
    // the baked air-gap images and manifests are copied into the data dir before k3s starts
    expect(join).toContain('copy_staged "$AIRGAP_STAGE" "$DATA_DIR/agent/images" 0644');
    expect(join).toContain('copy_staged "$MANIFESTS_STAGE" "$DATA_DIR/server/manifests" 0600');
    expect(join.indexOf('retry "copying the baked')).toBeLessThan(join.indexOf('retry "installing k3s"'));
    expect(join.indexOf('retry "waiting for the data disk"')).toBeLessThan(join.indexOf('retry "copying the baked'));
  });

  it('bakes the cloud-init-local drop-in that waits for the seed mount into the rootfs', () => {
    const set = renderAll()[0]!;
    const dropIn = file(set, 'root', NODE_PATHS.seedMountDropIn);
    expect(dropIn.contents).toMatch(/^\[Unit\]\nRequiresMountsFor=\/boot\/firmware$/m);
    expect(dropIn.mode).toBe(0o644);
  });

  it('redacts the seed and the copies cloud-init keeps of it once joined', () => {
    const join = file(renderAll()[0]!, 'build', NODE_PATHS.joinScript).contents;
    expect(join).toContain('readonly CLOUD_DIR=/var/lib/cloud');
    for (const f of ['"$CLOUD_DIR"/instances/*/user-data.txt', '"$CLOUD_DIR"/instances/*/user-data.txt.i', '"$CLOUD_DIR"/instances/*/cloud-config.txt']) {
      expect(join).toContain(f);
    }
    expect(join).toContain('redact_file "$SEED_DIR/user-data"');
  });
});

describe('network-config', () => {
  type Net = { network: { version: number; ethernets?: Record<string, Record<string, unknown>>; wifis?: Record<string, Record<string, unknown>> } };
  const net = (s: NodeFileSet) => parse(file(s, 'boot', 'network-config').contents) as Net;

  it('static nodes: address/prefix, default route, nameservers; DHCP nodes: dhcp4; eth0 not optional', () => {
    const sets = renderAll();
    const eth2 = net(byNode(sets, 'pi-cluster-2')).network.ethernets!.eth0!;
    expect(eth2).toEqual({
      dhcp4: false,
      addresses: ['10.0.0.12/24'],
      routes: [{ to: 'default', via: '10.0.0.1' }],
      nameservers: { addresses: ['10.0.0.1', '9.9.9.9'], search: ['lan'] },
      optional: false,
    });
    const eth3 = net(byNode(sets, 'pi-cluster-3')).network.ethernets!.eth0!;
    expect(eth3.dhcp4).toBe(true);
    expect(eth3).not.toHaveProperty('addresses');
    expect(eth3.optional).toBe(false);
    for (const s of sets) {
      expect(net(s).network.version).toBe(2);
      expect(net(s).network).not.toHaveProperty('wifis');
      expect(file(s, 'boot', 'network-config').secret).toBe(false);
    }
  });

  it('Wi-Fi: wlan0 with the PSK only when the cluster has Wi-Fi; then network-config is secret', () => {
    const { inventory, secrets } = fixtureWithWifi();
    for (const s of renderAll(inventory, secrets)) {
      const n = net(s).network;
      expect(n.wifis!.wlan0).toMatchObject({
        dhcp4: true,
        optional: true,
        'regulatory-domain': 'DE',
        'access-points': { 'pi lab': { password: FAKE_WIFI_PSK } },
      });
      expect(n.ethernets!.eth0!.optional).toBe(false);
      expect(file(s, 'boot', 'network-config').secret).toBe(true);
      expect(s.files.filter((f) => f.contents.includes(FAKE_WIFI_PSK)).map((f) => f.path)).toEqual(['network-config']);
    }
    for (const s of renderAll(fixtureInventory(), { ...FAKE_SECRETS, wifiPsk: FAKE_WIFI_PSK })) {
      expect(s.files.some((f) => f.contents.includes(FAKE_WIFI_PSK))).toBe(false);
    }
  });

  it('Wi-Fi without a PSK in the secrets is an InputError', () => {
    const { inventory } = fixtureWithWifi();
    expect(() => renderAll(inventory, FAKE_SECRETS)).toThrow(/Wi-Fi PSK/);
  });
});

describe('user-data', () => {
  it('starts with #cloud-config and sets up host, admin user, ssh and the join unit', () => {
    const inv = fixtureInventory();
    for (const s of renderAll()) {
      const text = file(s, 'boot', 'user-data').contents;
      expect(text.split('\n')[0]).toBe('#cloud-config');
      const d = userData(s);
      expect(d).toMatchObject({
        hostname: s.node,
        manage_etc_hosts: true,
        timezone: inv.cluster.timezone,
        locale: inv.cluster.locale,
        keyboard: { layout: inv.cluster.keyboardLayout },
        ntp: { enabled: true, servers: inv.cluster.ntpServers },
        ssh_pwauth: false,
        disable_root: true,
      });
      expect(d.user).toMatchObject({
        name: inv.cluster.admin.user,
        sudo: 'ALL=(ALL) NOPASSWD:ALL',
        shell: '/bin/bash',
        lock_passwd: true,
        ssh_authorized_keys: inv.cluster.admin.sshKeys,
      });
      expect(d.user.groups).toEqual(expect.arrayContaining(['sudo', 'adm', 'gpio', 'docker']));
      expect(d).not.toHaveProperty('users');
      const paths = d.write_files.map((w) => w.path);
      expect(paths).toEqual(expect.arrayContaining([NODE_PATHS.k3sConfig, NODE_PATHS.tokenFile, NODE_PATHS.nodePassword, NODE_PATHS.joinScript, NODE_PATHS.joinUnit]));
      // every build-target file is exactly what write_files carries
      for (const f of s.files.filter((x) => x.target === 'build')) {
        expect(d.write_files.find((w) => w.path === f.path)?.content).toBe(f.contents);
      }
      const runcmd = d.runcmd.map((c) => c.join(' '));
      expect(runcmd).toContain('systemctl enable --now --no-block ssh.service');
      expect(runcmd).toContain('systemctl enable --now --no-block pi-image-join.service');
    }
  });

  it('mounts the data disk (nofail) and requires it for the join unit and k3s', () => {
    const sets = renderAll();
    const d4 = userData(byNode(sets, 'pi-cluster-4'));
    expect(d4.mounts).toEqual([['/dev/disk/by-label/rancher', '/var/lib/rancher', 'ext4', expect.stringContaining('nofail'), '0', '2']]);
    expect(file(byNode(sets, 'pi-cluster-4'), 'build', NODE_PATHS.joinUnit).contents).toContain('RequiresMountsFor=/var/lib/rancher');
    expect(
      file(byNode(sets, 'pi-cluster-4'), 'build', '/etc/systemd/system/k3s-agent.service.d/pi-image-data-disk.conf').contents,
    ).toContain('RequiresMountsFor=/var/lib/rancher');
    expect(userData(byNode(sets, 'pi-cluster-2'))).not.toHaveProperty('mounts');
    expect(file(byNode(sets, 'pi-cluster-2'), 'build', NODE_PATHS.joinUnit).contents).not.toContain('RequiresMountsFor');
  });

  it('an unknown node is an InputError listing the known ones', () => {
    expect(() => renderNode(fixtureInventory(), 'pi-cluster-9', FAKE_SECRETS, templates, { buildYear: BUILD_YEAR })).toThrow(
      /pi-cluster-9 is not in the inventory/,
    );
  });
});

describe('join script and unit', () => {
  it('the script bakes the node’s settings in as single-quoted words', () => {
    const sets = renderAll();
    const script = (n: string) => file(byNode(sets, n), 'build', NODE_PATHS.joinScript).contents;
    expect(script('pi-cluster-1')).toContain(`readonly SERVER_URL=''`);
    expect(script('pi-cluster-1')).toContain(`readonly K3S_SERVICE='k3s'`);
    expect(script('pi-cluster-2')).toContain(`readonly SERVER_URL='https://10.0.0.11:6443'`);
    expect(script('pi-cluster-2')).toContain(`readonly K3S_SERVICE='k3s-agent'`);
    expect(script('pi-cluster-2')).toContain(`readonly BUILD_YEAR='${BUILD_YEAR}'`);
    expect(script('pi-cluster-2')).toContain(`readonly K3S_SHA256='${fixtureInventory().cluster.k3s.binarySha256}'`);
    expect(script('pi-cluster-3')).toContain(`readonly DATA_DIR='/srv/data/k3s'`);
    for (const s of sets) expect(script(s.node).startsWith('#!/bin/bash\n')).toBe(true);
  });

  it('the unit is a retried oneshot after network, time sync and cloud-final, skipped once joined', () => {
    const unit = file(renderAll()[1]!, 'build', NODE_PATHS.joinUnit).contents;
    for (const line of [
      'Type=oneshot',
      'RemainAfterExit=yes',
      'After=network-online.target time-sync.target cloud-final.service',
      'Wants=network-online.target',
      'Restart=on-failure',
      `ConditionPathExists=!${NODE_PATHS.statusDir}/joined`,
      `ExecStart=${NODE_PATHS.joinScript}`,
    ]) {
      expect(unit.split('\n')).toContain(line);
    }
    expect(unit).toMatch(/^RestartSec=\d+$/m);
  });
});

describe('helpers', () => {
  it('shq single-quotes, escaping embedded quotes', () => {
    expect(shq('plain')).toBe(`'plain'`);
    expect(shq(`it's`)).toBe(`'it'\\''s'`);
    expect(shq('$(rm -rf /) `x` "y"')).toBe(`'$(rm -rf /) \`x\` "y"'`);
    expect(shq(undefined)).toBe(`''`);
    expect(shq(2025)).toBe(`'2025'`);
  });

  it('toYaml quotes YAML 1.1 look-alikes and never folds long lines', () => {
    const value = { a: 'no', b: 'on', c: '0600', d: '1.10', e: `ssh-ed25519 ${'A'.repeat(300)} x@y` };
    const text = toYaml(value);
    expect(parse(text, { version: '1.1' })).toEqual(value);
    expect(text.split('\n').some((l) => l.includes('A'.repeat(300)))).toBe(true);
  });
});
