/**
 * The `k3s:` extras of a node (or of `defaults.<role>` in cluster.yaml) checked against the flags
 * k3s defines for the node's role. Pure; the inventory rules turn the findings into diagnostics.
 *
 * Why per role (see flags.ts): k3s turns every config.yaml key into a flag. `k3s server` skips a key
 * it does not know (pkg/configfilearg: "Unknown flag … found in config.yaml, skipping"); `k3s agent`
 * has no such filter and exits with "flag provided but not defined", so the node never joins.
 */
import { closest } from '../inventory/suggest.js';
import { K3S_AGENT_FLAGS, K3S_SERVER_FLAGS } from './flags.js';

export type K3sRole = 'server' | 'agent';

/**
 * config.yaml keys the inventory writes itself (with their one-letter aliases): an extra may not
 * set them. Tokens come from the encrypted secrets store, the join address from cluster.yaml, the
 * node's name and address from its file, cluster-init from `clusterInit`, the config file is the one
 * pi-image writes.
 */
export const INVENTORY_OWNED_K3S_KEYS: Readonly<Record<string, string>> = {
  token: 'the cluster token comes from the encrypted secrets store (pi-image secrets)',
  t: 'the cluster token comes from the encrypted secrets store (pi-image secrets)',
  'token-file': 'pi-image writes the token file from the encrypted secrets store',
  'agent-token': 'the agent token comes from the encrypted secrets store (pi-image secrets)',
  'agent-token-file': 'pi-image writes the agent token file from the encrypted secrets store',
  server: 'the join address comes from cluster.yaml (k3s.endpoint, default: the clusterInit server)',
  s: 'the join address comes from cluster.yaml (k3s.endpoint, default: the clusterInit server)',
  'cluster-init': 'set clusterInit: true on the first server instead',
  'node-name': 'the node name is the hostname (the file name)',
  'node-ip': 'the node address is the `ip:` field of the node file',
  i: 'the node address is the `ip:` field of the node file',
  config: 'pi-image writes /etc/rancher/k3s/config.yaml itself',
  c: 'pi-image writes /etc/rancher/k3s/config.yaml itself',
};

const FLAGS: Readonly<Record<K3sRole, ReadonlySet<string>>> = {
  server: new Set(K3S_SERVER_FLAGS),
  agent: new Set(K3S_AGENT_FLAGS),
};

export interface K3sExtraFinding {
  /** the key as written (a `+` suffix included) */
  key: string;
  severity: 'error' | 'warning';
  message: string;
}

/** The flag name of a config.yaml key: `node-label+` appends to node-label. */
export function flagName(key: string): string {
  return key.endsWith('+') ? key.slice(0, -1) : key;
}

/** Whether `k3s <role>` defines a flag for this config.yaml key. */
export function isK3sFlag(role: K3sRole, key: string): boolean {
  return FLAGS[role].has(flagName(key));
}

/**
 * Findings for the extras of one role. `where` names the owner in messages ("pi-cluster-2 is an
 * agent", "defaults.agent applies to agents").
 */
export function checkK3sExtras(role: K3sRole, extras: Readonly<Record<string, unknown>>, where: string): K3sExtraFinding[] {
  const out: K3sExtraFinding[] = [];
  for (const key of Object.keys(extras)) {
    const flag = flagName(key);
    const owned = INVENTORY_OWNED_K3S_KEYS[flag];
    if (owned !== undefined) {
      out.push({ key, severity: 'error', message: `"${key}" is set by pi-image from the inventory and cannot be overridden: ${owned}; remove it from k3s:` });
      continue;
    }
    if (FLAGS[role].has(flag)) continue;
    const other: K3sRole = role === 'server' ? 'agent' : 'server';
    const suggestion = closest(flag, [...FLAGS[role]].filter((f) => f.length > 1 && INVENTORY_OWNED_K3S_KEYS[f] === undefined));
    const hint = suggestion ? `; did you mean "${suggestion}"?` : '';
    if (role === 'agent') {
      const why = FLAGS[other].has(flag)
        ? `"${key}" is a k3s server flag, not an agent flag (${where})`
        : `"${key}" is not a k3s agent flag (${where})`;
      out.push({
        key,
        severity: 'error',
        message: `${why}: k3s agent exits with "flag provided but not defined" and the node never joins${hint || (FLAGS[other].has(flag) ? '; set it on a server or under defaults.server.k3s' : '')}`,
      });
    } else {
      out.push({
        key,
        severity: 'warning',
        message: `"${key}" is not a k3s server flag (${where}): k3s server logs "Unknown flag" and ignores it${hint}`,
      });
    }
  }
  return out;
}
