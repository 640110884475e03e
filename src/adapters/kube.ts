/**
 * The Kubernetes API (via @kubernetes/client-node): load a kubeconfig, take the snapshot verify
 * checks, and turn every failure into a typed error with a hint:
 *   - kubeconfig missing/unreadable/without the context → InputError / EnvironmentError
 *   - API down, timeout, 5xx → KubeApiError (ClusterError, exit 5, retryable under --wait)
 *   - 401/403, TLS verification failures → KubeApiError (not retryable)
 * No message ever contains a token, key or certificate from the kubeconfig.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { ApiException, type ConfigurationOptions, CoreV1Api, CustomObjectsApi, KubeConfig, Observable, type RequestContext, type ResponseContext, type V1Node } from '@kubernetes/client-node';
import { ClusterError, EnvironmentError, InputError } from '../core/errors.js';
import type { ClusterSnapshot, HelmChartState } from '../core/verify/checks.js';
import { elapsed, trace } from './trace.js';

export class KubeApiError extends ClusterError {
  readonly retryable: boolean;
  constructor(message: string, opts: { hint?: string; retryable: boolean; cause?: unknown }) {
    super(message, { hint: opts.hint, cause: opts.cause });
    this.retryable = opts.retryable;
  }
}

export interface KubeconfigLocation {
  path: string;
  /** where the path came from, for messages: --kubeconfig, $KUBECONFIG or ~/.kube/config */
  source: string;
}

/** `--kubeconfig` → first existing file of `$KUBECONFIG` → `~/.kube/config`. */
export function resolveKubeconfigPath(opts: { flag?: string; env: NodeJS.ProcessEnv; cwd: string; home?: string }): KubeconfigLocation {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(opts.cwd, p));
  if (opts.flag) return { path: abs(opts.flag), source: '--kubeconfig' };
  const fromEnv = (opts.env['KUBECONFIG'] ?? '').split(delimiter).filter((p) => p !== '');
  if (fromEnv.length > 0) {
    const first = fromEnv.map(abs).find((p) => existsSync(p)) ?? abs(fromEnv[0] ?? '');
    return { path: first, source: '$KUBECONFIG' };
  }
  const home = opts.home ?? opts.env['HOME'] ?? homedir();
  return { path: join(home, '.kube', 'config'), source: '~/.kube/config' };
}

export interface KubeTarget {
  kc: KubeConfig;
  context: string;
  server: string;
  location: KubeconfigLocation;
}

export function loadKubeConfig(location: KubeconfigLocation, context?: string): KubeTarget {
  const fetchHint = 'fetch one from the cluster with `pi-image kubeconfig --merge`, or pass --kubeconfig FILE';
  if (!existsSync(location.path)) {
    const msg = `no kubeconfig at ${location.path} (from ${location.source})`;
    if (location.source === '--kubeconfig') throw new InputError(msg, { hint: fetchHint });
    throw new EnvironmentError(msg, { hint: fetchHint });
  }
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(location.path);
  } catch (error) {
    const why = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new InputError(`${location.path} is not a usable kubeconfig: ${why}`, { hint: fetchHint });
  }
  const names = kc.getContexts().map((c) => c.name);
  if (context !== undefined) {
    if (!names.includes(context)) {
      throw new InputError(`--context ${context}: no such context in ${location.path}`, {
        hint: names.length > 0 ? `known contexts: ${names.join(', ')}` : fetchHint,
      });
    }
    kc.setCurrentContext(context);
  }
  const current = kc.getCurrentContext();
  const cluster = kc.getCurrentCluster();
  if (!current || !names.includes(current) || !cluster) {
    throw new InputError(`${location.path} has no current context${names.length > 0 ? '' : ' (and no contexts at all)'}`, {
      hint: names.length > 0 ? `pick one with --context (known: ${names.join(', ')})` : fetchHint,
    });
  }
  return { kc, context: current, server: cluster.server, location };
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
/** The peer answered, but not with TLS (an HTTP server, sshd, anything else on that port). */
const NOT_TLS_CODES = new Set(['EPROTO', 'ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST', 'ECONNRESET_TLS']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

function errorCode(error: unknown): string | undefined {
  let e: unknown = error;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function timeoutOf(error: unknown): number | undefined {
  const ms = (error as { timeoutMs?: unknown } | null)?.timeoutMs;
  return typeof ms === 'number' ? ms : undefined;
}
function formatSeconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

/** Maps whatever client-node threw into a KubeApiError that says what to do. */
export function toKubeApiError(error: unknown, target: Pick<KubeTarget, 'server' | 'context' | 'location'>, what: string): KubeApiError {
  if (error instanceof KubeApiError) return error;
  const at = `the Kubernetes API at ${target.server} (context ${target.context})`;
  if (error instanceof ApiException) {
    const status = error.code;
    if (status === 401) {
      return new KubeApiError(`${at} rejected the credentials while ${what} (401 Unauthorized)`, {
        retryable: false,
        hint: `the token or client certificate in ${target.location.path} is wrong, expired or from another cluster; fetch a fresh one with \`pi-image kubeconfig --merge\``,
        cause: error,
      });
    }
    if (status === 403) {
      return new KubeApiError(`${at} refused ${what} (403 Forbidden)`, {
        retryable: false,
        hint: 'the kubeconfig user lacks read access: bind it to the pi-image:operator ClusterRole (manifests/10-rbac.yaml) or use the admin kubeconfig',
        cause: error,
      });
    }
    return new KubeApiError(`${at} answered ${status} while ${what}`, {
      retryable: status >= 500 || status === 429,
      hint: 'the API server is up but unhappy: check `journalctl -u k3s` on the server',
      cause: error,
    });
  }
  const code = errorCode(error);
  if (code && TLS_CODES.has(code)) {
    return new KubeApiError(`TLS verification of ${target.server} failed while ${what} (${code})`, {
      retryable: false,
      hint: `the certificate-authority-data in ${target.location.path} does not match this server, or the address is not in the server certificate: re-fetch with \`pi-image kubeconfig --merge\`; to reach k3s by another name add it with k3s's --tls-san`,
      cause: error,
    });
  }
  if (code && (NOT_TLS_CODES.has(code) || code.startsWith('ERR_SSL_'))) {
    return new KubeApiError(`${target.server} did not answer with TLS while ${what} (${code}): whatever listens there is not the Kubernetes API`, {
      retryable: true,
      hint: `check the address and port in ${target.location.path} (k3s serves HTTPS on 6443); another service, or a plain-HTTP one, answers on this port`,
      cause: error,
    });
  }
  if (code === 'TIMEOUT') {
    const ms = timeoutOf(error);
    return new KubeApiError(`${at} did not answer${ms ? ` within ${formatSeconds(ms)}` : ' in time'} while ${what}`, {
      retryable: true,
      hint: 'is the server up and reachable from here? something accepted the connection or the packets went nowhere; raise --timeout, or use --wait while nodes boot',
      cause: error,
    });
  }
  if (code && NETWORK_CODES.has(code)) {
    return new KubeApiError(`cannot reach ${at} while ${what} (${code})`, {
      retryable: true,
      hint: `is k3s running on the server (\`systemctl status k3s\`) and is ${target.server} reachable from here? use --wait to wait for a booting cluster`,
      cause: error,
    });
  }
  const msg = error instanceof Error ? error.message.split('\n')[0] : String(error);
  return new KubeApiError(`${at} failed while ${what}: ${msg}`, {
    retryable: true,
    hint: `check that ${target.server} is the k3s API server (port 6443)`,
    cause: error,
  });
}

/**
 * One deadline for a group of API calls: every request carries the same AbortSignal (node-fetch
 * aborts the socket at whatever stage it is: TCP connect, TLS handshake, waiting for headers, or
 * reading the body), and the whole group is also raced against the clock, so a peer that accepts
 * the connection and never answers ends at the deadline and leaves no socket holding the process.
 */
export async function withApiDeadline<T>(
  target: Pick<KubeTarget, 'server' | 'context' | 'location'>,
  timeoutMs: number,
  what: string,
  fn: (options: ConfigurationOptions) => Promise<T>,
): Promise<T> {
  const ms = Math.max(1, timeoutMs);
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(Object.assign(new Error(`no answer within ${ms} ms`), { code: 'TIMEOUT', timeoutMs: ms }));
    }, ms);
  });
  // per-call options take Observable-style middleware (as client-node's own setHeaderOptions does)
  const options: ConfigurationOptions = {
    middleware: [
      {
        pre: (ctx: RequestContext) => {
          ctx.setSignal(controller.signal);
          trace(`kube: ${ctx.getHttpMethod()} ${ctx.getUrl()}`);
          return new Observable(Promise.resolve(ctx));
        },
        post: (ctx: ResponseContext) => {
          trace(`kube: ← ${ctx.httpStatusCode}`);
          return new Observable(Promise.resolve(ctx));
        },
      },
    ],
    middlewareMergeStrategy: 'append',
  };
  const started = performance.now();
  try {
    const result = await Promise.race([fn(options), expired]);
    trace(`kube: ${what} on ${target.server}: ok, ${elapsed(started)}`);
    return result;
  } catch (error) {
    trace(`kube: ${what} on ${target.server}: failed after ${elapsed(started)}`);
    if (controller.signal.aborted) throw toKubeApiError(Object.assign(new Error('timed out'), { code: 'TIMEOUT', timeoutMs: ms }), target, what);
    throw toKubeApiError(error, target, what);
  } finally {
    clearTimeout(timer);
    controller.abort(); // a request still in flight (another call of the group failed first) is ended too
  }
}

interface RawHelmChart {
  metadata?: { name?: string; namespace?: string };
  spec?: { chart?: string; version?: string; targetNamespace?: string };
  status?: { jobName?: string; conditions?: { type?: string; status?: string; reason?: string; message?: string }[] };
}

function toHelmChartState(o: RawHelmChart): HelmChartState {
  const s: HelmChartState = {
    name: o.metadata?.name ?? '',
    namespace: o.metadata?.namespace ?? 'kube-system',
    conditions: (o.status?.conditions ?? []).map((c) => ({
      type: c.type ?? '',
      status: c.status ?? '',
      ...(c.reason === undefined ? {} : { reason: c.reason }),
      ...(c.message === undefined ? {} : { message: c.message }),
    })),
  };
  if (o.spec?.chart !== undefined) s.chart = o.spec.chart;
  if (o.spec?.version !== undefined) s.version = o.spec.version;
  if (o.spec?.targetNamespace !== undefined) s.targetNamespace = o.spec.targetNamespace;
  if (o.status?.jobName !== undefined) s.jobName = o.status.jobName;
  return s;
}

/** Nodes, namespaces and HelmCharts in one go (requests in parallel, all within timeoutMs). */
export async function takeSnapshot(target: KubeTarget, timeoutMs: number, opts: { helmCharts?: boolean } = {}): Promise<ClusterSnapshot> {
  const core = target.kc.makeApiClient(CoreV1Api);
  const custom = target.kc.makeApiClient(CustomObjectsApi);
  const wantCharts = opts.helmCharts ?? true;
  const [nodes, namespaces, charts] = await withApiDeadline(target, timeoutMs, 'reading nodes, namespaces and HelmCharts', (options) =>
    Promise.all([
      core.listNode({}, options).catch((error: unknown) => {
        throw toKubeApiError(error, target, 'listing nodes');
      }),
      core.listNamespace({}, options).catch((error: unknown) => {
        throw toKubeApiError(error, target, 'listing namespaces');
      }),
      wantCharts
        ? (custom.listClusterCustomObject({ group: 'helm.cattle.io', version: 'v1', plural: 'helmcharts' }, options) as Promise<{ items?: RawHelmChart[] }>).catch((error: unknown) => {
            if (error instanceof ApiException && error.code === 404) return null;
            throw toKubeApiError(error, target, 'listing helm.cattle.io/v1 HelmCharts');
          })
        : Promise.resolve({ items: [] as RawHelmChart[] }),
    ]),
  );
  return {
    nodes: nodes.items as V1Node[],
    namespaces: namespaces.items.map((n) => ({ name: n.metadata?.name ?? '', ...(n.status?.phase ? { phase: n.status.phase } : {}) })),
    helmCharts: charts === null ? null : (charts.items ?? []).map(toHelmChartState),
  };
}

export function isRetryable(error: unknown): boolean {
  return error instanceof KubeApiError && error.retryable;
}

/** One cheap read (a namespace list of one) under the deadline: does this kubeconfig reach a working API? */
export async function probeApi(target: KubeTarget, timeoutMs: number): Promise<void> {
  const core = target.kc.makeApiClient(CoreV1Api);
  await withApiDeadline(target, timeoutMs, 'checking that the API answers', (options) => core.listNamespace({ limit: 1 }, options));
}
