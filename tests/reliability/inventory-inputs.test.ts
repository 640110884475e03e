/**
 * Reliability: bad inventories, each given to `pi-image validate` (and the commands that load the
 * inventory). Every case asserts the exit code (never 70), a message naming the culprit (file and
 * field, or the path), and no stack trace. Table-driven; the counts are in docs/testing.md.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/run-cli.js';
import { REPO_ROOT, sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

type Files = Record<string, string | undefined>;

export interface InventoryCase {
  name: string;
  /** edit the sample's files (by name) */
  edit?: (f: Files) => void;
  /** change the written directory (links, modes, directories) */
  fs?: (dir: string) => void;
  /** command (default: validate) */
  argv?: string[];
  exit: number;
  /** every fragment must appear in stderr */
  culprit: (string | RegExp)[];
  /** fragments that must NOT appear (e.g. a smuggled value in the output) */
  absent?: string[];
  /** permissions do not apply to root: as root, pi-image runs as nobody (setpriv) for this case */
  needsNonRoot?: boolean;
}

const C = 'cluster.yaml';
const N4 = 'pi-cluster-4.yaml';
const N2 = 'pi-cluster-2.yaml';

function sub(f: Files, file: string, from: string | RegExp, to: string): void {
  const text = f[file];
  if (text === undefined || !(typeof from === 'string' ? text.includes(from) : from.test(text))) {
    throw new Error(`test setup: ${String(from)} not found in ${file}`);
  }
  f[file] = text.replace(from, to);
}
function rename(f: Files, from: string, to: string): void {
  f[to] = f[from];
  f[from] = undefined;
}
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGuIB3qOVWsjCA/gMZzv/hWWOpSkE5AJnttbHisIo+4x ops@pi-cluster-admin';
/** the sample's key line, whatever key it holds */
const KEY_LINE = /^ {4}- ssh-ed25519 .*$/m;
const OTHER_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAK evil@x';
const BOMB = [
  'a: &a [x, x, x, x, x, x, x, x, x, x]',
  'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]',
  'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]',
  'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]',
  'e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]',
].join('\n  ');

export const inventoryCases: InventoryCase[] = [
  // --- row 1: hostnames from file names ---
  {
    name: 'file name with upper case and underscores (Pi_Cluster_4.yaml)',
    edit: (f) => rename(f, N4, 'Pi_Cluster_4.yaml'),
    exit: 2,
    culprit: ['nodes/Pi_Cluster_4.yaml', 'is not a valid hostname', 'pi-cluster-4.yaml'],
  },
  {
    name: 'file name with a newline and a shell command',
    edit: (f) => rename(f, N4, 'pi-cluster-4\ntouch pwned.yaml'),
    exit: 2,
    culprit: ['pi-cluster-4\\ntouch pwned.yaml', 'is not a valid hostname'],
  },
  {
    name: 'file name and hostname field differ: both named',
    edit: (f) => {
      rename(f, N4, 'pi-cluster-5.yaml');
      sub(f, 'pi-cluster-5.yaml', 'role: agent', 'hostname: pi-cluster-4\nrole: agent');
    },
    exit: 2,
    culprit: ['pi-cluster-4 does not match the file name pi-cluster-5.yaml'],
  },
  {
    name: 'hostname field with upper case',
    edit: (f) => sub(f, N4, 'role: agent', 'hostname: Pi-Cluster-4\nrole: agent'),
    exit: 2,
    culprit: ['nodes/pi-cluster-4.yaml:3:11 hostname: Pi-Cluster-4', 'RFC 1123'],
  },
  {
    name: 'file name longer than 63 characters',
    edit: (f) => rename(f, N4, `${'a'.repeat(64)}.yaml`),
    exit: 2,
    culprit: ['is not a valid hostname'],
  },
  {
    name: 'backup file pi-cluster-4.old.yaml next to the node',
    edit: (f) => (f['pi-cluster-4.old.yaml'] = f[N4]),
    exit: 2,
    culprit: ['nodes/pi-cluster-4.old.yaml', 'a backup or a copy?', 'pi-cluster-4.yaml.bak'],
  },
  // --- 11a/11b: file names ---
  {
    name: 'pi-cluster-4.YAML is a node file too (duplicate with pi-cluster-4.yaml)',
    edit: (f) => (f['pi-cluster-4.YAML'] = f[N4]!.replace('10.0.0.14', '10.0.0.24').replace(':14', ':24').replace('0014', '0024')),
    exit: 2,
    culprit: ['nodes/pi-cluster-4.YAML', 'pi-cluster-4 is already used by pi-cluster-4'],
  },
  {
    name: 'cluster.yml next to cluster.yaml',
    edit: (f) => (f['cluster.yml'] = f[C]),
    exit: 2,
    culprit: ['nodes/cluster.yml', 'a second cluster file next to nodes/cluster.yaml'],
  },
  // --- row 2: sshKeys ---
  {
    name: 'sshKeys entry with an embedded second key line',
    edit: (f) => sub(f, C, KEY_LINE, `    - "${KEY}\\n${OTHER_KEY}"`),
    exit: 2,
    culprit: ['nodes/cluster.yaml', 'admin.sshKeys[0]', 'exactly one public key line'],
  },
  {
    name: 'sshKeys entry as a block scalar holding two keys',
    edit: (f) => sub(f, C, KEY_LINE, `    - |\n      ${KEY}\n      ${OTHER_KEY}`),
    exit: 2,
    culprit: ['admin.sshKeys[0]', 'exactly one public key line'],
  },
  {
    name: 'sshKeys entry with a carriage return',
    edit: (f) => sub(f, C, KEY_LINE, `    - "${KEY}\\r${OTHER_KEY}"`),
    exit: 2,
    culprit: ['admin.sshKeys[0]', 'exactly one public key line'],
  },
  {
    name: 'sshKeys entry with authorized_keys options in front',
    edit: (f) => sub(f, C, KEY_LINE, `    - 'command="/bin/sh" ${KEY}'`),
    exit: 2,
    culprit: ['admin.sshKeys[0]', 'unknown key type'],
  },
  // --- row 11a: control characters and metacharacters in strings that reach scripts and YAML ---
  {
    name: 'taint key with shell metacharacters',
    edit: (f) => sub(f, N4, '  - dedicated=storage:PreferNoSchedule', '  - "$(reboot)=x:NoSchedule"'),
    exit: 2,
    culprit: ['nodes/pi-cluster-4.yaml', 'taints[0]', 'is not a valid taint key'],
  },
  {
    name: 'taint key with a backtick (object form)',
    edit: (f) => sub(f, N4, '  - dedicated=storage:PreferNoSchedule', '  - {key: "`id`", value: x, effect: NoSchedule}'),
    exit: 2,
    culprit: ['taints[0].key', 'is not a valid taint key'],
  },
  {
    name: 'taint value with a semicolon',
    edit: (f) => sub(f, N4, 'dedicated=storage:', 'dedicated=a;b:'),
    exit: 2,
    culprit: ['taints[0]'],
  },
  {
    name: 'search domain with a newline',
    edit: (f) => sub(f, C, '  interface: eth0', '  interface: eth0\n  searchDomains: ["lan\\nnameserver 6.6.6.6"]'),
    exit: 2,
    culprit: ['network.searchDomains[0]', 'contains a newline'],
  },
  {
    name: 'search domain with a space',
    edit: (f) => sub(f, C, '  interface: eth0', '  interface: eth0\n  searchDomains: ["lan example"]'),
    exit: 2,
    culprit: ['network.searchDomains[0]', 'is not a DNS domain'],
  },
  {
    name: 'ntp server with a newline',
    edit: (f) => sub(f, C, 'keyboard: gb', 'keyboard: gb\nntp: ["pool.ntp.org\\nruncmd: [reboot]"]'),
    exit: 2,
    culprit: ['ntp[0]', 'contains a newline'],
  },
  {
    name: 'ntp server with shell characters',
    edit: (f) => sub(f, C, 'keyboard: gb', 'keyboard: gb\nntp: ["$(reboot)"]'),
    exit: 2,
    culprit: ['ntp[0]', 'is not an NTP server'],
  },
  {
    name: 'Wi-Fi SSID with a newline',
    edit: (f) => (f[C] += '\nwifi:\n  ssid: "lab\\npassword: x"\n  country: DE\n'),
    exit: 2,
    culprit: ['wifi.ssid', 'contains a newline'],
  },
  {
    name: 'Wi-Fi SSID with a NUL byte',
    edit: (f) => (f[C] += '\nwifi:\n  ssid: "lab\\0x"\n  country: DE\n'),
    exit: 2,
    culprit: ['wifi.ssid', 'contains a NUL byte'],
  },
  {
    name: 'Wi-Fi SSID longer than 32 bytes',
    edit: (f) => (f[C] += `\nwifi:\n  ssid: "${'ä'.repeat(17)}"\n  country: DE\n`),
    exit: 2,
    culprit: ['wifi.ssid', 'longer than 32 bytes'],
  },
  {
    name: 'label value with a newline',
    edit: (f) => sub(f, N4, 'pi-image.io/rack: shelf-b', 'pi-image.io/rack: "shelf\\nb"'),
    exit: 2,
    culprit: ['labels.pi-image.io/rack', 'contains a newline'],
  },
  {
    name: 'k3s option value with a newline (free-form k3s map)',
    edit: (f) => (f[N4] += 'k3s:\n  kubelet-arg: ["max-pods=50\\nevil: true"]\n'),
    exit: 2,
    culprit: ['nodes/pi-cluster-4.yaml', 'k3s.kubelet-arg', 'contains a newline'],
  },
  {
    name: 'k3s option name that is not a flag name',
    edit: (f) => (f[N4] += 'k3s:\n  "--disable": traefik\n'),
    exit: 2,
    culprit: ['k3s', 'is not a k3s option name'],
  },
  {
    name: 'dataDisk.device with a newline',
    edit: (f) => (f[N4] += 'dataDisk:\n  device: "/dev/sda1\\nExecStartPre=/bin/sh"\n'),
    exit: 2,
    culprit: ['dataDisk.device', 'contains a newline'],
  },
  {
    name: 'dataDisk.device LABEL= (the hint names a /dev path)',
    edit: (f) => (f[N4] += 'dataDisk:\n  device: LABEL=rancher\n'),
    exit: 2,
    culprit: ['dataDisk.device', '/dev/disk/by-label/rancher'],
    absent: ['LABEL=rancher,', 'or LABEL='],
  },
  {
    name: 'dataDisk.mountPoint with a space',
    edit: (f) => (f[N4] += 'dataDisk:\n  device: /dev/sda1\n  mountPoint: "/var/lib/my rancher"\n'),
    exit: 2,
    culprit: ['dataDisk.mountPoint', 'without spaces'],
  },
  {
    name: 'airgapDir with a newline',
    edit: (f) => sub(f, C, '  version: v1.33.5+k3s1', '  version: v1.33.5+k3s1\n  airgapDir: "air\\ngap"'),
    exit: 2,
    culprit: ['k3s.airgapDir', 'contains a newline'],
  },
  {
    name: 'admin group with a newline',
    edit: (f) => sub(f, C, '  user: pi-admin', '  user: pi-admin\n  groups: ["docker\\nroot"]'),
    exit: 2,
    culprit: ['admin.groups[0]'],
  },
  // --- 11a: addresses and names ---
  {
    name: 'broadcast MAC ff:ff:ff:ff:ff:ff',
    edit: (f) => sub(f, N4, 'mac: dc:a6:32:00:00:14', 'mac: ff:ff:ff:ff:ff:ff'),
    exit: 2,
    culprit: ['nodes/pi-cluster-4.yaml:7:6 mac', 'broadcast address'],
  },
  {
    name: 'multicast MAC 01:00:5e:00:00:14',
    edit: (f) => sub(f, N4, 'mac: dc:a6:32:00:00:14', 'mac: 01:00:5e:00:00:14'),
    exit: 2,
    culprit: ['mac', 'multicast address'],
  },
  {
    name: 'timezone Europe/Nowhere',
    edit: (f) => sub(f, C, 'timezone: Europe/Berlin', 'timezone: Europe/Nowhere'),
    exit: 2,
    culprit: ['nodes/cluster.yaml', 'timezone: Europe/Nowhere', 'IANA'],
  },
  {
    name: 'timezone in the wrong case',
    edit: (f) => sub(f, C, 'timezone: Europe/Berlin', 'timezone: Europe/BERLIN'),
    exit: 2,
    culprit: ['timezone', 'spelled Europe/Berlin'],
  },
  // --- row 11b: clearer messages ---
  {
    name: 'serial 00000014 read as a number: quoting hint',
    edit: (f) => sub(f, N4, 'serial: 4e1c0014', 'serial: 00000014'),
    exit: 2,
    culprit: ['serial', 'put it in quotes', 'serial: "00000014"'],
  },
  {
    name: 'ip: 12 gets an IP message',
    edit: (f) => sub(f, N4, 'ip: 10.0.0.14', 'ip: 12'),
    exit: 2,
    culprit: ['ip', 'IPv4 address such as 10.0.0.14, or "dhcp"'],
    absent: ['must be one of'],
  },
  {
    name: 'ip with a trailing newline smuggled in quotes',
    edit: (f) => sub(f, N4, 'ip: 10.0.0.14', 'ip: "10.0.0.14\\n"'),
    exit: 2,
    culprit: ['ip', 'IPv4'],
  },
  // --- row 4: validate refuses what render refuses ---
  {
    name: 'k3s token in a node file',
    edit: (f) => (f[N4] += 'k3s:\n  token: K10abc::server:def\n'),
    exit: 2,
    culprit: ['nodes/pi-cluster-4.yaml', 'k3s.token', 'secrets store'],
  },
  {
    name: 'k3s server in role defaults',
    edit: (f) => sub(f, C, '      disable: [servicelb]', '      disable: [servicelb]\n      server: https://evil:6443'),
    exit: 2,
    culprit: ['nodes/cluster.yaml', 'defaults.server.k3s.server', 'k3s.endpoint'],
  },
  {
    name: 'k3s node-name in a node file',
    edit: (f) => (f[N2] += 'k3s:\n  node-name: other\n'),
    exit: 2,
    culprit: ['nodes/pi-cluster-2.yaml', 'k3s.node-name'],
  },
  // --- row 3: reading faults ---
  {
    name: 'symlink loop named like a node file',
    fs: (dir) => symlinkSync('pi-cluster-9.yaml', join(dir, 'pi-cluster-9.yaml')),
    exit: 2,
    culprit: ['nodes/pi-cluster-9.yaml', 'loops'],
  },
  {
    name: 'dangling symlink',
    fs: (dir) => symlinkSync('/nonexistent/pi-cluster-9.yaml', join(dir, 'pi-cluster-9.yaml')),
    exit: 2,
    culprit: ['nodes/pi-cluster-9.yaml', 'does not exist'],
  },
  {
    name: 'directory named x.yaml',
    fs: (dir) => mkdirSync(join(dir, 'x.yaml')),
    exit: 2,
    culprit: ['nodes/x.yaml', 'is a directory'],
  },
  {
    name: 'unreadable node file',
    fs: (dir) => chmodSync(join(dir, N4), 0o000),
    exit: 4,
    culprit: ['nodes/pi-cluster-4.yaml', 'permission denied'],
    needsNonRoot: true,
  },
  {
    name: 'oversize node file (2 MiB)',
    fs: (dir) => writeFileSync(join(dir, N4), `# ${'x'.repeat(2 * 1024 * 1024)}\n`),
    exit: 2,
    culprit: ['nodes/pi-cluster-4.yaml', 'at most 1048576 bytes'],
  },
  {
    name: 'YAML alias bomb in a node file',
    edit: (f) => (f[N4] += `labels2:\n  ${BOMB}\n`),
    exit: 2,
    culprit: ['nodes/pi-cluster-4.yaml', 'too many aliases'],
  },
  {
    name: 'YAML alias bomb inside the free-form k3s map',
    edit: (f) => (f[N4] += `k3s:\n  ${BOMB}\n`),
    exit: 2,
    culprit: ['nodes/pi-cluster-4.yaml', 'too many aliases'],
  },
  {
    name: 'inventory directory is a file',
    fs: (dir) => {
      rmSync(dir, { recursive: true });
      writeFileSync(dir, 'not a directory\n');
    },
    exit: 2,
    culprit: ['inventory nodes is not a directory'],
  },
  {
    name: 'inventory directory is a symlink loop',
    fs: (dir) => {
      rmSync(dir, { recursive: true });
      symlinkSync('nodes', dir);
    },
    exit: 2,
    culprit: ['nodes', 'loops'],
  },
  {
    name: 'cluster.yaml is a dangling symlink',
    fs: (dir) => {
      rmSync(join(dir, C));
      symlinkSync('/nonexistent/cluster.yaml', join(dir, C));
    },
    exit: 2,
    culprit: ['nodes/cluster.yaml', 'does not exist'],
  },
  // --- the same faults through the commands that load the inventory ---
  {
    name: 'render with a symlink loop in the inventory',
    fs: (dir) => symlinkSync('loop.yaml', join(dir, 'loop.yaml')),
    argv: ['render', '--all', '--out', 'out'],
    exit: 2,
    culprit: ['nodes/loop.yaml', 'loops'],
  },
  {
    name: 'build with an alias bomb in the k3s map',
    edit: (f) => (f[N4] += `k3s:\n  ${BOMB}\n`),
    argv: ['build', 'pi-cluster-4', '--build-dir', 'out'],
    exit: 2,
    culprit: ['nodes/pi-cluster-4.yaml', 'too many aliases'],
  },
  {
    name: 'render with a k3s token in the inventory',
    edit: (f) => (f[N4] += 'k3s:\n  token: abc\n'),
    argv: ['render', '--all', '--out', 'out'],
    exit: 2,
    culprit: ['nodes/pi-cluster-4.yaml', 'k3s.token'],
  },
  {
    name: 'netboot with a backup node file in the inventory',
    edit: (f) => (f['pi-cluster-4.old.yaml'] = f[N4]),
    argv: ['netboot', '--all', '--root', 'tftp'],
    exit: 2,
    culprit: ['nodes/pi-cluster-4.old.yaml'],
  },
];

const isRoot = process.getuid?.() === 0;
const TSX = pathToFileURL(join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')).href;

/** Runs the CLI as the unprivileged user nobody (as root, file permissions would not apply). */
function asNobody(root: string, argv: string[]): { code: number; stdout: string; stderr: string } {
  chmodSync(root, 0o755);
  chmodSync(join(root, 'nodes'), 0o755);
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', TSX, join(REPO_ROOT, 'src/cli.ts'), ...argv], {
    cwd: root,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: root, TMPDIR: tmpdir() },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

describe('reliability: bad inventories', () => {
  for (const c of inventoryCases) {
    it(c.name, async () => {
      const files: Files = sampleFiles();
      c.edit?.(files);
      const inv = writeInventory(files);
      cleanups.push(() => {
        try {
          chmodSync(join(inv.dir, N4), 0o644);
        } catch {
          /* gone */
        }
        inv.cleanup();
      });
      c.fs?.(inv.dir);
      const env = { PATH: process.env.PATH, HOME: join(inv.root, 'home'), XDG_CONFIG_HOME: join(inv.root, 'xdg'), PI_IMAGE_CACHE: join(inv.root, 'cache') };
      const r = c.needsNonRoot && isRoot ? asNobody(inv.root, c.argv ?? ['validate']) : await cli(c.argv ?? ['validate'], { cwd: inv.root, env });
      expect(r.code, r.stderr).toBe(c.exit);
      expect(r.code).not.toBe(70);
      for (const frag of c.culprit) {
        if (typeof frag === 'string') expect(r.stderr).toContain(frag);
        else expect(r.stderr).toMatch(frag);
      }
      for (const frag of c.absent ?? []) expect(r.stderr).not.toContain(frag);
      expect(r.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m); // no stack trace
      expect(r.stderr).not.toContain('internal error');
    });
  }
});
