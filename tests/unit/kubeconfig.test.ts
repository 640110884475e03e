import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { ClusterError, InputError } from '../../src/core/errors.js';
import { mergeConflicts, mergeKubeconfig, rewriteK3sKubeconfig } from '../../src/core/verify/kubeconfig.js';

const KEY = 'c2VjcmV0LWNsaWVudC1rZXk=';
const K3S = stringify({
  apiVersion: 'v1',
  kind: 'Config',
  clusters: [{ name: 'default', cluster: { 'certificate-authority-data': 'Q0E=', server: 'https://127.0.0.1:6443' } }],
  contexts: [{ name: 'default', context: { cluster: 'default', user: 'default' } }],
  'current-context': 'default',
  preferences: {},
  users: [{ name: 'default', user: { 'client-certificate-data': 'Q0VSVA==', 'client-key-data': KEY } }],
});
const opts = { name: 'pi-cluster', serverUrl: 'https://10.0.0.11:6443', source: 'pi-admin@10.0.0.11:/etc/rancher/k3s/k3s.yaml' };

describe('rewriteK3sKubeconfig', () => {
  it('points at the serverUrl and names cluster, user and context after the cluster, keeping credentials', () => {
    const doc = rewriteK3sKubeconfig(K3S, opts);
    expect(doc.clusters).toEqual([{ name: 'pi-cluster', cluster: { 'certificate-authority-data': 'Q0E=', server: 'https://10.0.0.11:6443' } }]);
    expect(doc.users).toEqual([{ name: 'pi-cluster', user: { 'client-certificate-data': 'Q0VSVA==', 'client-key-data': KEY } }]);
    expect(doc.contexts).toEqual([{ name: 'pi-cluster', context: { cluster: 'pi-cluster', user: 'pi-cluster' } }]);
    expect(doc['current-context']).toBe('pi-cluster');
  });

  it('rejects something that is not a k3s kubeconfig as a ClusterError without echoing its contents', () => {
    for (const bad of ['kind: Config\nclusters: []\nusers: []\n', `password: ${KEY}\n`, '{{{']) {
      let caught: unknown;
      try {
        rewriteK3sKubeconfig(bad, opts);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(ClusterError);
      expect((caught as Error).message).toContain(opts.source);
      expect((caught as Error).message).not.toContain(KEY);
    }
  });
});

describe('mergeKubeconfig', () => {
  const add = rewriteK3sKubeconfig(K3S, opts);
  it('creates a fresh config when there is none', () => {
    expect(parse(mergeKubeconfig(undefined, add, { switchContext: true, source: '~/.kube/config' }))).toMatchObject({ 'current-context': 'pi-cluster', contexts: add.contexts });
  });
  it('replaces same-named entries in place, keeps the rest, and switches only when asked', () => {
    const existing = stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'pi-cluster', cluster: { server: 'https://old:6443' } }, { name: 'work', cluster: { server: 'https://work:6443' } }],
      users: [{ name: 'work', user: { token: 't' } }],
      contexts: [{ name: 'work', context: { cluster: 'work', user: 'work' } }],
      'current-context': 'work',
    });
    // same name, another server: refused without force, replaced with it
    expect(() => mergeKubeconfig(existing, add, { switchContext: false, source: 'f' })).toThrow(/^f: cluster "pi-cluster" already exists with server https:\/\/old:6443 — refusing to overwrite it$/);
    const kept = parse(mergeKubeconfig(existing, add, { switchContext: false, source: 'f', force: true })) as Record<string, { name: string }[]>;
    expect(kept['clusters']!.map((c) => c.name)).toEqual(['pi-cluster', 'work']);
    expect(kept['clusters']![0]).toEqual(add.clusters[0]);
    expect(kept['users']!.map((c) => c.name)).toEqual(['work', 'pi-cluster']);
    expect(kept['current-context']).toBe('work');
    expect((parse(mergeKubeconfig(existing, add, { switchContext: true, source: 'f', force: true })) as Record<string, unknown>)['current-context']).toBe('pi-cluster');
  });
  it('re-fetching the same cluster (same server and CA, new credentials) is not a conflict', () => {
    const first = mergeKubeconfig(undefined, add, { switchContext: true, source: 'f' });
    const fresh = { ...add, users: [{ name: add.users[0]!.name, user: { token: 'rotated' } }] };
    const again = parse(mergeKubeconfig(first, fresh, { switchContext: true, source: 'f' })) as { users: { user: unknown }[] };
    expect(again.users).toEqual([{ name: add.users[0]!.name, user: { token: 'rotated' } }]);
  });
  it('a context of the same name that points at another cluster is a conflict, named with its server', () => {
    const existing = stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'lab', cluster: { server: 'https://lab.example:6443' } }],
      users: [{ name: 'lab', user: { token: 't' } }],
      contexts: [{ name: add.contexts[0]!.name, context: { cluster: 'lab', user: 'lab' } }],
      'current-context': add.contexts[0]!.name,
    });
    expect(mergeConflicts(parse(existing) as Record<string, unknown>, add)).toEqual([`context "${add.contexts[0]!.name}" already points at another cluster (https://lab.example:6443)`]);
    expect(() => mergeKubeconfig(existing, add, { switchContext: true, source: 'f' })).toThrow(InputError);
  });
  it('refuses to merge into a file that is not YAML', () => {
    expect(() => mergeKubeconfig('a: [', add, { switchContext: true, source: '/home/x/.kube/config' })).toThrow(InputError);
  });
});
