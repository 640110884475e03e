/**
 * manifests/: every file parses (multi-document), every object matches a zod schema for its kind,
 * the embedded Alertmanager config / rule groups equal the plain files under manifests/alerting/,
 * and verify's baseline (what it expects in the cluster) is derived from these files.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { baselineFromManifests } from '../../src/core/verify/baseline.js';

const DIR = join(import.meta.dirname, '..', '..', 'manifests');
const FILES = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort();

const dns1123 = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a DNS-1123 label');
const rbacName = z.string().regex(/^[a-z0-9:._-]+$/);
const labels = z.record(z.string(), z.string()).optional();
const meta = (name: z.ZodType<string>, namespaced: boolean) =>
  z.object({ name, namespace: namespaced ? dns1123 : z.never().optional(), labels, annotations: labels }).strict();
const verbs = z.array(z.enum(['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', '*'])).min(1);

const Namespace = z.object({ apiVersion: z.literal('v1'), kind: z.literal('Namespace'), metadata: meta(dns1123, false) }).strict();
const ClusterRole = z
  .object({
    apiVersion: z.literal('rbac.authorization.k8s.io/v1'),
    kind: z.literal('ClusterRole'),
    metadata: meta(rbacName, false),
    rules: z
      .array(
        z.union([
          z.object({ apiGroups: z.array(z.string()).min(1), resources: z.array(z.string()).min(1), verbs, resourceNames: z.array(z.string()).optional() }).strict(),
          z.object({ nonResourceURLs: z.array(z.string().startsWith('/')).min(1), verbs: z.array(z.literal('get')) }).strict(),
        ]),
      )
      .min(1),
  })
  .strict();
const ClusterRoleBinding = z
  .object({
    apiVersion: z.literal('rbac.authorization.k8s.io/v1'),
    kind: z.literal('ClusterRoleBinding'),
    metadata: meta(rbacName, false),
    roleRef: z.object({ apiGroup: z.literal('rbac.authorization.k8s.io'), kind: z.literal('ClusterRole'), name: rbacName }).strict(),
    subjects: z.array(z.object({ apiGroup: z.literal('rbac.authorization.k8s.io'), kind: z.enum(['Group', 'User']), name: z.string().min(1) }).strict()).min(1),
  })
  .strict();
const StorageClass = z
  .object({
    apiVersion: z.literal('storage.k8s.io/v1'),
    kind: z.literal('StorageClass'),
    metadata: meta(dns1123, false),
    provisioner: z.string().min(1),
    reclaimPolicy: z.enum(['Delete', 'Retain']),
    volumeBindingMode: z.enum(['Immediate', 'WaitForFirstConsumer']),
    allowVolumeExpansion: z.boolean().optional(),
    parameters: z.record(z.string(), z.string()).optional(),
  })
  .strict();
const HelmChart = z
  .object({
    apiVersion: z.literal('helm.cattle.io/v1'),
    kind: z.literal('HelmChart'),
    metadata: meta(dns1123, true),
    spec: z
      .object({
        repo: z.url({ protocol: /^https$/ }),
        chart: z.string().min(1),
        version: z.string().regex(/^\d+\.\d+\.\d+$/, 'a pinned chart version'),
        targetNamespace: dns1123,
        timeout: z.string().regex(/^\d+[smh]$/).optional(),
        valuesContent: z.string().min(1),
      })
      .strict(),
  })
  .strict();
const Secret = z
  .object({
    apiVersion: z.literal('v1'),
    kind: z.literal('Secret'),
    metadata: meta(dns1123, true),
    type: z.string(),
    stringData: z.record(z.string(), z.string()),
  })
  .strict();
const Rule = z
  .object({
    alert: z.string().regex(/^[A-Za-z][A-Za-z0-9]*$/),
    expr: z.string().min(1),
    for: z.string().regex(/^\d+[smh]$/),
    labels: z.object({ severity: z.enum(['critical', 'warning', 'info']) }).catchall(z.string()),
    annotations: z.object({ summary: z.string().min(1), description: z.string().min(1) }).catchall(z.string()),
  })
  .strict();
const PrometheusRule = z
  .object({
    apiVersion: z.literal('monitoring.coreos.com/v1'),
    kind: z.literal('PrometheusRule'),
    metadata: meta(dns1123, true),
    spec: z.object({ groups: z.array(z.object({ name: z.string(), rules: z.array(Rule).min(1) }).strict()).min(1) }).strict(),
  })
  .strict();
const SCHEMAS: Record<string, z.ZodType> = { Namespace, ClusterRole, ClusterRoleBinding, StorageClass, HelmChart, Secret, PrometheusRule };

function docs(file: string): Record<string, unknown>[] {
  const parsed = parseAllDocuments(readFileSync(join(DIR, file), 'utf8'));
  for (const d of parsed) expect(d.errors.map((e) => `${file}: ${e.message}`)).toEqual([]);
  return parsed.map((d) => d.toJS() as Record<string, unknown>).filter((d) => d !== null);
}
const all = FILES.flatMap((f) => docs(f).map((d) => ({ file: f, doc: d })));
const byKind = (kind: string) => all.filter((x) => x.doc['kind'] === kind).map((x) => x.doc);

describe('manifests/', () => {
  it('has the expected files, each with at least one object', () => {
    expect(FILES).toEqual([
      '00-namespaces.yaml', '10-rbac.yaml', '20-storageclass.yaml', '30-kube-prometheus-stack.yaml',
      '31-loki.yaml', '40-alertmanager-config.yaml', '50-alert-rules.yaml',
    ]);
    for (const f of FILES) expect(docs(f).length, f).toBeGreaterThan(0);
  });

  it.each(all.map((x) => [`${x.file} ${String(x.doc['kind'])}/${String((x.doc['metadata'] as { name?: string } | undefined)?.name)}`, x.doc] as const))(
    '%s matches its kind schema',
    (_label, doc) => {
      const schema = SCHEMAS[String(doc['kind'])];
      expect(schema, `no schema for kind ${String(doc['kind'])}`).toBeDefined();
      const r = schema!.safeParse(doc);
      expect(r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([]);
    },
  );

  it('declares the monitoring, logging and ops namespaces, and every namespaced object lives in one of them or kube-system', () => {
    const declared = byKind('Namespace').map((n) => (n['metadata'] as { name: string }).name);
    expect(declared.sort()).toEqual(['logging', 'monitoring', 'ops']);
    for (const { doc } of all) {
      const ns = (doc['metadata'] as { namespace?: string }).namespace;
      if (ns !== undefined) expect([...declared, 'kube-system']).toContain(ns);
      const target = (doc['spec'] as { targetNamespace?: string } | undefined)?.targetNamespace;
      if (target !== undefined) expect(declared).toContain(target);
    }
  });

  it('binds the pi-image:operators group to a role that can read and cordon/drain nodes but not read Secrets', () => {
    const role = ClusterRole.parse(byKind('ClusterRole')[0]);
    const bindings = byKind('ClusterRoleBinding').map((b) => ClusterRoleBinding.parse(b));
    for (const b of bindings) expect(b.subjects).toContainEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'pi-image:operators' });
    expect(bindings.map((b) => b.roleRef.name).sort()).toEqual([role.metadata.name, 'view'].sort());
    const allows = (group: string, resource: string, verb: string) =>
      role.rules.some((r) => 'resources' in r && (r.apiGroups.includes(group) || r.apiGroups.includes('*')) && (r.resources.includes(resource) || r.resources.includes('*')) && (r.verbs.includes(verb as never) || r.verbs.includes('*')));
    expect(allows('', 'nodes', 'patch')).toBe(true);
    expect(allows('', 'pods/eviction', 'create')).toBe(true);
    expect(allows('', 'pods', 'list')).toBe(true);
    expect(allows('apps', 'daemonsets', 'get')).toBe(true);
    expect(allows('', 'secrets', 'get')).toBe(false);
    expect(allows('', 'secrets', 'list')).toBe(false);
  });

  it('leaves k3s’s default local-path class alone and adds a non-default Retain class the charts use', () => {
    const sc = StorageClass.parse(byKind('StorageClass')[0]);
    expect(sc.metadata.name).not.toBe('local-path');
    expect(sc.metadata.annotations?.['storageclass.kubernetes.io/is-default-class']).toBe('false');
    expect(sc.provisioner).toBe('rancher.io/local-path');
    expect(sc.reclaimPolicy).toBe('Retain');
    for (const chart of byKind('HelmChart')) expect(String((chart['spec'] as { valuesContent: string }).valuesContent)).toContain(sc.metadata.name);
  });

  it('HelmChart values parse and keep memory bounded (limits set, memcached caches off)', () => {
    const charts = byKind('HelmChart').map((c) => HelmChart.parse(c));
    expect(charts.map((c) => c.spec.chart).sort()).toEqual(['kube-prometheus-stack', 'loki']);
    for (const c of charts) {
      const values = parse(c.spec.valuesContent) as Record<string, unknown>;
      expect(values).toBeTypeOf('object');
      expect(c.spec.valuesContent).toMatch(/limits:\s*\{\s*memory:/);
    }
    const kps = parse(charts.find((c) => c.spec.chart === 'kube-prometheus-stack')!.spec.valuesContent) as {
      prometheus: { prometheusSpec: { retention: string } };
      alertmanager: { alertmanagerSpec: { useExistingSecret: boolean; configSecret: string } };
    };
    expect(kps.prometheus.prometheusSpec.retention).toMatch(/^\d+d$/);
    const secret = Secret.parse(byKind('Secret')[0]);
    expect(kps.alertmanager.alertmanagerSpec).toMatchObject({ useExistingSecret: true, configSecret: secret.metadata.name });
    const loki = parse(charts.find((c) => c.spec.chart === 'loki')!.spec.valuesContent) as Record<string, { enabled?: boolean }>;
    expect(loki['chunksCache']?.enabled).toBe(false);
    expect(loki['resultsCache']?.enabled).toBe(false);
  });

  it('the Secret carries manifests/alerting/alertmanager.yml verbatim', () => {
    const secret = Secret.parse(byKind('Secret')[0]);
    const plain = readFileSync(join(DIR, 'alerting', 'alertmanager.yml'), 'utf8');
    expect(secret.stringData['alertmanager.yaml'], 'paste manifests/alerting/alertmanager.yml into 40-alertmanager-config.yaml').toBe(plain);
  });

  it('the PrometheusRule carries the groups of manifests/alerting/rules.yml', () => {
    const rule = PrometheusRule.parse(byKind('PrometheusRule')[0]);
    const plain = parse(readFileSync(join(DIR, 'alerting', 'rules.yml'), 'utf8')) as { groups: unknown };
    expect(rule.spec.groups, 'paste the groups of manifests/alerting/rules.yml into 50-alert-rules.yaml').toEqual(plain.groups);
  });

  it('verify’s baseline is what the files declare', () => {
    const baseline = baselineFromManifests(FILES.map((f) => ({ path: `manifests/${f}`, contents: readFileSync(join(DIR, f), 'utf8') })));
    expect(baseline.namespaces.map((n) => n.name)).toEqual(byKind('Namespace').map((n) => (n['metadata'] as { name: string }).name).sort());
    const charts = byKind('HelmChart').map((c) => HelmChart.parse(c));
    expect(baseline.helmCharts).toEqual(
      charts
        .map((c) => ({ name: c.metadata.name, namespace: c.metadata.namespace!, chart: c.spec.chart, version: c.spec.version, targetNamespace: c.spec.targetNamespace, source: expect.stringMatching(/^manifests\/3\d-/) as unknown as string }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    );
  });
});
