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

/**
 * Adds `add`'s cluster, user and context to an existing kubeconfig (text, or undefined when there
 * is none yet): entries with the same names are replaced, all others kept in place. The new
 * context becomes current unless `switchContext` is false.
 */
export function mergeKubeconfig(existing: string | undefined, add: KubeconfigDoc, opts: { switchContext: boolean; source: string }): string {
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
