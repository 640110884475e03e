/**
 * Network boot plan (pure): which nodes get a TFTP folder and an NFS root, and the text of every
 * generated file (cmdline.txt, /etc/fstab, dnsmasq snippet, /etc/exports lines, EEPROM guide).
 *
 * Raspberry Pi 4/5 bootloader with BOOT_ORDER containing 2 (network) and TFTP_PREFIX=0 asks the
 * TFTP server for `<serial>/start4.elf`, `<serial>/config.txt`, … (serial = 8 lower-case hex
 * digits). The kernel then mounts `root=/dev/nfs nfsroot=<server>:<root>/nfs/<node>,vers=3`.
 * containerd cannot keep its data on NFS, so every netboot node needs a local data disk mounted at
 * /var/lib/rancher (from the inventory's `dataDisk`).
 */
import { DATA_DISK_DEVICE_TIMEOUT } from './defaults.js';
import { InputError } from './errors.js';
import { assertKnownNodes } from './node-selection.js';
import { cidrContains, formatCidr, intToIpv4, isIpv4, parseCidr } from './inventory/net.js';
import type { DataDisk, Inventory, NodeModel } from './model.js';

export interface NetbootOptions {
  /** absolute export root: tftp/, nfs/, dnsmasq.d/, exports, EEPROM.md go below it */
  root: string;
  /** IPv4 address of the TFTP/NFS server as the Pis reach it */
  server: string;
  /** hostnames to export; undefined = every node with a serial */
  only?: readonly string[];
}

export interface NetbootNodePlan {
  node: string;
  serial: string;
  board: NodeModel['board'];
  /** who may mount the NFS root: the node's static address, or the cluster CIDR for DHCP nodes */
  client: string;
  tftpDir: string;
  nfsDir: string;
  /** `<server>:<nfsDir>` */
  nfsroot: string;
  dataDisk: DataDisk;
  /** inventory file of the node, for messages */
  source: string;
}

export interface NetbootPlan {
  root: string;
  server: string;
  nodes: NetbootNodePlan[];
  /** nodes that were not exported, with the reason (printed as messages) */
  skipped: { node: string; reason: string }[];
  files: {
    /** DIR/dnsmasq.d/pi-image.conf */
    dnsmasq: string;
    /** DIR/exports */
    exports: string;
    /** DIR/EEPROM.md */
    eeprom: string;
  };
}

function cleanRoot(root: string): string {
  if (!root.startsWith('/')) throw new InputError(`--root ${root} must be an absolute path (the NFS server exports it by absolute path)`);
  if (/[\s,"'\\]/.test(root)) {
    throw new InputError(`--root ${root} contains whitespace, a comma, a quote or a backslash`, {
      hint: 'the path goes into the kernel command line (nfsroot=…), /etc/exports and dnsmasq.conf; pick a plain path such as /srv/netboot',
    });
  }
  const r = root.replace(/\/+$/, '');
  return r === '' ? '/' : r;
}

function join(...parts: string[]): string {
  return parts.join('/').replace(/\/+/g, '/');
}

/** Decides which nodes are exported and renders the shared files. Throws InputError for inconsistent netboot nodes. */
export function planNetboot(inv: Inventory, opts: NetbootOptions): NetbootPlan {
  const root = cleanRoot(opts.root);
  if (!isIpv4(opts.server)) throw new InputError(`--server ${opts.server} is not an IPv4 address`, { hint: 'give the address the Pis reach this host on, e.g. --server 10.0.0.2' });
  assertKnownNodes(inv, opts.only ?? []);
  const wanted = opts.only === undefined ? inv.nodes : inv.nodes.filter((n) => opts.only?.includes(n.hostname));
  const cidr = inv.cluster.network.cidr === undefined ? undefined : parseCidr(inv.cluster.network.cidr);

  const problems: string[] = [];
  const incomplete = new Set<string>();
  const nodes: NetbootNodePlan[] = [];
  const skipped: { node: string; reason: string }[] = [];
  /** every netboot-capable node of the inventory: the shared files (dnsmasq, exports, EEPROM guide) list them all */
  const eligible: NetbootNodePlan[] = [];
  for (const n of inv.nodes) {
    const selected = wanted.includes(n);
    if (n.boot === 'netboot') {
      if (n.serial === undefined && selected) problems.push(`${n.source}: serial: required for boot: netboot (8 hex digits from \`cat /proc/cpuinfo\`; it names the TFTP folder)`);
      if (n.dataDisk === undefined && selected) problems.push(`${n.source}: dataDisk: required for boot: netboot (a local disk for /var/lib/rancher; containerd cannot run on NFS)`);
      if (n.serial === undefined || n.dataDisk === undefined) {
        if (selected) incomplete.add(n.hostname);
        continue;
      }
    } else if (n.serial === undefined) {
      if (selected) skipped.push({ node: n.hostname, reason: `no Pi serial in ${n.source} (boot: ${n.boot}); add \`serial:\` to netboot it` });
      continue;
    } else if (n.dataDisk === undefined) {
      if (selected) skipped.push({ node: n.hostname, reason: `boot: ${n.boot} and no dataDisk in ${n.source}; a netboot node needs a local disk for /var/lib/rancher` });
      continue;
    }
    const serial = n.serial.toLowerCase();
    let client: string;
    if (n.address.mode === 'static') client = n.address.address;
    else if (cidr !== undefined) client = formatCidr(cidr);
    else client = '*';
    const nfsDir = join(root, 'nfs', n.hostname);
    const plan: NetbootNodePlan = {
      node: n.hostname,
      serial,
      board: n.board,
      client,
      tftpDir: join(root, 'tftp', serial),
      nfsDir,
      nfsroot: `${opts.server}:${nfsDir}`,
      dataDisk: n.dataDisk,
      source: n.source,
    };
    eligible.push(plan);
    if (selected) nodes.push(plan);
  }
  if (problems.length > 0) {
    throw new InputError(`${incomplete.size} netboot node${incomplete.size === 1 ? ' is' : 's are'} incomplete`, {
      details: problems,
      hint: 'fix the node files (see docs/runbooks/netboot.md) or set `boot: sd`',
    });
  }
  if (cidr !== undefined && !cidrContains(cidr, opts.server)) {
    skipped.push({ node: '(server)', reason: `note: --server ${opts.server} is outside the cluster network ${formatCidr(cidr)}; the Pis must be able to route to it` });
  }

  const subnet = cidr === undefined ? undefined : { network: intToIpv4(cidr.network), mask: prefixToMask(cidr.prefix) };
  return {
    root,
    server: opts.server,
    nodes,
    skipped,
    files: {
      dnsmasq: dnsmasqConfig(root, opts.server, subnet, eligible),
      exports: exportsFile(eligible),
      eeprom: eepromGuide(root, opts.server, eligible),
    },
  };
}

function prefixToMask(prefix: number): string {
  return intToIpv4(prefix === 0 ? 0 : (2 ** 32 - 2 ** (32 - prefix)));
}

// ── per-node files ───────────────────────────────────────────────────────────────────────────────

/** Tokens of the SD-card command line that make no sense for an NFS root (key or key=value). */
const DROP_KEYS = new Set(['root', 'rootfstype', 'resize', 'init', 'nfsroot', 'ip', 'rw', 'ro', 'rootwait', 'fsck.repair', 'fsck.mode', 'rootdelay']);

/**
 * The node's kernel command line for NFS root: the original line without `root=PARTUUID=…`,
 * `rootfstype`, `resize`, `init=` (Pi OS's first-boot resize hook) and fsck tokens, followed by
 * `root=/dev/nfs nfsroot=<server>:<dir>,vers=3 rw ip=dhcp rootwait`. Everything else is kept in
 * order, in particular `console=`, the cgroup tokens and cloud-init's `ds=nocloud;i=…`. One line.
 */
export function netbootCmdline(original: string, node: Pick<NetbootNodePlan, 'nfsroot'>): string {
  const kept = original
    .split(/\s+/)
    .filter((t) => t !== '')
    .filter((t) => !DROP_KEYS.has(t.split('=')[0] ?? t));
  return `${[...kept, 'root=/dev/nfs', `nfsroot=${node.nfsroot},vers=3`, 'rw', 'ip=dhcp', 'rootwait'].join(' ')}\n`;
}

/**
 * /etc/fstab for an NFS root: drops the lines mounting `/`, `/boot/firmware` and `/boot` (the
 * SD card's PARTUUIDs do not exist on a netbooted Pi; the kernel mounts the NFS root), keeps
 * everything else, and mounts the node's data disk on its mount point (/var/lib/rancher).
 */
export function netbootFstab(original: string, node: Pick<NetbootNodePlan, 'node' | 'dataDisk'>): string {
  const drop = new Set(['/', '/boot', '/boot/firmware', node.dataDisk.mountPoint]);
  const lines = original.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const kept = lines.filter((l) => {
    const t = l.trim();
    if (t === '' || t.startsWith('#')) return true;
    const mp = t.split(/\s+/)[1];
    return mp === undefined || !drop.has(mp.replace(/\/+$/, '') || '/');
  });
  const d = node.dataDisk;
  return [
    ...kept,
    `# pi-image netboot (${node.node}): the root filesystem is NFS (mounted by the kernel, root=/dev/nfs);`,
    '# containerd/k3s data must be on local storage:',
    `${d.device} ${d.mountPoint} ${d.fsType} defaults,noatime,x-systemd.device-timeout=${DATA_DISK_DEVICE_TIMEOUT} 0 2`,
    '',
  ].join('\n');
}

// ── shared files ─────────────────────────────────────────────────────────────────────────────────

export function dnsmasqConfig(
  root: string,
  server: string,
  subnet: { network: string; mask: string } | undefined,
  nodes: readonly NetbootNodePlan[],
): string {
  return [
    '# pi-image netboot: proxy-DHCP + TFTP for Raspberry Pi network boot.',
    '# Drop into /etc/dnsmasq.d/ on the boot server. Proxy mode: the existing DHCP server keeps',
    '# handing out addresses; dnsmasq only adds the PXE boot information the Pi bootloader asks for.',
    subnet === undefined
      ? `# (no cluster CIDR in the inventory: adjust the network address below)\ndhcp-range=${server},proxy`
      : `dhcp-range=${subnet.network},proxy,${subnet.mask}`,
    'log-dhcp',
    'pxe-service=0,"Raspberry Pi Boot"',
    'enable-tftp',
    `tftp-root=${join(root, 'tftp')}`,
    '# (no tftp-secure: the files belong to root, the Debian dnsmasq runs as user dnsmasq)',
    ...nodes.map((n) => `# ${n.node}: serial ${n.serial} → ${n.tftpDir}/`),
    '',
  ].join('\n');
}

export function exportsFile(nodes: readonly NetbootNodePlan[]): string {
  return [
    '# pi-image netboot: NFS root filesystems (append to /etc/exports, then `exportfs -ra`)',
    ...nodes.map((n) => `${n.nfsDir} ${n.client}(rw,sync,no_subtree_check,no_root_squash)`),
    '',
  ].join('\n');
}

export function eepromGuide(root: string, server: string, nodes: readonly NetbootNodePlan[]): string {
  return `# Network boot: bootloader EEPROM settings

Each Pi fetches its boot files over TFTP from \`${join(root, 'tftp')}/<serial>/\` on ${server}, then
mounts its root filesystem over NFS. The bootloader must be told to try the network.

On each Pi (booted once from an SD card with Raspberry Pi OS):

    sudo rpi-eeprom-config --edit

and set:

    [all]
    # try SD card (1), then network (2), then loop (f): BOOT_ORDER is read right to left
    BOOT_ORDER=0xf21
    # or, with a USB disk before the network: SD (1), USB (4), network (2)
    # BOOT_ORDER=0xf241
    # ask for <serial>/start4.elf etc. (the default TFTP_PREFIX=0 uses the serial as prefix)
    TFTP_PREFIX=0
    # optional: fixed TFTP server instead of the one announced by proxy-DHCP
    # TFTP_IP=${server}

Save, then \`sudo reboot\`; \`vcgencmd bootloader_config\` shows the active settings. Remove the
SD card afterwards (or leave it blank) so the network is tried.

The serial is the last 8 hex digits of \`Serial\` in \`/proc/cpuinfo\` (or shown on the bootloader's
HDMI diagnostics screen) — pi-image uses the \`serial:\` field of each node file.

| node | serial | TFTP folder | NFS root | data disk |
|------|--------|-------------|----------|-----------|
${nodes.map((n) => `| ${n.node} | ${n.serial} | ${n.tftpDir}/ | ${n.nfsroot} | ${n.dataDisk.device} → ${n.dataDisk.mountPoint} |`).join('\n')}

Server side: copy \`dnsmasq.d/pi-image.conf\` to /etc/dnsmasq.d/ and restart dnsmasq; append
\`exports\` to /etc/exports and run \`exportfs -ra\` (package nfs-kernel-server). See
docs/runbooks/netboot.md.
`;
}
