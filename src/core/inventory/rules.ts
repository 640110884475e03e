/** Stage 3 of inventory validation: rules across fields and files. Pure. */
import { checkK3sExtras } from '../k3s/extras.js';
import type { Diagnostic } from './diagnostics.js';
import { cidrContains, formatCidr, ipv4ToInt, isIpv4, isWifiInterface, parseCidr } from './net.js';
import { checkSshPublicKey, placeholderKeyReason } from './sshkey.js';
import { printable } from './text.js';
import { fileStem } from './names.js';
import type { ParsedCluster, ParsedNode, ValidateOptions } from './validate.js';

/** Label prefixes the kubelet may not set on its own node (NodeRestriction admission). */
const RESERVED_LABEL_PREFIXES = ['node-role.kubernetes.io/', 'kubernetes.io/', 'k8s.io/', 'node-restriction.kubernetes.io/'];
const ALLOWED_KUBELET_LABELS = new Set(['kubernetes.io/hostname', 'kubernetes.io/arch', 'kubernetes.io/os']);

function reservedLabel(key: string): boolean {
  if (ALLOWED_KUBELET_LABELS.has(key)) return false;
  return RESERVED_LABEL_PREFIXES.some((p) => key.startsWith(p) || key.includes(`.${p}`));
}

/** Rules across fields and files. Node-only rules still run when cluster.yaml itself failed (`cluster` undefined). */
export function checkRules(cluster: ParsedCluster | undefined, nodes: readonly ParsedNode[], opts: ValidateOptions): Diagnostic[] {
  const out = checkNodeRules(nodes);
  if (cluster) out.push(...checkClusterRules(cluster, nodes, opts));
  return out;
}

function checkClusterRules(cluster: ParsedCluster, nodes: readonly ParsedNode[], opts: ValidateOptions): Diagnostic[] {
  const out: Diagnostic[] = [];
  const c = cluster.data;
  const cs = cluster.source;
  const net = c.network;

  // --- cluster-level rules ---
  if (!c.k3s.version && !c.k3s.channel) {
    out.push(cs.diag(['k3s'], 'needs a pinned version (e.g. version: v1.33.5+k3s1) or a channel (e.g. channel: stable)'));
  } else if (c.k3s.version && c.k3s.channel) {
    out.push(cs.diag(['k3s', 'channel'], `ignored because version ${c.k3s.version} is pinned; remove one of the two`, 'warning'));
  } else if (!c.k3s.version) {
    out.push(cs.diag(['k3s', 'channel'], 'a channel makes rebuilt nodes install whatever is current; pin k3s.version for reproducible images', 'warning'));
  }
  if (c.k3s.sha256 && !c.k3s.version) {
    out.push(cs.diag(['k3s', 'sha256'], 'a binary checksum only makes sense with a pinned k3s.version'));
  }

  const cidr = net.cidr ? parseCidr(net.cidr) : undefined;
  if (!net.dhcp) {
    if (!net.cidr) out.push(cs.diag(['network'], 'cidr is required for static addresses (e.g. cidr: 10.0.0.0/24), or set dhcp: true'));
    if (!net.gateway) out.push(cs.diag(['network'], 'gateway is required for static addresses (e.g. gateway: 10.0.0.1), or set dhcp: true'));
    if (net.dns.length === 0) out.push(cs.diag(['network'], 'no dns servers: static nodes will not resolve names (add dns: [10.0.0.1])', 'warning'));
  }
  if (isWifiInterface(net.interface) && !c.wifi) {
    out.push(cs.diag(['network', 'interface'], `${net.interface} is a Wi-Fi interface but no wifi is configured; add wifi (ssid, country) or use eth0`));
  }
  if (cidr && net.cidr && formatCidr(cidr) !== net.cidr) {
    out.push(cs.diag(['network', 'cidr'], `${net.cidr} has host bits set; the network is ${formatCidr(cidr)}`, 'warning'));
  }
  if (cidr && net.gateway && !cidrContains(cidr, net.gateway)) {
    out.push(cs.diag(['network', 'gateway'], `${net.gateway} is outside network.cidr ${net.cidr}`));
  }

  c.admin.sshKeys.forEach((key, i) => {
    const r = checkSshPublicKey(key);
    if (!r.ok) out.push(cs.diag(['admin', 'sshKeys', i], `is not an SSH public key: ${r.reason}`));
    const placeholder = r.ok ? placeholderKeyReason(key) : undefined;
    if (placeholder !== undefined) {
      out.push(
        cs.diag(['admin', 'sshKeys', i], `is a placeholder, not your key (${placeholder}): nobody can log in to images baked with it; put your public key here (e.g. the line of ~/.ssh/id_ed25519.pub)`, 'warning'),
      );
    }
  });
  const seenKeys = new Map<string, number>();
  c.admin.sshKeys.forEach((key, i) => {
    const data = key.trim().split(/\s+/)[1] ?? key;
    const first = seenKeys.get(data);
    if (first !== undefined) out.push(cs.diag(['admin', 'sshKeys', i], `is the same key as sshKeys[${first}]`, 'warning'));
    else seenKeys.set(data, i);
  });

  if (opts.knownImages && !opts.knownImages.includes(c.image)) {
    out.push(
      cs.diag(['image'], `${c.image} is not in the base-image catalogue (known: ${opts.knownImages.join(', ') || 'none'}); see \`pi-image images list\``),
    );
  }

  for (const role of ['server', 'agent'] as const) {
    const d = c.defaults[role];
    for (const key of Object.keys(d?.labels ?? {})) {
      if (reservedLabel(key)) out.push(cs.diag(['defaults', role, 'labels', key], reservedLabelMessage(key), 'error', true));
    }
    for (const f of checkK3sExtras(role, d?.k3s ?? {}, `defaults.${role} applies to ${role}s`)) {
      out.push(cs.diag(['defaults', role, 'k3s', f.key], f.message, f.severity, true));
    }
  }

  for (const n of nodes) out.push(...dataDirRules(cluster, n));

  const cidr2 = cidr;
  for (const n of nodes) {
    const d = n.data;
    const src = n.source;
    const ip = d.ip ?? (net.dhcp ? 'dhcp' : undefined);
    if (ip === undefined) {
      out.push(src.diag([], `ip is required: a static address inside ${net.cidr ?? 'network.cidr'}, or "dhcp"`));
    } else if (ip !== 'dhcp' && isIpv4(ip)) {
      if (!cidr2) {
        if (net.dhcp) out.push(src.diag(['ip'], `${ip} is static but network.dhcp is true and no network.cidr is set; add network.cidr or use ip: dhcp`));
      } else if (!cidrContains(cidr2, ip)) {
        out.push(src.diag(['ip'], `${ip} is outside network.cidr ${net.cidr} (${cs.path})`));
      } else if (cidr2.prefix < 31 && (ipv4ToInt(ip) === cidr2.first || ipv4ToInt(ip) === cidr2.last)) {
        out.push(src.diag(['ip'], `${ip} is the ${ipv4ToInt(ip) === cidr2.first ? 'network' : 'broadcast'} address of ${net.cidr}; pick a host address`));
      } else if (ip === net.gateway) {
        out.push(src.diag(['ip'], `${ip} is the network gateway; pick another address`));
      } else if (net.dhcp && !net.gateway) {
        out.push(src.diag(['ip'], `${ip} is static but network.gateway is not set; add network.gateway to ${cs.path} or use ip: dhcp`));
      }
    }
    if (d.role === 'server' && ip === 'dhcp' && !c.k3s.endpoint) {
      out.push(src.diag(['ip'], 'a server on DHCP may change address; set a static ip or a stable k3s.endpoint in cluster.yaml', 'warning'));
    }
  }

  const servers = nodes.filter((n) => n.data.role === 'server');
  if (nodes.length > 0 && servers.length === 0) {
    out.push(cs.diag([], 'the inventory has no server: make one node role: server (and clusterInit: true)'));
  }
  const inits = servers.filter((n) => n.data.clusterInit);
  if (servers.length > 1) {
    if (servers.length % 2 === 0) {
      out.push(
        cs.diag([], `${servers.length} servers (${servers.map((s) => s.hostname).join(', ')}): embedded etcd needs an odd number of servers for quorum; add or remove one`),
      );
    }
    if (inits.length === 0) {
      out.push(cs.diag([], `several servers but none has clusterInit: true; set it on exactly one (e.g. ${servers[0]!.source.path})`));
    }
  } else if (servers.length === 1 && inits.length === 0) {
    out.push(servers[0]!.source.diag(['role'], 'single server without clusterInit: k3s will use SQLite; adding servers later means restarting it with cluster-init on the same datastore, which a reflash wipes unless /var/lib/rancher is on a dataDisk; set clusterInit: true for embedded etcd (docs/inventory.md: one server)', 'warning'));
  }
  for (const extra of inits.slice(1)) {
    out.push(extra.source.diag(['clusterInit'], `only one server may have clusterInit: true; ${inits[0]!.hostname} (${inits[0]!.source.path}) already does`));
  }

  // The address every node joins.
  const endpoint = c.k3s.endpoint;
  if (endpoint === undefined) {
    const first = inits[0] ?? servers[0];
    if (first && !(first.data.ip && isIpv4(first.data.ip))) {
      out.push(cs.diag(['k3s'], `endpoint is required: the first server ${first.hostname} has no static ip to join (set k3s.endpoint to a VIP or DNS name)`));
    }
  } else if (isIpv4(endpoint) && cidr) {
    const serverIps = servers.map((s) => s.data.ip).filter((x): x is string => typeof x === 'string' && x !== 'dhcp');
    if (!cidrContains(cidr, endpoint)) {
      out.push(cs.diag(['k3s', 'endpoint'], `${endpoint} is outside network.cidr ${net.cidr}; nodes cannot reach it without routing`, 'warning'));
    } else if (!serverIps.includes(endpoint)) {
      const agent = nodes.find((n) => n.data.ip === endpoint);
      if (agent) out.push(cs.diag(['k3s', 'endpoint'], `${endpoint} is the address of agent ${agent.hostname}; it must be a server or a VIP`));
      else out.push(cs.diag(['k3s', 'endpoint'], `${endpoint} is not a server address; assuming a virtual IP (kube-vip or similar) that you run`, 'warning'));
    }
  }
  return out;
}

function reservedLabelMessage(key: string): string {
  if (key.startsWith('node-role.kubernetes.io/')) {
    return `${key}: k3s cannot set node-role labels at registration (the NodeRestriction admission plugin rejects them); servers get node-role.kubernetes.io/control-plane automatically — use your own prefix such as pi-image.io/role`;
  }
  return `${key}: labels under kubernetes.io/ and k8s.io/ cannot be set by the node itself; use your own prefix such as example.com/${key.slice(key.lastIndexOf('/') + 1)}`;
}

function checkNodeRules(nodes: readonly ParsedNode[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  // --- node rules ---
  const unique = new Map<string, { node: ParsedNode; field: string }>();
  const claim = (kind: string, value: string, node: ParsedNode, path: (string | number)[]) => {
    const key = `${kind}\u0000${value}`;
    const prev = unique.get(key);
    if (prev) {
      out.push(node.source.diag(path, `${value} is already used by ${prev.node.hostname} (${prev.node.source.path}); every node needs its own ${kind}`));
    } else unique.set(key, { node, field: path.join('.') });
  };

  for (const n of nodes) {
    const d = n.data;
    const src = n.source;
    const stem = fileStem(src.path);
    if (d.hostname && d.hostname !== stem) {
      const file = printable(src.path.slice(src.path.lastIndexOf('/') + 1));
      out.push(src.diag(['hostname'], `${d.hostname} does not match the file name ${file}: a node file is named <hostname>.yaml; rename the file to ${d.hostname}.yaml or fix the hostname`));
    }
    claim('hostname', n.hostname, n, d.hostname ? ['hostname'] : []);
    if (d.mac) claim('MAC address', d.mac, n, ['mac']);
    if (d.serial) claim('serial', d.serial, n, ['serial']);

    if (d.ip && d.ip !== 'dhcp') claim('IP address', d.ip, n, ['ip']);

    if (d.clusterInit && d.role !== 'server') {
      out.push(src.diag(['clusterInit'], 'only a server can initialise the cluster; remove clusterInit or make this node role: server'));
    }
    if (d.boot === 'netboot') {
      if (!d.serial) out.push(src.diag(['boot'], 'netboot needs the Pi serial (serial: 8 hex digits, from `cat /proc/cpuinfo` or the bootloader screen): it names the TFTP folder'));
      if (!d.mac) out.push(src.diag(['boot'], 'netboot needs the Ethernet MAC address (mac: dc:a6:32:…) for the DHCP/NFS export'));
      if (!d.dataDisk) {
        out.push(src.diag(['boot'], 'netboot needs a local data disk for /var/lib/rancher (dataDisk: {device: /dev/disk/by-label/rancher}): containerd cannot keep its data on an NFS root'));
      } else if (d.dataDisk.mountPoint !== '/var/lib/rancher') {
        out.push(src.diag(['dataDisk', 'mountPoint'], `${d.dataDisk.mountPoint}: a netboot node's data disk must be mounted at /var/lib/rancher (containerd cannot run on NFS)`));
      }
    }
    for (const key of Object.keys(d.labels ?? {})) {
      if (reservedLabel(key)) out.push(src.diag(['labels', key], reservedLabelMessage(key), 'error', true));
    }
    for (const f of checkK3sExtras(d.role, d.k3s ?? {}, `${n.hostname} is ${d.role === 'agent' ? 'an agent' : 'a server'}`)) {
      out.push(src.diag(['k3s', f.key], f.message, f.severity, true));
    }
  }

  return out;
}

/**
 * `data-dir` in k3s extras (node or role defaults): supported end to end (config.yaml, the join
 * script's wait for <data-dir>/agent/kubelet.kubeconfig, the air-gap and manifest staging), so it
 * must be an absolute path, and on a node with a data disk it must lie on that disk.
 */
function dataDirRules(cluster: ParsedCluster, n: ParsedNode): Diagnostic[] {
  const out: Diagnostic[] = [];
  const d = n.data;
  const fromNode = d.k3s !== undefined && Object.prototype.hasOwnProperty.call(d.k3s, 'data-dir');
  const defaults = cluster.data.defaults[d.role]?.k3s;
  const value = fromNode ? d.k3s!['data-dir'] : defaults?.['data-dir'];
  const at = (msg: string) =>
    fromNode ? n.source.diag(['k3s', 'data-dir'], msg) : cluster.source.diag(['defaults', d.role, 'k3s', 'data-dir'], `${msg} (applies to ${n.hostname})`);
  for (const alias of ['d', 'data-dir+']) {
    if (d.k3s !== undefined && Object.prototype.hasOwnProperty.call(d.k3s, alias)) {
      out.push(n.source.diag(['k3s', alias], `write "data-dir:" (one absolute path) instead of "${alias}"`, 'error', true));
    }
  }
  if (value === undefined) return out;
  if (typeof value !== 'string' || !/^\/[A-Za-z0-9._/@+-]*$/.test(value) || value.replace(/\/+$/, '') === '') {
    out.push(at(`must be an absolute path without spaces, e.g. /var/lib/rancher/k3s`));
    return out;
  }
  const mount = d.dataDisk?.mountPoint.replace(/\/+$/, '');
  const dir = value.replace(/\/+$/, '');
  if (mount && dir !== mount && !dir.startsWith(`${mount}/`)) {
    out.push(at(`${value} is not on the data disk mounted at ${mount}: k3s would keep its data on the ${d.boot === 'netboot' ? 'NFS root' : 'root filesystem'}; put it under ${mount} (e.g. ${mount}/k3s) or remove it`));
  }
  return out;
}
