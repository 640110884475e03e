import { createHash, createHmac } from 'node:crypto';
import { InputError } from '../errors.js';
import { INVENTORY_OWNED_K3S_KEYS } from '../k3s/extras.js';
import type { Inventory, NodeModel } from '../model.js';
import { NODE_PATHS } from './paths.js';

/** k3s config keys pi-image sets itself; `k3sExtra` may not override them (validate refuses them too). */
export const RESERVED_K3S_KEYS: readonly string[] = Object.keys(INVENTORY_OWNED_K3S_KEYS);

/**
 * The k3s node password (`/etc/rancher/node/password`): hex HMAC-SHA256(seed, hostname). Derived, so a
 * reflashed node presents the same password and the server does not reject it.
 */
export function nodePassword(seed: string, hostname: string): string {
  return createHmac('sha256', seed).update(hostname, 'utf8').digest('hex');
}

/** Host part of the server URL (`https://10.0.0.11:6443` → `10.0.0.11`, `https://[fd00::1]:6443` → `fd00::1`). */
export function serverHost(serverUrl: string): string {
  let url: URL;
  try {
    url = new URL(serverUrl);
  } catch (cause) {
    throw new InputError(`cluster k3s.serverUrl ${JSON.stringify(serverUrl)} is not a URL`, {
      hint: 'use the form https://<server-ip-or-name>:6443',
      cause,
    });
  }
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * The k3s data directory of a node: `data-dir` from its k3s extras when set (validate checks it is
 * absolute and on the data disk); else the default, unless the node has a data disk mounted
 * somewhere other than /var/lib/rancher(/k3s), in which case k3s keeps its data on it (`<mount>/k3s`).
 */
export function k3sDataDir(node: NodeModel): string {
  const given = node.k3sExtra['data-dir'];
  if (typeof given === 'string' && given.startsWith('/')) return given.replace(/(.)\/+$/, '$1');
  const mount = node.dataDisk?.mountPoint.replace(/\/+$/, '');
  if (!mount || mount === '/var/lib/rancher' || mount === NODE_PATHS.defaultDataDir || mount === '/var/lib') {
    return NODE_PATHS.defaultDataDir;
  }
  if (NODE_PATHS.defaultDataDir.startsWith(`${mount}/`)) return NODE_PATHS.defaultDataDir;
  return `${mount}/k3s`;
}

function taintString(t: NodeModel['taints'][number]): string {
  return t.value === '' ? `${t.key}:${t.effect}` : `${t.key}=${t.value}:${t.effect}`;
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

/**
 * The k3s `config.yaml` of a node as an object (key order is the file's order). Tokens are never in
 * it: they are referenced by file (`token-file`, `agent-token-file`).
 */
export function k3sConfig(inventory: Inventory, node: NodeModel): Record<string, unknown> {
  const { cluster } = inventory;
  // k3sExtra never holds a reserved key: the validator (rules.ts) refuses them
  const config: Record<string, unknown> = {};
  if (node.role === 'server' && node.clusterInit) {
    config['cluster-init'] = true;
  } else {
    config.server = cluster.k3s.serverUrl;
  }
  config['token-file'] = NODE_PATHS.tokenFile;
  if (node.role === 'server') config['agent-token-file'] = NODE_PATHS.agentTokenFile;
  config['node-name'] = node.hostname;
  if (node.address.mode === 'static') config['node-ip'] = node.address.address;
  const labels = Object.entries(node.labels).map(([k, v]) => `${k}=${v}`);
  if (labels.length > 0) config['node-label'] = labels;
  const taints = node.taints.map(taintString);
  if (taints.length > 0) config['node-taint'] = taints;
  if (node.role === 'server') {
    const serverIps = inventory.nodes.flatMap((n) =>
      n.role === 'server' && n.address.mode === 'static' ? [n.address.address] : [],
    );
    config['tls-san'] = unique([serverHost(cluster.k3s.serverUrl), ...serverIps]);
    config['write-kubeconfig-mode'] = '0600';
  }
  const dataDir = k3sDataDir(node);
  if (dataDir !== NODE_PATHS.defaultDataDir) config['data-dir'] = dataDir;

  for (const k of Object.keys(node.k3sExtra).sort()) {
    if (k === 'data-dir') continue; // set above from k3sDataDir
    const extra = node.k3sExtra[k];
    const mine = config[k];
    config[k] = Array.isArray(mine) && Array.isArray(extra) ? unique([...mine, ...extra]) : extra;
  }
  return config;
}

/** Short stable fingerprint (hex) of strings, e.g. for instance ids. */
export function shortHash(parts: readonly string[], length = 16): string {
  const h = createHash('sha256');
  for (const p of parts) {
    h.update(String(Buffer.byteLength(p, 'utf8')));
    h.update(':');
    h.update(p, 'utf8');
  }
  return h.digest('hex').slice(0, length);
}
