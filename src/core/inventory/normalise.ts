/** Builds the Inventory model from validated files: cluster defaults → role defaults → node. Pure. */
import type { ClusterModel, Inventory, NodeModel, Taint } from '../model.js';
import { isIpv4, parseCidr } from './net.js';
import type { ParsedCluster, ParsedNode } from './validate.js';

function mergeTaints(base: readonly Taint[], extra: readonly Taint[]): Taint[] {
  const byKey = new Map<string, Taint>();
  for (const t of [...base, ...extra]) byKey.set(`${t.key}:${t.effect}`, t);
  return [...byKey.values()];
}

const HOSTNAME_CHARS = /^[a-z0-9-]*$/;

const isDigit = (s: string, i: number) => i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57;

/**
 * Hostnames in natural order (`pi-2` before `pi-10`): `a.localeCompare(b, 'en', { numeric: true })`.
 * For names of a-z, 0-9 and "-" (every valid hostname) it is computed here: "-" < digits < letters,
 * a run of digits by its value; ICU's collator would cost its data's loading on every start-up.
 * tests/unit/hostname-order.test.ts checks the two agree.
 */
export function compareHostnames(a: string, b: string): number {
  if (!HOSTNAME_CHARS.test(a) || !HOSTNAME_CHARS.test(b)) return a.localeCompare(b, 'en', { numeric: true });
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (isDigit(a, i) && isDigit(b, j)) {
      let endA = i;
      while (isDigit(a, endA)) endA++;
      let endB = j;
      while (isDigit(b, endB)) endB++;
      // leading zeros do not count (ICU's numeric collation ignores them)
      while (i < endA - 1 && a[i] === '0') i++;
      while (j < endB - 1 && b[j] === '0') j++;
      const numA = a.slice(i, endA);
      const numB = b.slice(j, endB);
      if (numA.length !== numB.length) return numA.length - numB.length;
      if (numA !== numB) return numA < numB ? -1 : 1;
      i = endA;
      j = endB;
      continue;
    }
    if (a[i] !== b[j]) return a.charCodeAt(i) - b.charCodeAt(j);
    i++;
    j++;
  }
  return a.length - i - (b.length - j);
}

export function buildInventory(cluster: ParsedCluster, nodes: readonly ParsedNode[], dir: string): Inventory {
  const c = cluster.data;
  const cidr = c.network.cidr ? parseCidr(c.network.cidr) : undefined;

  const models: NodeModel[] = nodes.map((n) => {
    const d = n.data;
    const defaults = c.defaults[d.role] ?? {};
    const ip = d.ip ?? 'dhcp';
    const model: NodeModel = {
      hostname: n.hostname,
      role: d.role,
      clusterInit: d.clusterInit,
      board: d.board,
      boot: d.boot,
      address: ip !== 'dhcp' && isIpv4(ip) && cidr ? { mode: 'static', address: ip, prefix: cidr.prefix } : { mode: 'dhcp' },
      labels: { ...(defaults.labels ?? {}), ...(d.labels ?? {}) },
      taints: mergeTaints(defaults.taints ?? [], d.taints ?? []),
      k3sExtra: { ...(defaults.k3s ?? {}), ...(d.k3s ?? {}) },
      source: n.source.path,
    };
    if (d.mac) model.mac = d.mac;
    if (d.serial) model.serial = d.serial;
    if (d.dataDisk) model.dataDisk = { ...d.dataDisk };
    return model;
  });

  // Servers first (the cluster-init one first), then agents; by hostname within each group.
  models.sort(
    (a, b) =>
      Number(b.role === 'server') - Number(a.role === 'server') ||
      Number(b.clusterInit) - Number(a.clusterInit) ||
      compareHostnames(a.hostname, b.hostname),
  );

  const first = models.find((m) => m.role === 'server');
  const endpointHost =
    c.k3s.endpoint ?? (first && first.address.mode === 'static' ? first.address.address : first?.hostname ?? 'localhost');

  const k3s: ClusterModel['k3s'] = { serverUrl: `https://${endpointHost}:${c.k3s.port}` };
  if (c.k3s.version) k3s.version = c.k3s.version;
  else if (c.k3s.channel) k3s.channel = c.k3s.channel;
  if (c.k3s.airgapDir) k3s.airgapDir = c.k3s.airgapDir;
  if (c.k3s.sha256) k3s.binarySha256 = c.k3s.sha256;

  const network: ClusterModel['network'] = {
    mode: c.network.dhcp ? 'dhcp' : 'static',
    dns: c.network.dns,
    searchDomains: c.network.searchDomains,
    interface: c.network.interface,
  };
  if (c.network.cidr && cidr) network.cidr = c.network.cidr;
  if (c.network.gateway) network.gateway = c.network.gateway;

  const clusterModel: ClusterModel = {
    name: c.name,
    k3s,
    network,
    admin: { user: c.admin.user, sshKeys: c.admin.sshKeys.map((k) => k.trim()), groups: c.admin.groups },
    timezone: c.timezone,
    locale: c.locale,
    keyboardLayout: c.keyboard,
    ntpServers: c.ntp,
    baseImage: c.image,
    manifests: c.manifests,
    source: cluster.source.path,
  };
  if (c.wifi) clusterModel.wifi = { ssid: c.wifi.ssid, country: c.wifi.country, hidden: c.wifi.hidden };

  return { cluster: clusterModel, nodes: models, dir };
}
