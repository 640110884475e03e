/**
 * k3s's /etc/rancher/k3s/k3s.yaml → a kubeconfig for this machine (pure; no file access).
 * k3s writes one cluster/user/context all named `default` pointing at https://127.0.0.1:6443;
 * pi-image points it at the cluster's serverUrl and names all three after the cluster, so several
 * clusters can live side by side in one ~/.kube/config. Contents are credentials: nothing here ever
 * puts them into an error message.
 */
import { parse, stringify } from 'yaml';
import { ClusterError, InputError } from '../errors.js';

interface Named {
  name: string;
  [key: string]: unknown;
}
export interface KubeconfigDoc {
  apiVersion: string;
  kind: string;
  clusters: (Named & { cluster: Record<string, unknown> })[];
  users: (Named & { user: Record<string, unknown> })[];
  contexts: (Named & { context: { cluster: string; user: string; [k: string]: unknown } })[];
  'current-context'?: string;
  preferences?: Record<string, unknown>;
  [key: string]: unknown;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses k3s.yaml and returns it renamed to `name` and pointing at `serverUrl`. */
export function rewriteK3sKubeconfig(text: string, opts: { name: string; serverUrl: string; source: string }): KubeconfigDoc {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch {
    throw new ClusterError(`${opts.source} is not YAML`, { hint: 'is k3s fully started on that server? the file is written once the API is up' });
  }
  const bad = (what: string): ClusterError =>
    new ClusterError(`${opts.source} does not look like a k3s kubeconfig (${what})`, { hint: 'pass --remote-path if k3s writes it elsewhere (k3s --write-kubeconfig)' });
  if (!isRecord(raw) || raw['kind'] !== 'Config') throw bad('kind is not Config');
  const clusters = raw['clusters'];
  const users = raw['users'];
  const contexts = raw['contexts'];
  if (!Array.isArray(clusters) || clusters.length !== 1 || !isRecord(clusters[0]) || !isRecord(clusters[0]['cluster'])) throw bad('expected exactly one cluster');
  if (!Array.isArray(users) || users.length !== 1 || !isRecord(users[0]) || !isRecord(users[0]['user'])) throw bad('expected exactly one user');
  if (!Array.isArray(contexts) || contexts.length > 1) throw bad('expected one context');
  const cluster = { ...(clusters[0]['cluster'] as Record<string, unknown>) };
  if (typeof cluster['server'] !== 'string') throw bad('the cluster has no server');
  cluster['server'] = opts.serverUrl;
  const ctxIn = isRecord(contexts[0]) && isRecord(contexts[0]['context']) ? (contexts[0]['context'] as Record<string, unknown>) : {};
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: opts.name, cluster }],
    users: [{ name: opts.name, user: { ...(users[0]['user'] as Record<string, unknown>) } }],
    contexts: [{ name: opts.name, context: { ...ctxIn, cluster: opts.name, user: opts.name } }],
    'current-context': opts.name,
    preferences: {},
  };
}

/** server + CA of a cluster entry: what makes two entries "the same cluster". */
function clusterIdentity(entry: unknown): string | undefined {
  if (!isRecord(entry) || !isRecord(entry['cluster'])) return undefined;
  const c = entry['cluster'];
  return `${String(c['server'] ?? '')}|${String(c['certificate-authority-data'] ?? c['certificate-authority'] ?? '')}`;
}

function serverOf(entry: unknown): string {
  return isRecord(entry) && isRecord(entry['cluster']) && typeof entry['cluster']['server'] === 'string' ? entry['cluster']['server'] : '(no server)';
}

/**
 * Name clashes that would overwrite another cluster: a cluster entry (or the cluster a context of
 * that name points at) with the same name but another server or CA. Re-fetching the same cluster
 * (same server and CA, fresh credentials) is not a clash.
 */
export function mergeConflicts(base: Record<string, unknown>, add: KubeconfigDoc): string[] {
  const list = (key: string): unknown[] => (Array.isArray(base[key]) ? (base[key] as unknown[]) : []);
  const named = (key: string, name: string): unknown => list(key).find((e) => isRecord(e) && e['name'] === name);
  const out: string[] = [];
  for (const ctx of add.contexts) {
    const newCluster = add.clusters.find((c) => c.name === ctx.context.cluster);
    const want = clusterIdentity(newCluster);
    const oldCtx = named('contexts', ctx.name);
    if (isRecord(oldCtx) && isRecord(oldCtx['context'])) {
      const oldCluster = named('clusters', String(oldCtx['context']['cluster'] ?? ''));
      if (oldCluster !== undefined && clusterIdentity(oldCluster) !== want) {
        out.push(`context "${ctx.name}" already points at another cluster (${serverOf(oldCluster)}${serverOf(oldCluster) === serverOf(newCluster) ? ', another CA' : ''})`);
        continue;
      }
    }
    const sameName = named('clusters', ctx.context.cluster);
    if (sameName !== undefined && clusterIdentity(sameName) !== want) {
      out.push(`cluster "${ctx.context.cluster}" already exists with ${serverOf(sameName) === serverOf(newCluster) ? 'another CA' : `server ${serverOf(sameName)}`}`);
    }
  }
  return out;
}

/**
 * Adds `add`'s cluster, user and context to an existing kubeconfig (text, or undefined when there
 * is none yet): entries with the same names are replaced, all others kept in place. A same-named
 * entry of ANOTHER cluster is replaced only with `force` (InputError otherwise). The new context
 * becomes current unless `switchContext` is false.
 */
export function mergeKubeconfig(existing: string | undefined, add: KubeconfigDoc, opts: { switchContext: boolean; source: string; force?: boolean }): string {
  let base: Record<string, unknown> = {};
  if (existing !== undefined && existing.trim() !== '') {
    let raw: unknown;
    try {
      raw = parse(existing);
    } catch {
      throw new InputError(`${opts.source} is not valid YAML; refusing to merge into it`, { hint: 'fix or move the file, or write a separate file with --out' });
    }
    if (raw !== null && !isRecord(raw)) throw new InputError(`${opts.source} is not a kubeconfig; refusing to merge into it`, { hint: 'use --out FILE instead' });
    base = raw ?? {};
  }
  const conflicts = mergeConflicts(base, add);
  if (conflicts.length > 0 && !opts.force) {
    throw new InputError(`${opts.source}: ${conflicts.join('; ')} — refusing to overwrite it`, {
      hint: 'pick another name with --context NAME, or replace it with --force (the old file is kept as a backup)',
    });
  }
  const mergeList = (key: 'clusters' | 'users' | 'contexts'): unknown[] => {
    const list = Array.isArray(base[key]) ? [...(base[key] as unknown[])] : [];
    for (const entry of add[key]) {
      const i = list.findIndex((e) => isRecord(e) && e['name'] === entry.name);
      if (i >= 0) list[i] = entry;
      else list.push(entry);
    }
    return list;
  };
  const out: Record<string, unknown> = {
    ...base,
    apiVersion: base['apiVersion'] ?? 'v1',
    kind: base['kind'] ?? 'Config',
    clusters: mergeList('clusters'),
    users: mergeList('users'),
    contexts: mergeList('contexts'),
  };
  if (opts.switchContext || typeof base['current-context'] !== 'string' || base['current-context'] === '') {
    out['current-context'] = add['current-context'];
  }
  if (!isRecord(out['preferences'])) out['preferences'] = {};
  return stringify(out);
}

export function serializeKubeconfig(doc: KubeconfigDoc): string {
  return stringify(doc);
}
