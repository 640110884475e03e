/**
 * A Kubernetes API STAND-IN for verify tests — not a real API server. A small HTTPS server on
 * 127.0.0.1 (self-signed certificate made with openssl, handed to the client as
 * certificate-authority-data, as in a k3s kubeconfig) serving just what `pi-image verify` reads:
 *   GET /api/v1/nodes, GET /api/v1/namespaces, GET /apis/helm.cattle.io/v1/helmcharts
 * with objects shaped like a real k3s v1.33 cluster's. Requests without the expected bearer token
 * get 401 with a real-shaped Status body. Tests mutate `nodes`/`namespaces`/`helmCharts` between
 * requests (e.g. flip a node to Ready while `verify --wait` polls).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TlsMaterial {
  certPem: string;
  keyPem: string;
}

/** A throwaway self-signed certificate for 127.0.0.1 (openssl; Debian package `openssl`). */
export function makeSelfSignedCert(cn = 'k3s'): TlsMaterial {
  const dir = mkdtempSync(join(tmpdir(), 'pi-image-standin-tls-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2',
      '-subj', `/O=k3s/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-addext', 'basicConstraints=critical,CA:TRUE',
    ], { stdio: 'pipe' });
    return { certPem: readFileSync(join(dir, 'cert.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface K3sNodeOptions {
  name: string;
  role: 'server' | 'agent';
  ip: string;
  /** embedded etcd server (k3s adds node-role.kubernetes.io/etcd=true); default true for servers */
  etcd?: boolean;
  ready?: 'True' | 'False' | 'Unknown';
  kubeletVersion?: string;
  arch?: string;
  labels?: Record<string, string>;
  taints?: { key: string; value?: string; effect: string }[];
  /** drop these labels after building (e.g. a server without its role label) */
  withoutLabels?: string[];
}

const T0 = '2025-11-30T09:12:44Z';

/** A Node object shaped like what a k3s v1.33 Raspberry Pi node reports (`kubectl get node -o json`). */
export function k3sNode(o: K3sNodeOptions): Record<string, unknown> {
  const version = o.kubeletVersion ?? 'v1.33.5+k3s1';
  const arch = o.arch ?? 'arm64';
  const ready = o.ready ?? 'True';
  const labels: Record<string, string> = {
    'beta.kubernetes.io/arch': arch,
    'beta.kubernetes.io/instance-type': 'k3s',
    'beta.kubernetes.io/os': 'linux',
    'kubernetes.io/arch': arch,
    'kubernetes.io/hostname': o.name,
    'kubernetes.io/os': 'linux',
    'node.kubernetes.io/instance-type': 'k3s',
    ...(o.role === 'server'
      ? {
          'node-role.kubernetes.io/control-plane': 'true',
          'node-role.kubernetes.io/master': 'true',
          ...((o.etcd ?? true) ? { 'node-role.kubernetes.io/etcd': 'true' } : {}),
        }
      : {}),
    ...o.labels,
  };
  for (const l of o.withoutLabels ?? []) delete labels[l];
  const taints = [
    ...(o.taints ?? []),
    ...(ready === 'Unknown'
      ? [{ key: 'node.kubernetes.io/unreachable', effect: 'NoSchedule', timeAdded: T0 }]
      : ready === 'False'
        ? [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule', timeAdded: T0 }]
        : []),
  ];
  const readyCondition =
    ready === 'True'
      ? { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }
      : ready === 'False'
        ? { type: 'Ready', status: 'False', reason: 'KubeletNotReady', message: 'container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized' }
        : { type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.' };
  const pressure = (type: string, reason: string, message: string): Record<string, string> => ({
    type,
    status: ready === 'Unknown' ? 'Unknown' : 'False',
    lastHeartbeatTime: T0,
    lastTransitionTime: T0,
    reason: ready === 'Unknown' ? 'NodeStatusUnknown' : reason,
    message: ready === 'Unknown' ? 'Kubelet stopped posting node status.' : message,
  });
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: o.name,
      uid: `0b6c1f7e-${o.name.length.toString(16).padStart(4, '0')}-4c1e-9d7a-${Buffer.from(o.name).toString('hex').slice(-12).padStart(12, '0')}`,
      resourceVersion: '48213',
      creationTimestamp: T0,
      labels,
      annotations: {
        'alpha.kubernetes.io/provided-node-ip': o.ip,
        'flannel.alpha.coreos.com/backend-data': '{"VNI":1,"VtepMAC":"2e:9a:41:10:7c:1d"}',
        'flannel.alpha.coreos.com/backend-type': 'vxlan',
        'flannel.alpha.coreos.com/kube-subnet-manager': 'true',
        'flannel.alpha.coreos.com/public-ip': o.ip,
        'k3s.io/hostname': o.name,
        'k3s.io/internal-ip': o.ip,
        'k3s.io/node-args': JSON.stringify(o.role === 'server' ? ['server', '--config', '/etc/rancher/k3s/config.yaml'] : ['agent', '--config', '/etc/rancher/k3s/config.yaml']),
        'k3s.io/node-config-hash': 'Q7X2KJ4NBB4VHKDHW5YKZ3M6QO2Q3HVUPKUUE7E6ETW2WZ7UO5KA====',
        'k3s.io/node-env': '{}',
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
      },
      finalizers: ['wrangler.cattle.io/node'],
    },
    spec: {
      podCIDR: '10.42.0.0/24',
      podCIDRs: ['10.42.0.0/24'],
      providerID: `k3s://${o.name}`,
      ...(taints.length > 0 ? { taints } : {}),
    },
    status: {
      addresses: [
        { type: 'InternalIP', address: o.ip },
        { type: 'Hostname', address: o.name },
      ],
      allocatable: { cpu: '4', 'ephemeral-storage': '61202667178', memory: '8048016Ki', pods: '110' },
      capacity: { cpu: '4', 'ephemeral-storage': '62914560Ki', memory: '8048016Ki', pods: '110' },
      conditions: [
        pressure('MemoryPressure', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        pressure('DiskPressure', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        pressure('PIDPressure', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        { ...readyCondition, lastHeartbeatTime: T0, lastTransitionTime: T0 },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        architecture: arch,
        bootID: '6f0e3a52-2b0c-4a53-9d0e-3c1f7f2b8e11',
        containerRuntimeVersion: 'containerd://2.1.4-k3s1',
        kernelVersion: '6.12.47+rpt-rpi-v8',
        kubeProxyVersion: version,
        kubeletVersion: version,
        machineID: 'e3b0c44298fc1c149afbf4c8996fb924',
        operatingSystem: 'linux',
        osImage: 'Debian GNU/Linux 13 (trixie)',
        systemUUID: 'e3b0c44298fc1c149afbf4c8996fb924',
      },
    },
  };
}

export function namespace(name: string, phase = 'Active'): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'kubernetes.io/metadata.name': name }, creationTimestamp: T0 },
    spec: { finalizers: ['kubernetes'] },
    status: { phase },
  };
}

/** A HelmChart as k3s's helm-controller reports it after a successful install. */
export function helmChart(o: { name: string; namespace?: string; chart: string; version?: string; targetNamespace?: string; failed?: string }): Record<string, unknown> {
  return {
    apiVersion: 'helm.cattle.io/v1',
    kind: 'HelmChart',
    metadata: { name: o.name, namespace: o.namespace ?? 'kube-system', creationTimestamp: T0 },
    spec: {
      chart: o.chart,
      ...(o.version ? { version: o.version } : {}),
      ...(o.targetNamespace ? { targetNamespace: o.targetNamespace } : {}),
    },
    status: {
      jobName: `helm-install-${o.name}`,
      conditions: o.failed
        ? [{ type: 'JobCreated', status: 'True' }, { type: 'Failed', status: 'True', reason: 'Error', message: o.failed }]
        : [{ type: 'JobCreated', status: 'True' }],
    },
  };
}

function list(kind: string, apiVersion: string, items: unknown[]): string {
  return JSON.stringify({ kind, apiVersion, metadata: { resourceVersion: '48213' }, items });
}

/**
 * An extra route (e.g. tests/helpers/rebuild-standin.ts: node PATCH/DELETE, pods, evictions,
 * Secrets). Tried in order before the built-in GET routes; `undefined` passes the request on,
 * `'drop'` closes the connection without an answer (an API that went away).
 */
export type StandinRoute = (req: {
  method: string;
  path: string;
  query: URLSearchParams;
  /** the parsed JSON body (undefined when empty or not JSON) */
  body: unknown;
  authorized: boolean;
}) => { status: number; body: unknown } | 'drop' | undefined;

export class KubeApiStandin {
  /** extra routes, tried first (see StandinRoute) */
  readonly routes: StandinRoute[] = [];
  nodes: Record<string, unknown>[] = [];
  namespaces: Record<string, unknown>[] = [];
  helmCharts: Record<string, unknown>[] = [];
  /** false: /apis/helm.cattle.io/v1/helmcharts answers 404 like a cluster without the CRD */
  servesHelmCharts = true;
  /** every request seen: method, path and whether its token matched */
  readonly requests: { method: string; path: string; authorized: boolean }[] = [];
  private server: Server | undefined;

  constructor(
    readonly token: string,
    readonly tls: TlsMaterial,
  ) {}

  /** Starts listening on 127.0.0.1 at a free port; resolves to the https URL. */
  async start(): Promise<string> {
    const server = createServer({ cert: this.tls.certPem, key: this.tls.keyPem }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.answer(req.method ?? 'GET', req.url ?? '/', req.headers.authorization, Buffer.concat(chunks).toString('utf8'), res));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  private answer(method: string, url: string, authorization: string | undefined, text: string, res: ServerResponse): void {
    const path = url.split('?')[0] ?? '/';
    const authorized = authorization === `Bearer ${this.token}`;
    this.requests.push({ method, path, authorized });
    const send = (status: number, body: string): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body);
    };
    const status = (code: number, reason: string, message: string): string =>
      JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    const query = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
    for (const route of this.routes) {
      const r = route({ method, path, query, body, authorized });
      if (r === 'drop') {
        res.socket?.destroy();
        return;
      }
      if (r !== undefined) return send(r.status, JSON.stringify(r.body));
    }
    if (!authorized) return send(401, status(401, 'Unauthorized', 'Unauthorized'));
    if (method !== 'GET') return send(405, status(405, 'MethodNotAllowed', 'the stand-in only serves GET'));
    if (path === '/api/v1/nodes') return send(200, list('NodeList', 'v1', this.nodes));
    if (path === '/api/v1/namespaces') return send(200, list('NamespaceList', 'v1', this.namespaces));
    if (path === '/apis/helm.cattle.io/v1/helmcharts' && this.servesHelmCharts) {
      return send(200, list('HelmChartList', 'helm.cattle.io/v1', this.helmCharts));
    }
    return send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/** Writes a kubeconfig (token auth, CA pinned) pointing at `server`; returns its path. */
export function writeKubeconfig(dir: string, o: { server: string; caPem: string; token: string; context?: string }): string {
  const ctx = o.context ?? 'pi-cluster';
  const path = join(dir, `kubeconfig-${ctx}.yaml`);
  const ca = Buffer.from(o.caPem).toString('base64');
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: ${ctx}`,
      '  cluster:',
      `    server: ${o.server}`,
      `    certificate-authority-data: ${ca}`,
      'users:',
      `- name: ${ctx}`,
      '  user:',
      `    token: ${o.token}`,
      'contexts:',
      `- name: ${ctx}`,
      '  context:',
      `    cluster: ${ctx}`,
      `    user: ${ctx}`,
      `current-context: ${ctx}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return path;
}
