/**
 * The pure part of `pi-image diff` (src/core/diff.ts): masking on both sides, finding the secret
 * values in a built seed, per-secret changed/unchanged, unified diffs via jsdiff, kubectl output,
 * evidence folder names and the review summary.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import {
  builtSecretValues,
  type ClusterDiff,
  compareSecretsFromImage,
  compareSecretsFromRecord,
  contentDiff,
  formatNodeDiff,
  hashDiff,
  kubectlDiffObjects,
  maskPair,
  maskSecrets,
  type NodeDiff,
  clusterSummaryMarkdown,
  nodesSummaryMarkdown,
  renderedSecretValues,
  secretsOfRole,
} from '../../src/core/diff.js';
import { evidenceFolderName } from '../../src/core/evidence.js';
import type { NodeFileSet, Secrets } from '../../src/core/model.js';
import type { Templates } from '../../src/core/render/templates.js';
import { renderNode } from '../../src/core/render/node.js';
import { BUILD_YEAR, FAKE_SECRETS, fixtureInventory, fixtureWithWifi } from '../helpers/render-fixture.js';

let templates: Templates;
beforeAll(async () => {
  templates = await loadTemplates();
});

const ROTATED: Secrets = { ...FAKE_SECRETS, agentToken: 'FAKE-AGENT-TOKEN-rotated-00000000' };

function file(set: NodeFileSet, path: string): string {
  const f = set.files.find((x) => x.target === 'boot' && x.path === path);
  if (!f) throw new Error(`no ${path}`);
  return f.contents;
}

function allValues(...lists: Secrets[]): string[] {
  return lists.flatMap((s) => Object.values(s).filter((v): v is string => typeof v === 'string'));
}

describe('maskSecrets', () => {
  it('replaces every value, longest first, with its label and leaves other text alone', () => {
    const text = 'a=SECRET-LONG b=SECRET c="SECRET-LONG"';
    const out = maskSecrets(text, [
      { label: 'agent-token', value: 'SECRET' },
      { label: 'cluster-token', value: 'SECRET-LONG' },
    ]);
    expect(out).toBe('a=<secret:cluster-token> b=<secret:agent-token> c="<secret:cluster-token>"');
  });

  it('masks JSON-escaped forms and ignores empty values', () => {
    const psk = 'pass"word\\x';
    const json = JSON.stringify({ psk });
    const out = maskSecrets(json, [
      { label: 'wifi-psk', value: psk },
      { label: 'agent-token', value: '' },
    ]);
    expect(out).not.toContain('pass');
    expect(out).toContain('<secret:wifi-psk>');
  });

  it('maskPair tags values that differ between the built and the current side', () => {
    const m = maskPair(
      [
        { label: 'agent-token', value: 'OLD' },
        { label: 'node-password', value: 'PW' },
      ],
      [
        { label: 'agent-token', value: 'NEW' },
        { label: 'node-password', value: 'PW' },
      ],
    );
    expect(maskSecrets('OLD NEW PW', m)).toBe('<secret:agent-token:old> <secret:agent-token:new> <secret:node-password>');
  });
});

describe('builtSecretValues', () => {
  it('finds exactly the values a server and an agent seed carry', () => {
    const inv = fixtureInventory();
    for (const [host, role] of [
      ['pi-cluster-1', 'server'],
      ['pi-cluster-2', 'agent'],
    ] as const) {
      const set = renderNode(inv, host, FAKE_SECRETS, templates, { buildYear: BUILD_YEAR });
      const found = builtSecretValues(role, file(set, 'user-data'), file(set, 'network-config'));
      expect(found.complete).toBe(true);
      const expected = renderedSecretValues(role, host, FAKE_SECRETS).filter((v) => v.label !== 'node-password-seed');
      expect(new Set(found.values.map((v) => `${v.label}=${v.value}`))).toEqual(new Set(expected.map((v) => `${v.label}=${v.value}`)));
    }
  });

  it('finds the Wi-Fi PSK in network-config', () => {
    const { inventory, secrets } = fixtureWithWifi();
    const set = renderNode(inventory, 'pi-cluster-2', secrets, templates, { buildYear: BUILD_YEAR });
    const found = builtSecretValues('agent', file(set, 'user-data'), file(set, 'network-config'));
    expect(found.values.find((v) => v.label === 'wifi-psk')?.value).toBe(secrets.wifiPsk);
  });

  it('says incomplete for a seed it cannot read, so its contents are not shown', () => {
    expect(builtSecretValues('agent', '#cloud-config\n: : not yaml [').complete).toBe(false);
    expect(builtSecretValues('server', '#cloud-config\nwrite_files: []\n').complete).toBe(false);
  });
});

describe('secret comparison', () => {
  it('from the image: the rotated agent token is changed, the rest unchanged', () => {
    const inv = fixtureInventory();
    const before = renderNode(inv, 'pi-cluster-1', FAKE_SECRETS, templates, { buildYear: BUILD_YEAR });
    const built = builtSecretValues('server', file(before, 'user-data')).values;
    const now = renderedSecretValues('server', 'pi-cluster-1', ROTATED);
    const res = compareSecretsFromImage(secretsOfRole('server', false), built, now);
    expect(res).toEqual([
      { name: 'cluster-token', status: 'unchanged', basis: 'image' },
      { name: 'agent-token', status: 'changed', basis: 'image' },
      { name: 'node-password-seed', status: 'unchanged', basis: 'image' },
    ]);
  });

  it('from the record: same digest → unchanged; different → by change time; no later change → unknown', () => {
    const names = secretsOfRole('agent', false);
    const rec = { secretsDigest: 'aaa', builtAt: '2025-06-01T00:00:00Z' };
    expect(compareSecretsFromRecord(names, rec, { digest: 'aaa', changedAt: {} }).map((s) => s.status)).toEqual(['unchanged', 'unchanged']);
    const later = { 'agent-token': '2025-07-01T00:00:00Z', 'node-password-seed': '2025-01-01T00:00:00Z' };
    expect(compareSecretsFromRecord(names, rec, { digest: 'bbb', changedAt: later }).map((s) => s.status)).toEqual(['changed', 'unchanged']);
    const earlier = { 'agent-token': '2025-01-01T00:00:00Z' };
    expect(compareSecretsFromRecord(names, rec, { digest: 'bbb', changedAt: earlier }).map((s) => s.status)).toEqual(['unknown', 'unknown']);
  });
});

describe('contentDiff', () => {
  it('diffs a label change with built/ and rendered/ headers and no secret on either side', () => {
    const inv = fixtureInventory();
    const before = renderNode(inv, 'pi-cluster-2', FAKE_SECRETS, templates, { buildYear: BUILD_YEAR });
    const changed = fixtureInventory();
    changed.nodes[1]!.labels['pi-image.io/rack'] = 'shelf-z';
    const after = renderNode(changed, 'pi-cluster-2', ROTATED, templates, { buildYear: BUILD_YEAR });
    const builtText = file(before, 'user-data');
    const mask = maskPair(builtSecretValues('agent', builtText).values, renderedSecretValues('agent', 'pi-cluster-2', ROTATED));
    const d = contentDiff({ node: 'pi-cluster-2', target: 'boot', path: 'user-data', secret: true, built: builtText, rendered: file(after, 'user-data'), mask });
    expect(d.status).toBe('changed');
    expect(d.patch).toMatch(/^--- built\/pi-cluster-2\/user-data\n\+\+\+ rendered\/pi-cluster-2\/user-data\n@@ /);
    expect(d.patch).toContain('-        - pi-image.io/rack=shelf-a\n+        - pi-image.io/rack=shelf-z\n');
    expect(d.patch).toContain('-      <secret:agent-token:old>\n+      <secret:agent-token:new>\n');
    for (const v of allValues(FAKE_SECRETS, ROTATED)) expect(d.patch).not.toContain(v);
    expect(JSON.stringify(d.hunks)).not.toContain(ROTATED.agentToken);
    expect(d.hunks.length).toBeGreaterThan(0);
  });

  it('unchanged, added, removed; and no content when the built secrets were not found', () => {
    const base = { node: 'n', target: 'boot' as const, path: 'meta-data', secret: false, mask: [] };
    expect(contentDiff({ ...base, built: 'a\n', rendered: 'a\n' })).toMatchObject({ status: 'unchanged', patch: '' });
    expect(contentDiff({ ...base, rendered: 'a\n' }).patch).toContain('+a');
    expect(contentDiff({ ...base, built: 'a\n' }).status).toBe('removed');
    const hidden = contentDiff({ ...base, secret: true, built: 'token: X1\n', rendered: 'token: X2\n', showContent: false });
    expect(hidden.status).toBe('changed');
    expect(hidden.patch).toBe('');
    expect(hidden.note).toMatch(/not shown/);
  });

  it('says "only secret values differ" when masking makes both sides equal', () => {
    const d = contentDiff({
      node: 'n',
      target: 'boot',
      path: 'user-data',
      secret: true,
      built: 'token: AAA\n',
      rendered: 'token: BBB\n',
      mask: [
        { label: 'agent-token', value: 'AAA' },
        { label: 'agent-token', value: 'BBB' },
      ],
    });
    expect(d).toMatchObject({ status: 'changed', patch: '', note: 'only secret values differ (see the secret lines)' });
  });

  it('hashDiff reports changed without content', () => {
    expect(hashDiff({ target: 'boot', path: 'user-data', secret: true, built: 'a', rendered: 'b' })).toMatchObject({ status: 'changed', basis: 'hash', patch: '' });
    expect(hashDiff({ target: 'root', path: '/x', secret: false, built: 'a', rendered: 'a' }).status).toBe('unchanged');
  });
});

describe('reports', () => {
  const node = (over: Partial<NodeDiff>): NodeDiff => ({
    node: 'pi-cluster-2',
    role: 'agent',
    status: 'changed',
    source: 'image',
    record: 'build/images/pi-cluster-2.json',
    image: 'build/images/pi-cluster-2.img',
    builtAt: '2025-06-01T00:00:00.000Z',
    instanceId: { built: 'pi-cluster-2-aaaa', rendered: 'pi-cluster-2-bbbb', changed: true },
    secrets: [
      { name: 'agent-token', status: 'changed', basis: 'image' },
      { name: 'node-password-seed', status: 'unchanged', basis: 'image' },
    ],
    files: [hashDiff({ target: 'boot', path: 'meta-data', secret: false, built: 'a', rendered: 'b' })],
    notes: [],
    ...over,
  });

  it('text names the instance-id change, every secret and "never built"', () => {
    const text = formatNodeDiff(node({}));
    expect(text).toContain('instance-id pi-cluster-2-aaaa → pi-cluster-2-bbbb (a reflash re-runs cloud-init');
    expect(text).toContain('secret agent-token: changed');
    expect(text).toContain('secret node-password-seed: unchanged');
    expect(formatNodeDiff(node({ status: 'never-built', source: 'none', files: [], secrets: [] }))).toContain('never built');
  });

  it('summary.md has who/when/what, the per-node table and unticked review boxes', () => {
    const md = nodesSummaryMarkdown(
      { name: 'diff-all', who: 'ops@host', when: '2025-06-02T10:00:00.000Z', command: 'pi-image diff --all', toolVersion: '9.9.9', inventorySha256: 'f'.repeat(64), secretsVersion: 3 },
      [node({}), node({ node: 'pi-cluster-3', status: 'never-built', source: 'none', files: [], secrets: [] })],
    );
    expect(md).toContain('ops@host');
    expect(md).toContain('pi-image 9.9.9');
    expect(md).toContain('f'.repeat(64));
    expect(md).toContain('| pi-cluster-2 | changed | changes | 1 |');
    expect(md).toContain('| pi-cluster-3 | never-built |');
    expect(md).toContain('agent-token');
    expect(md.match(/^- \[ \] /gm)?.length).toBeGreaterThanOrEqual(6);
    expect(md).not.toMatch(/- \[x\]/i);
  });

  it('cluster summary lists the objects', () => {
    const c: ClusterDiff = { status: 'changed', manifestsDir: 'manifests', objects: ['v1.Namespace..ops'], patch: 'x', kubectl: { args: ['diff', '-f', 'manifests'], exitCode: 1 } };
    const md = clusterSummaryMarkdown({ name: 'diff-cluster', who: 'a', when: 'b', command: 'pi-image diff --cluster', toolVersion: '1', inventorySha256: 'c' }, c);
    expect(md).toContain('| v1.Namespace..ops |');
    expect(md).toContain('- [ ] ');
  });
});

describe('kubectlDiffObjects and evidence folder names', () => {
  it('reads object names from kubectl diff output', () => {
    const out = [
      'diff -u -N /tmp/LIVE-1/v1.Namespace..ops /tmp/MERGED-1/v1.Namespace..ops',
      '--- /tmp/LIVE-1/v1.Namespace..ops\t2025-01-01',
      '+++ /tmp/MERGED-1/v1.Namespace..ops\t2025-01-01',
      '@@ -1 +1 @@',
      'diff -u -N /tmp/LIVE-1/helm.cattle.io.v1.HelmChart.kube-system.loki /tmp/MERGED-1/helm.cattle.io.v1.HelmChart.kube-system.loki',
      '',
    ].join('\n');
    expect(kubectlDiffObjects(out)).toEqual(['v1.Namespace..ops', 'helm.cattle.io.v1.HelmChart.kube-system.loki']);
    expect(kubectlDiffObjects('')).toEqual([]);
  });

  it('numbers a folder that exists', () => {
    const now = new Date('2025-06-02T23:30:00Z');
    expect(evidenceFolderName(now, 'diff-all', () => false)).toBe('2025-06-02-diff-all');
    const taken = new Set(['2025-06-02-diff-all', '2025-06-02-diff-all-2']);
    expect(evidenceFolderName(now, 'diff-all', (f) => taken.has(f))).toBe('2025-06-02-diff-all-3');
  });
});
