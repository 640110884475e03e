/**
 * Invalid inventories: each case breaks the sample in one way and asserts that `pi-image validate`
 * exits with code 2 and names the file, line, column and field of the problem.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/run-cli.js';
import { sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

type Files = Record<string, string | undefined>;
interface Case {
  name: string;
  edit: (f: Files) => void;
  /** every line expected in stderr: "file:line:col field: message-fragment" */
  expect: string[];
}

const sub = (f: Files, file: string, from: string | RegExp, to: string) => {
  const text = f[file];
  if (text === undefined || !(typeof from === 'string' ? text.includes(from) : from.test(text))) {
    throw new Error(`test setup: ${String(from)} not found in ${file}`);
  }
  f[file] = text.replace(from, to);
};
const C = 'cluster.yaml';
const N1 = 'pi-cluster-1.yaml';
const N2 = 'pi-cluster-2.yaml';
const N3 = 'pi-cluster-3.yaml';
const N4 = 'pi-cluster-4.yaml';

const cases: Case[] = [
  // --- stage 1: YAML syntax ---
  {
    name: 'unclosed flow sequence',
    edit: (f) => sub(f, C, 'dns: [10.0.0.1, 9.9.9.9]', 'dns: [10.0.0.1, 9.9.9.9'),
    expect: ['nodes/cluster.yaml:16:', 'YAML syntax'],
  },
  {
    name: 'duplicate key',
    edit: (f) => sub(f, N2, 'boot: sd\n', 'boot: sd\nrole: server\n'),
    expect: ['nodes/pi-cluster-2.yaml:6:1 YAML syntax: Map keys must be unique'],
  },
  { name: 'empty node file', edit: (f) => (f[N3] = '# nothing yet\n'), expect: ['nodes/pi-cluster-3.yaml:1:1 the file is empty'] },
  {
    name: 'top level is a list',
    edit: (f) => (f[N3] = '- apiVersion: pi-image/v1\n'),
    expect: ['nodes/pi-cluster-3.yaml:1:1 expected a mapping'],
  },
  // --- stage 2: schema ---
  { name: 'missing cluster.yaml', edit: (f) => (f[C] = undefined), expect: ['nodes/cluster.yaml:1:1 missing: every inventory needs a cluster.yaml'] },
  {
    name: 'wrong apiVersion',
    edit: (f) => sub(f, N4, 'apiVersion: pi-image/v1', 'apiVersion: v1'),
    expect: ['nodes/pi-cluster-4.yaml:1:13 apiVersion: v1: must be "pi-image/v1"'],
  },
  {
    name: 'cluster kind in a node file',
    edit: (f) => sub(f, N4, 'kind: Node', 'kind: Cluster'),
    expect: ['nodes/pi-cluster-4.yaml:2:7 kind: Cluster: must be "Node" in a node file'],
  },
  {
    name: 'unknown field with a suggestion',
    edit: (f) => sub(f, C, 'timezone: Europe/Berlin', 'timzone: Europe/Berlin'),
    expect: ['nodes/cluster.yaml:23:1 timzone: unknown field; did you mean "timezone"?'],
  },
  {
    name: 'empty section',
    edit: (f) => sub(f, C, /k3s:\n {2}version: .*\n/, 'k3s:\n'),
    expect: ['nodes/cluster.yaml:7:1 k3s: is empty; expected a mapping'],
  },
  {
    name: 'missing required field',
    edit: (f) => sub(f, N3, 'role: agent\n', ''),
    expect: ['nodes/pi-cluster-3.yaml:1:1 role: is required'],
  },
  { name: 'bad role', edit: (f) => sub(f, N4, 'role: agent', 'role: worker'), expect: ['nodes/pi-cluster-4.yaml:3:7 role: worker: must be "server" or "agent"'] },
  {
    name: 'ip not IPv4',
    edit: (f) => sub(f, N4, 'ip: 10.0.0.14', 'ip: 10.0.0.300'),
    expect: ['nodes/pi-cluster-4.yaml:6:5 ip: 10.0.0.300 is not an IPv4 address'],
  },
  {
    name: 'bad CIDR',
    edit: (f) => sub(f, C, 'cidr: 10.0.0.0/24', 'cidr: 10.0.0.0/33'),
    expect: ['nodes/cluster.yaml:13:9 network.cidr: 10.0.0.0/33 is not an IPv4 CIDR'],
  },
  { name: 'bad MAC', edit: (f) => sub(f, N2, 'mac: dc:a6:32:00:00:12', 'mac: dc:a6:32:00:12'), expect: ['nodes/pi-cluster-2.yaml:7:6 mac: dc:a6:32:00:12 is not a MAC address'] },
  { name: 'bad serial', edit: (f) => sub(f, N2, 'serial: 4e1c0012', 'serial: xyz'), expect: ['nodes/pi-cluster-2.yaml:8:9 serial: xyz is not a Pi serial'] },
  {
    name: 'hostname not RFC 1123',
    edit: (f) => sub(f, N2, 'kind: Node\n', 'kind: Node\nhostname: Pi_Cluster_2\n'),
    expect: ['nodes/pi-cluster-2.yaml:3:11 hostname: Pi_Cluster_2 is not a valid hostname (RFC 1123'],
  },
  {
    name: 'bad k3s version',
    edit: (f) => sub(f, C, 'version: v1.33.5+k3s1', 'version: 1.33.5'),
    expect: ['nodes/cluster.yaml:8:12 k3s.version: 1.33.5 is not a k3s version (expected e.g. v1.33.5+k3s1)'],
  },
  {
    name: 'bad taint effect',
    edit: (f) => sub(f, N4, 'dedicated=storage:PreferNoSchedule', 'dedicated=storage:Never'),
    expect: ['nodes/pi-cluster-4.yaml:12:5 taints[0]: dedicated=storage:Never is not a taint'],
  },
  {
    name: 'admin user root',
    edit: (f) => sub(f, C, 'user: pi-admin', 'user: root'),
    expect: ['nodes/cluster.yaml:19:9 admin.user: root: must not be root'],
  },
  {
    name: 'no SSH keys',
    edit: (f) => sub(f, C, / {2}sshKeys:\n {4}- .*\n/, '  sshKeys: []\n'),
    expect: ['nodes/cluster.yaml:20:12 admin.sshKeys: needs at least one SSH public key'],
  },
  // --- stage 3: rules ---
  {
    name: 'hostname does not match the file name',
    edit: (f) => sub(f, N2, 'kind: Node\n', 'kind: Node\nhostname: pi-cluster-9\n'),
    expect: ['nodes/pi-cluster-2.yaml:3:11 hostname: pi-cluster-9 does not match the file name pi-cluster-2.yaml'],
  },
  {
    name: 'duplicate hostname',
    edit: (f) => (f['pi-cluster-5.yaml'] = f[N4]!.replace('kind: Node\n', 'kind: Node\nhostname: pi-cluster-4\n').replace('10.0.0.14', '10.0.0.15').replace('00:14', '00:15').replace('4e1c0014', '4e1c0015')),
    expect: ['nodes/pi-cluster-5.yaml:3:11 hostname: pi-cluster-4 is already used by pi-cluster-4'],
  },
  {
    name: 'duplicate IP',
    edit: (f) => sub(f, N3, 'ip: 10.0.0.13', 'ip: 10.0.0.12'),
    expect: ['nodes/pi-cluster-3.yaml:6:5 ip: 10.0.0.12 is already used by pi-cluster-2 (nodes/pi-cluster-2.yaml)'],
  },
  {
    name: 'duplicate MAC (any case)',
    edit: (f) => sub(f, N3, 'mac: dc:a6:32:00:00:13', 'mac: DC-A6-32-00-00-12'),
    expect: ['nodes/pi-cluster-3.yaml:7:6 mac: dc:a6:32:00:00:12 is already used by pi-cluster-2'],
  },
  {
    name: 'duplicate serial',
    edit: (f) => sub(f, N3, 'serial: 4e1c0013', 'serial: 4E1C0012'),
    expect: ['nodes/pi-cluster-3.yaml:8:9 serial: 4e1c0012 is already used by pi-cluster-2'],
  },
  {
    name: 'IP outside the CIDR',
    edit: (f) => sub(f, N4, 'ip: 10.0.0.14', 'ip: 10.0.1.14'),
    expect: ['nodes/pi-cluster-4.yaml:6:5 ip: 10.0.1.14 is outside network.cidr 10.0.0.0/24'],
  },
  {
    name: 'IP is the broadcast address',
    edit: (f) => sub(f, N4, 'ip: 10.0.0.14', 'ip: 10.0.0.255'),
    expect: ['nodes/pi-cluster-4.yaml:6:5 ip: 10.0.0.255 is the broadcast address of 10.0.0.0/24'],
  },
  { name: 'IP is the gateway', edit: (f) => sub(f, N4, 'ip: 10.0.0.14', 'ip: 10.0.0.1'), expect: ['nodes/pi-cluster-4.yaml:6:5 ip: 10.0.0.1 is the network gateway'] },
  {
    name: 'gateway outside the CIDR',
    edit: (f) => sub(f, C, 'gateway: 10.0.0.1', 'gateway: 192.168.1.1'),
    expect: ['nodes/cluster.yaml:14:12 network.gateway: 192.168.1.1 is outside network.cidr 10.0.0.0/24'],
  },
  {
    name: 'neither k3s version nor channel',
    edit: (f) => sub(f, C, / {2}version: .*\n/, '  port: 6443\n'),
    expect: ['nodes/cluster.yaml:8:3 k3s: needs a pinned version'],
  },
  {
    name: 'no server',
    edit: (f) => sub(f, N1, 'role: server\nclusterInit: true          # first server: starts embedded etcd\n', 'role: agent\n'),
    expect: ['nodes/cluster.yaml:3:1 the inventory has no server'],
  },
  {
    name: 'even number of servers',
    edit: (f) => sub(f, N2, 'role: agent', 'role: server'),
    expect: ['nodes/cluster.yaml:3:1 2 servers (pi-cluster-1, pi-cluster-2): embedded etcd needs an odd number of servers'],
  },
  {
    name: 'three servers, none with clusterInit',
    edit: (f) => {
      sub(f, N1, 'clusterInit: true', 'clusterInit: false');
      sub(f, N2, 'role: agent', 'role: server');
      sub(f, N3, 'role: agent', 'role: server');
    },
    expect: ['nodes/cluster.yaml:3:1 several servers but none has clusterInit: true'],
  },
  {
    name: 'two clusterInit servers',
    edit: (f) => {
      sub(f, N2, 'role: agent', 'role: server\nclusterInit: true');
      sub(f, N3, 'role: agent', 'role: server');
    },
    expect: ['nodes/pi-cluster-2.yaml:4:14 clusterInit: only one server may have clusterInit: true; pi-cluster-1 (nodes/pi-cluster-1.yaml) already does'],
  },
  {
    name: 'clusterInit on an agent',
    edit: (f) => sub(f, N3, 'role: agent', 'role: agent\nclusterInit: true'),
    expect: ['nodes/pi-cluster-3.yaml:4:14 clusterInit: only a server can initialise the cluster'],
  },
  {
    name: 'netboot without a data disk',
    edit: (f) => sub(f, N4, 'boot: sd', 'boot: netboot'),
    expect: ['nodes/pi-cluster-4.yaml:5:7 boot: netboot needs a local data disk for /var/lib/rancher'],
  },
  {
    name: 'netboot without a serial',
    edit: (f) => {
      sub(f, N4, 'boot: sd', 'boot: netboot\ndataDisk:\n  device: /dev/sda1');
      sub(f, N4, /serial: .*\n/, '');
    },
    expect: ['nodes/pi-cluster-4.yaml:5:7 boot: netboot needs the Pi serial'],
  },
  {
    name: 'SSH key that does not parse',
    edit: (f) => sub(f, C, /- ssh-ed25519 AAAA\S+/, '- ssh-ed25519 AAAAnotakey'),
    expect: ['nodes/cluster.yaml:21:7 admin.sshKeys[0]: is not an SSH public key'],
  },
  {
    name: 'private key pasted instead of the public key',
    edit: (f) => sub(f, C, /- ssh-ed25519 .*\n/, '- "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA"\n'),
    expect: ['nodes/cluster.yaml:21:7 admin.sshKeys[0]: is not an SSH public key: this looks like a private key'],
  },
  {
    name: 'reserved node-role label',
    edit: (f) => sub(f, N3, 'labels:\n', 'labels:\n  node-role.kubernetes.io/worker: "true"\n'),
    expect: ['nodes/pi-cluster-3.yaml:10:3 labels.node-role.kubernetes.io/worker: node-role.kubernetes.io/worker: k3s cannot set node-role labels'],
  },
  {
    name: 'base image not in the catalogue',
    edit: (f) => sub(f, C, 'image: raspios-lite-arm64-trixie', 'image: raspios-bookworm'),
    expect: ['nodes/cluster.yaml:27:8 image: raspios-bookworm is not in the base-image catalogue'],
  },
  {
    name: 'endpoint is an agent',
    edit: (f) => sub(f, C, '# endpoint: 10.0.0.10 ', 'endpoint: 10.0.0.13  '),
    expect: ['nodes/cluster.yaml:9:13 k3s.endpoint: 10.0.0.13 is the address of agent pi-cluster-3'],
  },
  // --- rules render used to check on its own (now only here: a validated inventory renders) ---
  {
    name: 'a data disk given as LABEL= (a device path under /dev is required)',
    edit: (f) => sub(f, N3, 'boot: sd\n', 'boot: sd\ndataDisk:\n  device: LABEL=rancher\n'),
    expect: ['nodes/pi-cluster-3.yaml:7:11 dataDisk.device: LABEL=rancher: must be a device path under /dev'],
  },
  {
    name: 'a Wi-Fi interface without wifi',
    edit: (f) => sub(f, C, 'interface: eth0', 'interface: wlan0'),
    expect: ['network.interface: wlan0 is a Wi-Fi interface but no wifi is configured'],
  },
  {
    name: 'a static node on a DHCP network without a gateway',
    edit: (f) => sub(f, C, '  gateway: 10.0.0.1\n', '  dhcp: true\n'),
    expect: ['ip: 10.0.0.12 is static but network.gateway is not set'],
  },
  {
    name: 'node without an address on a static network',
    edit: (f) => sub(f, N3, /ip: .*\n/, ''),
    expect: ['nodes/pi-cluster-3.yaml:1:1 ip is required'],
  },
  // --- k3s extras, checked per role against the flags k3s defines (src/core/k3s/flags.ts) ---
  {
    name: 'server-only k3s key on an agent',
    edit: (f) => (f[N2] = `${f[N2]!}k3s:\n  disable: [traefik]\n`),
    expect: ['nodes/pi-cluster-2.yaml:12:3 k3s.disable: "disable" is a k3s server flag, not an agent flag (pi-cluster-2 is an agent): k3s agent exits with "flag provided but not defined"'],
  },
  {
    name: 'typo in an agent k3s key, with a suggestion',
    edit: (f) => (f[N3] = `${f[N3]!}k3s:\n  node-lable: [zone=a]\n`),
    expect: ['nodes/pi-cluster-3.yaml:12:3 k3s.node-lable: "node-lable" is not a k3s agent flag (pi-cluster-3 is an agent)', 'did you mean "node-label"?'],
  },
  {
    name: 'inventory-owned key in k3s extras',
    edit: (f) => (f[N4] = `${f[N4]!}k3s:\n  node-ip: 10.0.0.99\n`),
    expect: ['nodes/pi-cluster-4.yaml:14:3 k3s.node-ip: "node-ip" is set by pi-image from the inventory and cannot be overridden'],
  },
  {
    name: 'token in the server defaults',
    edit: (f) => sub(f, C, '      disable: [servicelb]\n', '      disable: [servicelb]\n      token: hunter2\n'),
    expect: ['nodes/cluster.yaml:33:7 defaults.server.k3s.token: "token" is set by pi-image from the inventory'],
  },
  {
    name: 'server flag in the agent defaults',
    edit: (f) => sub(f, C, '  agent:\n', '  agent:\n    k3s:\n      kube-apiserver-arg: [a=b]\n'),
    expect: ['nodes/cluster.yaml:35:7 defaults.agent.k3s.kube-apiserver-arg: "kube-apiserver-arg" is a k3s server flag, not an agent flag (defaults.agent applies to agents)'],
  },
  {
    name: 'k3s data-dir off the node\'s data disk',
    edit: (f) => (f[N3] = `${f[N3]!}dataDisk:\n  device: /dev/disk/by-label/rancher\nk3s:\n  data-dir: /srv/k3s\n`),
    expect: ['nodes/pi-cluster-3.yaml:14:13 k3s.data-dir: /srv/k3s is not on the data disk mounted at /var/lib/rancher'],
  },
  {
    name: 'no node files',
    edit: (f) => {
      for (const k of Object.keys(f)) if (k !== C) f[k] = undefined;
    },
    expect: ['nodes/cluster.yaml:1:1 the inventory has no nodes'],
  },
];

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

describe('pi-image validate rejects invalid inventories', () => {
  it('has at least 25 distinct cases', () => {
    expect(new Set(cases.map((c) => c.name)).size).toBeGreaterThanOrEqual(25);
  });

  it('accepts the sample inventory', async () => {
    const inv = writeInventory(sampleFiles());
    cleanups.push(inv.cleanup);
    const r = await cli(['validate'], { cwd: inv.root });
    // its only finding is the placeholder SSH key (tests/unit/inventory-placeholder-key.test.ts)
    expect(r.stderr).toBe(
      'warning: nodes/cluster.yaml:21:7 admin.sshKeys[0]: is a placeholder, not your key (its key data spells PLACEHOLDER): nobody can log in to images baked with it; put your public key here (e.g. the line of ~/.ssh/id_ed25519.pub)\n',
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('valid: cluster pi-cluster, 4 nodes (1 server, 3 agents), 1 warning');
  });

  for (const c of cases) {
    it(c.name, async () => {
      const files: Files = sampleFiles();
      c.edit(files);
      const inv = writeInventory(files);
      cleanups.push(inv.cleanup);
      const r = await cli(['validate'], { cwd: inv.root });
      expect(r.code, r.stderr).toBe(2);
      for (const line of c.expect) expect(r.stderr).toContain(line);
      // every error line is located: file:line:col
      for (const l of r.stderr.split('\n').filter((x) => x.startsWith('error: '))) {
        expect(l).toMatch(/^error: nodes\/[\w.-]+\.yaml:\d+:\d+ /);
      }
    });
  }

  it('reports problems in several files at once', async () => {
    const files = sampleFiles();
    files[N4] = files[N4]!.replace('ip: 10.0.0.14', 'ip: 10.0.0.300');
    files[C] = files[C]!.replace('timezone:', 'timzone:');
    files[N3] = files[N3]!.replace('ip: 10.0.0.13', 'ip: 10.0.0.12');
    const inv = writeInventory(files);
    cleanups.push(inv.cleanup);
    const r = await cli(['validate', '-o', 'json'], { cwd: inv.root });
    expect(r.code).toBe(2);
    const report = JSON.parse(r.stdout) as { valid: boolean; errors: { file: string; field: string }[] };
    expect(report.valid).toBe(false);
    expect(report.errors.map((e) => `${e.file} ${e.field}`).sort()).toEqual([
      'nodes/cluster.yaml timzone',
      'nodes/pi-cluster-3.yaml ip',
      'nodes/pi-cluster-4.yaml ip',
    ]);
  });

  it('keeps warnings apart and makes them fatal with --strict', async () => {
    const files = sampleFiles();
    files[C] = files[C]!.replace(/ {2}version: .*\n/, '  channel: stable\n');
    const inv = writeInventory(files);
    cleanups.push(inv.cleanup);
    const lax = await cli(['validate'], { cwd: inv.root });
    expect(lax.code).toBe(0);
    expect(lax.stderr).toContain('warning: nodes/cluster.yaml:8:12 k3s.channel: a channel makes rebuilt nodes install whatever is current');
    const strict = await cli(['validate', '--strict'], { cwd: inv.root });
    expect(strict.code).toBe(2);
    expect(strict.stderr).toContain('--strict: warnings are fatal');
  });

  it('warns about an unknown k3s key on a server (k3s server skips it) with a suggestion', async () => {
    const files = sampleFiles();
    files[N1] = `${files[N1]!}k3s:\n  tls-sna: [pi.example.com]\n  data-dir: /var/lib/rancher/k3s-data\n`;
    const inv = writeInventory(files);
    cleanups.push(inv.cleanup);
    const r = await cli(['validate'], { cwd: inv.root });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('warning: nodes/pi-cluster-1.yaml:13:3 k3s.tls-sna: "tls-sna" is not a k3s server flag (pi-cluster-1 is a server): k3s server logs "Unknown flag" and ignores it; did you mean "tls-san"?');
    expect(r.stderr).not.toContain('data-dir');
  });

  it('names a missing inventory directory', async () => {
    const inv = writeInventory({});
    cleanups.push(inv.cleanup);
    const r = await cli(['validate', '-i', 'does-not-exist'], { cwd: inv.root });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('inventory directory does-not-exist does not exist');
  });
});
