/**
 * Node maintenance through the Kubernetes API, for `pi-image rebuild`: read a Node, cordon /
 * uncordon (merge-patch `spec.unschedulable`), list the pods on a node, evict them through the
 * Eviction API (policy/v1), and delete a Node or its k3s node-password Secret. Every call is bounded
 * by a timeout and every failure becomes a KubeApiError (src/adapters/kube.ts) with a hint;
 * "not found" is an answer, not an error. The RBAC these need is in manifests/10-rbac.yaml
 * (`pi-image:operator`), except deleting Secrets and Nodes, which needs the admin kubeconfig.
 */
import { ApiException, type ConfigurationOptions, CoreV1Api, PatchStrategy, setHeaderOptions, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { type KubeTarget, withApiDeadline } from './kube.js';

function call<T>(target: KubeTarget, timeoutMs: number, what: string, fn: (core: CoreV1Api, options: ConfigurationOptions) => Promise<T>): Promise<T> {
  return withApiDeadline(target, timeoutMs, what, (options) => fn(target.kc.makeApiClient(CoreV1Api), options));
}

const isStatus = (error: unknown, code: number): boolean => error instanceof ApiException && error.code === code;

/** Like `call`, but a 404 answers `notFound`. */
async function callOr<T, U>(target: KubeTarget, timeoutMs: number, what: string, notFound: U, fn: (core: CoreV1Api, options: ConfigurationOptions) => Promise<T>): Promise<T | U> {
  try {
    return await call(target, timeoutMs, what, fn);
  } catch (error) {
    if (isStatus((error as { cause?: unknown }).cause, 404)) return notFound;
    throw error;
  }
}

/** The Node, or undefined when it is not registered. */
export function readNode(target: KubeTarget, name: string, timeoutMs: number): Promise<V1Node | undefined> {
  return callOr(target, timeoutMs, `reading node ${name}`, undefined, (core, o) => core.readNode({ name }, o));
}

/** Cordon (true) or uncordon (false): merge-patches `spec.unschedulable`, as `kubectl cordon` does. */
export async function setUnschedulable(target: KubeTarget, name: string, unschedulable: boolean, timeoutMs: number): Promise<void> {
  await call(target, timeoutMs, `${unschedulable ? 'cordoning' : 'uncordoning'} node ${name}`, (core, o) =>
    core.patchNode({ name, body: { spec: { unschedulable } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch, o)),
  );
}

/** Every pod scheduled on the node (all namespaces, fieldSelector spec.nodeName). */
export async function listPodsOnNode(target: KubeTarget, name: string, timeoutMs: number): Promise<V1Pod[]> {
  const list = await call(target, timeoutMs, `listing the pods on node ${name}`, (core, o) => core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${name}` }, o));
  return list.items;
}

export type EvictionResult = { outcome: 'evicted' } | { outcome: 'gone' } | { outcome: 'refused'; message: string };

/**
 * Asks the Eviction API to evict one pod. 429 (a PodDisruptionBudget does not allow it now) is
 * `refused` with the API's message — retry later, as `kubectl drain` does; 404 is `gone`.
 */
export async function evictPod(target: KubeTarget, namespace: string, name: string, timeoutMs: number): Promise<EvictionResult> {
  try {
    await call(target, timeoutMs, `evicting pod ${namespace}/${name}`, (core, o) =>
      core.createNamespacedPodEviction(
        {
          name,
          namespace,
          body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace } },
        },
        o,
      ),
    );
    return { outcome: 'evicted' };
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    if (isStatus(cause, 404)) return { outcome: 'gone' };
    if (isStatus(cause, 429)) return { outcome: 'refused', message: statusMessage(cause) ?? 'a PodDisruptionBudget does not allow the eviction now' };
    throw error;
  }
}

function statusMessage(error: unknown): string | undefined {
  if (!(error instanceof ApiException)) return undefined;
  const body: unknown = error.body;
  try {
    const parsed = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: unknown } | undefined;
    return typeof parsed?.message === 'string' ? parsed.message : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a Secret exists (only its existence is looked at: `data` is never read into messages). */
export async function secretExists(target: KubeTarget, namespace: string, name: string, timeoutMs: number): Promise<boolean> {
  const found = await callOr(target, timeoutMs, `reading Secret ${namespace}/${name}`, false, async (core, o) => {
    await core.readNamespacedSecret({ name, namespace }, o);
    return true;
  });
  return found;
}

/** Deletes a Secret; false when there was none. */
export function deleteSecret(target: KubeTarget, namespace: string, name: string, timeoutMs: number): Promise<boolean> {
  return callOr(target, timeoutMs, `deleting Secret ${namespace}/${name}`, false, async (core, o) => {
    await core.deleteNamespacedSecret({ name, namespace }, o);
    return true;
  });
}

/** Deletes a Node object; false when there was none. */
export function deleteNode(target: KubeTarget, name: string, timeoutMs: number): Promise<boolean> {
  return callOr(target, timeoutMs, `deleting node ${name}`, false, async (core, o) => {
    await core.deleteNode({ name }, o);
    return true;
  });
}
