/**
 * What manifests/ declares, as verify expects it in the cluster: Namespaces and
 * `helm.cattle.io/v1` HelmCharts. Pure: the caller reads the files and passes their text in.
 */
import { parseAllDocuments } from 'yaml';
import { InputError } from '../errors.js';
import type { Baseline, ExpectedHelmChart } from './checks.js';

export interface ManifestFile {
  /** path as shown in messages, e.g. manifests/30-kube-prometheus-stack.yaml */
  path: string;
  contents: string;
}

interface Obj {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: { name?: unknown; namespace?: unknown };
  spec?: Record<string, unknown>;
}

/** Every non-empty YAML document of a multi-document file, as plain objects. Throws InputError on syntax errors. */
export function parseManifestDocs(file: ManifestFile): unknown[] {
  const docs = parseAllDocuments(file.contents, { prettyErrors: true });
  const problems: string[] = [];
  const out: unknown[] = [];
  for (const doc of docs) {
    for (const e of doc.errors) {
      const pos = e.linePos?.[0];
      problems.push(`${file.path}${pos ? `:${pos.line}:${pos.col}` : ''} ${e.message.split('\n')[0] ?? ''}`);
    }
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  if (problems.length > 0) {
    throw new InputError(`${file.path} is not valid YAML`, { details: problems, hint: 'fix the manifest; k3s would refuse to apply it too' });
  }
  return out;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Namespaces and HelmCharts declared across the given manifest files (sorted, de-duplicated). */
export function baselineFromManifests(files: readonly ManifestFile[]): Baseline {
  const namespaces = new Map<string, string>();
  const charts = new Map<string, ExpectedHelmChart>();
  for (const file of files) {
    for (const raw of parseManifestDocs(file)) {
      const o = raw as Obj;
      const name = str(o.metadata?.name);
      if (!name) continue;
      if (o.kind === 'Namespace' && o.apiVersion === 'v1') {
        if (!namespaces.has(name)) namespaces.set(name, file.path);
      } else if (o.kind === 'HelmChart' && o.apiVersion === 'helm.cattle.io/v1') {
        const namespace = str(o.metadata?.namespace) ?? 'kube-system';
        const spec = o.spec ?? {};
        const chart: ExpectedHelmChart = { name, namespace, chart: str(spec['chart']) ?? name, source: file.path };
        const version = str(spec['version']);
        if (version) chart.version = version;
        const target = str(spec['targetNamespace']);
        if (target) chart.targetNamespace = target;
        charts.set(`${namespace}/${name}`, chart);
      }
    }
  }
  return {
    namespaces: [...namespaces].map(([name, source]) => ({ name, source })).sort((a, b) => a.name.localeCompare(b.name)),
    helmCharts: [...charts.values()].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`)),
  };
}
