/**
 * `pi-image init`: the inventory a new cluster starts from (cluster.yaml + one <hostname>.yaml per
 * node), as text. Pure: the app layer asks the questions, reads the key file and writes the files.
 *
 * Every file starts with the yaml-language-server modeline pointing at the JSON Schemas in schema/
 * (the YAML language server of VS Code, Neovim, Helix… then completes and checks fields). The
 * result passes `pi-image validate`; tests/unit/init.test.ts runs validate on it.
 */
import { Document } from 'yaml';
import { InputError } from './errors.js';
import { formatCidr, HOSTNAME_RE, intToIpv4, ipv4ToInt, isIpv4, parseCidr } from './inventory/net.js';
import { API_VERSION, K3S_VERSION_RE } from './inventory/schema.js';
import { checkSshPublicKey, SAMPLE_PLACEHOLDER_KEY } from './inventory/sshkey.js';

/** The k3s release new inventories pin (the one the sample inventory and the tests use). */
export const DEFAULT_K3S_VERSION = 'v1.33.5+k3s1';
export const DEFAULT_IMAGE = 'raspios-lite-arm64-trixie';

export interface ScaffoldOptions {
  clusterName: string;
  servers: number;
  agents: number;
  /** node hostnames are <prefix>-1, <prefix>-2, …; default: the cluster name */
  prefix?: string;
  /** true: every node on DHCP (no cidr/gateway/addresses) */
  dhcp: boolean;
  cidr: string;
  /** default: the first host address of cidr */
  gateway?: string;
  /** default: [gateway] */
  dns?: string[];
  /** address of the first node; the others follow; default: the 11th host address of cidr */
  firstIp?: string;
  /** k3s.endpoint (a VIP or DNS name); required with dhcp, where the first server has no fixed address */
  endpoint?: string;
  /** public key lines; empty: the sample's placeholder (validate warns until it is replaced) */
  sshKeys: string[];
  adminUser: string;
  board: 'pi4' | 'pi5';
  boot: 'sd' | 'usb';
  k3sVersion: string;
  image: string;
  timezone?: string;
  locale?: string;
  keyboard?: string;
  /** path from the inventory directory to the schema/ folder, for the modeline (e.g. ../schema) */
  schemaDir: string;
}

export interface ScaffoldFile {
  /** file name inside the inventory directory */
  name: string;
  text: string;
}

export interface Scaffold {
  files: ScaffoldFile[];
  nodes: { hostname: string; role: 'server' | 'agent'; ip: string }[];
  /** true when the placeholder key was used (no key given) */
  placeholderKey: boolean;
}

/** The default values `init` offers (and uses without a terminal). */
export function defaultScaffoldOptions(): Omit<ScaffoldOptions, 'schemaDir'> {
  return {
    clusterName: 'pi-cluster',
    servers: 1,
    agents: 2,
    dhcp: false,
    cidr: '10.0.0.0/24',
    sshKeys: [],
    adminUser: 'pi-admin',
    board: 'pi5',
    boot: 'sd',
    k3sVersion: DEFAULT_K3S_VERSION,
    image: DEFAULT_IMAGE,
  };
}

/** Every problem with the options, each naming the flag that sets it. Empty when all is well. */
export function checkScaffoldOptions(o: Omit<ScaffoldOptions, 'schemaDir'>): string[] {
  const problems: string[] = [];
  if (!HOSTNAME_RE.test(o.clusterName)) problems.push(`--cluster-name ${o.clusterName}: use lower-case letters, digits and "-" (e.g. pi-cluster)`);
  const prefix = o.prefix ?? o.clusterName;
  if ((o.prefix !== undefined || problems.length === 0) && (!HOSTNAME_RE.test(`${prefix}-1`) || prefix.length > 58)) {
    problems.push(`--prefix ${prefix}: node names <prefix>-N must be hostnames (lower-case letters, digits, "-"; the prefix up to 58 characters)`);
  }
  if (!Number.isInteger(o.servers) || o.servers < 1) problems.push(`--servers ${o.servers}: a cluster needs at least one server`);
  else if (o.servers > 1 && o.servers % 2 === 0) problems.push(`--servers ${o.servers}: embedded etcd needs an odd number of servers (1, 3, 5)`);
  if (!Number.isInteger(o.agents) || o.agents < 0) problems.push(`--agents ${o.agents}: must be a whole number ≥ 0`);
  if (o.servers + o.agents > 250) problems.push(`--servers + --agents: ${o.servers + o.agents} nodes; init writes at most 250`);
  if (!K3S_VERSION_RE.test(o.k3sVersion)) problems.push(`--k3s-version ${o.k3sVersion}: expected a k3s release such as ${DEFAULT_K3S_VERSION}`);
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(o.adminUser) || o.adminUser === 'root') problems.push(`--user ${o.adminUser}: a Linux user name other than root (e.g. pi-admin)`);
  o.sshKeys.forEach((key) => {
    const r = checkSshPublicKey(key);
    if (!r.ok) problems.push(`--ssh-key: "${key.slice(0, 40)}${key.length > 40 ? '…' : ''}" is not an SSH public key: ${r.reason}`);
  });
  if (o.endpoint !== undefined && !/^[a-z0-9.-]+$/i.test(o.endpoint)) problems.push(`--endpoint ${o.endpoint}: a host name or IPv4 address, without scheme or port`);
  if (o.dhcp && o.endpoint === undefined) problems.push('--dhcp: the first server has no fixed address then; give --endpoint NAME (a DNS name or VIP the nodes join)');
  if (!o.dhcp) {
    const net = parseCidr(o.cidr);
    if (!net) problems.push(`--cidr ${o.cidr}: expected an IPv4 network such as 10.0.0.0/24 (or --dhcp)`);
    else {
      for (const [flag, ip] of [['--gateway', o.gateway], ['--first-ip', o.firstIp], ...(o.dns ?? []).map((d) => ['--dns', d])] as const) {
        if (ip !== undefined && !isIpv4(ip)) problems.push(`${flag} ${ip}: not an IPv4 address`);
      }
      if (problems.length === 0) {
        const plan = addresses(o);
        if (typeof plan === 'string') problems.push(plan);
      }
    }
  }
  return problems;
}

/** Gateway and one address per node, or why they do not fit. */
function addresses(o: Omit<ScaffoldOptions, 'schemaDir'>): { gateway: string; ips: string[] } | string {
  const net = parseCidr(o.cidr)!;
  const first = net.prefix >= 31 ? net.first : net.first + 1;
  const last = net.prefix >= 31 ? net.last : net.last - 1;
  const gateway = o.gateway ?? intToIpv4(first);
  const inNet = (n: number) => n >= first && n <= last;
  if (!inNet(ipv4ToInt(gateway))) return `--gateway ${gateway}: not a host address of ${formatCidr(net)}`;
  let next = o.firstIp !== undefined ? ipv4ToInt(o.firstIp) : Math.min(first + 10, last);
  if (!inNet(next)) return `--first-ip ${o.firstIp ?? intToIpv4(next)}: not a host address of ${formatCidr(net)}`;
  const ips: string[] = [];
  const count = o.servers + o.agents;
  while (ips.length < count) {
    if (!inNet(next)) return `--cidr ${o.cidr}: ${count} nodes from ${intToIpv4(ips.length ? ipv4ToInt(ips[0]!) : next)} do not fit in ${formatCidr(net)}; use a larger network or a lower --first-ip`;
    if (intToIpv4(next) !== gateway) ips.push(intToIpv4(next));
    next++;
  }
  return { gateway, ips };
}

function yamlFile(modeline: string, header: string[], value: Record<string, unknown>): string {
  const doc = new Document(value);
  doc.commentBefore = [` yaml-language-server: $schema=${modeline}`, ...header.map((h) => ` ${h}`)].join('\n');
  return doc.toString({ lineWidth: 0 });
}

/** The files of a new inventory. Throws an InputError listing every problem with the options. */
export function planScaffold(o: ScaffoldOptions): Scaffold {
  const problems = checkScaffoldOptions(o);
  if (problems.length > 0) {
    throw new InputError(`cannot scaffold the inventory: ${problems.length} problem${problems.length === 1 ? '' : 's'}`, {
      details: problems,
      hint: 'see `pi-image init --help`',
    });
  }
  const prefix = o.prefix ?? o.clusterName;
  const plan = o.dhcp ? undefined : (addresses(o) as { gateway: string; ips: string[] });
  const placeholderKey = o.sshKeys.length === 0;
  const schema = (name: string) => `${o.schemaDir.replace(/\/$/, '')}/${name}`;

  const cluster: Record<string, unknown> = {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    name: o.clusterName,
    k3s: { version: o.k3sVersion, ...(o.endpoint === undefined ? {} : { endpoint: o.endpoint }) },
    network: o.dhcp
      ? { dhcp: true }
      : { cidr: formatCidr(parseCidr(o.cidr)!), gateway: plan!.gateway, dns: o.dns ?? [plan!.gateway] },
    admin: { user: o.adminUser, sshKeys: placeholderKey ? [SAMPLE_PLACEHOLDER_KEY] : o.sshKeys },
    ...(o.timezone === undefined ? {} : { timezone: o.timezone }),
    ...(o.locale === undefined ? {} : { locale: o.locale }),
    ...(o.keyboard === undefined ? {} : { keyboard: o.keyboard }),
    image: o.image,
  };
  const header = [
    `Cluster ${o.clusterName}: ${o.servers} server${o.servers === 1 ? '' : 's'}, ${o.agents} agent${o.agents === 1 ? '' : 's'}. Written by \`pi-image init\`.`,
    'Field reference: docs/inventory.md. Check with `pi-image validate`.',
    ...(placeholderKey ? ['admin.sshKeys holds a PLACEHOLDER: put your public key there (validate warns until you do).'] : []),
  ];
  const files: ScaffoldFile[] = [{ name: 'cluster.yaml', text: yamlFile(schema('cluster.schema.json'), header, cluster) }];

  const nodes: Scaffold['nodes'] = [];
  for (let i = 0; i < o.servers + o.agents; i++) {
    const hostname = `${prefix}-${i + 1}`;
    const role = i < o.servers ? 'server' : 'agent';
    const ip = plan ? plan.ips[i]! : 'dhcp';
    nodes.push({ hostname, role, ip });
    const node: Record<string, unknown> = {
      apiVersion: API_VERSION,
      kind: 'Node',
      role,
      ...(i === 0 ? { clusterInit: true } : {}),
      board: o.board,
      boot: o.boot,
      ip,
    };
    const nodeHeader = [
      `${hostname}: ${role}${i === 0 ? ' (initialises the cluster)' : ''}. Add mac: and serial: for netboot; labels:, taints: as needed.`,
    ];
    files.push({ name: `${hostname}.yaml`, text: yamlFile(schema('node.schema.json'), nodeHeader, node) });
  }
  return { files, nodes, placeholderKey };
}
