/**
 * `pi-image diff`: what reflashing a node would change (the node rendered now against what its last
 * build put into build/images/<node>.img, read back from the image's FAT and ext4 partitions, or by
 * hash from the build record when the image is gone), and what applying manifests/ would change in
 * the running cluster (`kubectl diff`). Secret values are masked before anything is diffed; the
 * pure work is in src/core/diff.ts.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { ext4ReadFile } from '../adapters/ext4.js';
import { fatReadFile } from '../adapters/fat.js';
import { inspectImage } from '../adapters/partitions.js';
import { packagePath } from '../adapters/paths.js';
import { run } from '../adapters/process.js';
import { readSecretsStore } from './secrets.js';
import { planBake } from '../core/bake.js';
import {
  builtSecretValues,
  type ClusterDiff,
  compareSecretsFromImage,
  compareSecretsFromRecord,
  contentDiff,
  type FileDiff,
  hashDiff,
  type MaskValue,
  type NodeDiff,
  nodeChanged,
  kubectlDiffObjects,
  maskPair,
  renderedSecretValues,
  type SecretChange,
  secretsOfRole,
} from '../core/diff.js';
import { ClusterError, EnvironmentError, InputError } from '../core/errors.js';
import type { Inventory, NodeFileSet, Secrets } from '../core/model.js';
import { transformCmdline } from '../core/render/cmdline.js';
import { SECRET_NAMES, type SecretName } from '../core/secrets.js';
import { readBuildRecord, recordPath } from '../adapters/build-record.js';
import { writeEvidenceFolder } from '../adapters/evidence.js';
import type { BuildRecord, BuildRecordFile } from '../core/build-record.js';
import { payloadInputs } from './build.js';
import { displayPath } from './inventory.js';
import { fileDigest, renderInventory } from './render.js';

export interface NodeDiffOptions {
  inventory: Inventory;
  /** hostnames; every node when empty */
  nodes: readonly string[];
  /** where `pi-image build` wrote <node>.img and <node>.json */
  buildDir: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
  now: Date;
}

export interface NodeDiffResult {
  nodes: NodeDiff[];
  secretsVersion: number;
  /**
   * Every secret value seen (current and read back from images), for a final redaction of anything
   * written or printed. Never print or serialise this.
   */
  secretValues: string[];
}

const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** Files that are diffed line by line when read back from the rootfs (the rest by hash). */
const TEXT_PAYLOAD = /\.(ya?ml|json|sh|conf|txt)$/;

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** The rootfs payload a build now would copy (manifests on servers, air-gap files), as planBake decides it. */
async function currentPayload(inv: Inventory, set: NodeFileSet): Promise<{ dest: string; source: string }[]> {
  const { airgap, manifests } = await payloadInputs(inv);
  const plan = planBake(inv, set, { basePath: '', baseName: '', output: '', compress: 'none', manifests, ...(airgap ? { airgap } : {}) });
  return plan.payload.map((p) => ({ dest: p.dest, source: p.source }));
}

/** When each secret last changed (created or rotated), from the store; read only when the digest differs. */
async function secretChangeTimes(inv: Inventory, env: NodeJS.ProcessEnv): Promise<Partial<Record<SecretName, string>>> {
  const { store } = await readSecretsStore(inv.dir, inv.cluster.name, { env });
  const out: Partial<Record<SecretName, string>> = {};
  for (const name of SECRET_NAMES) {
    const e = store.secrets[name];
    if (e) out[name] = e.rotatedAt ?? e.createdAt;
  }
  return out;
}

interface NodeContext {
  inv: Inventory;
  set: NodeFileSet;
  secrets: Secrets;
  secretsDigest: string;
  opts: NodeDiffOptions;
  /** collects every secret value seen */
  seen: Set<string>;
  changeTimes: () => Promise<Partial<Record<SecretName, string>>>;
}

/** A file a build now would write: its contents (boot), or its source on this machine (rootfs payload), and hashes. */
interface NowFile {
  target: 'boot' | 'root';
  contents?: string;
  source?: string;
  secret: boolean;
  /** fileDigest (HMAC for secret files), as in the build record */
  digest?: string;
  sha?: string;
}

type RecordFile = BuildRecordFile;

/** Every file of the record and of the build now (keyed `<target>:<path>`), paired up, record order first. */
function* pairFiles(
  record: BuildRecord,
  rendered: ReadonlyMap<string, NowFile>,
): Generator<{ rec?: RecordFile; now?: NowFile; target: 'boot' | 'root'; path: string; secret: boolean }> {
  const keys = new Set([...record.files.map((f) => `${f.target}:${f.path}`), ...rendered.keys()]);
  for (const key of keys) {
    const rec = record.files.find((f) => `${f.target}:${f.path}` === key);
    const now = rendered.get(key);
    yield {
      ...(rec ? { rec } : {}),
      ...(now ? { now } : {}),
      target: rec?.target ?? now!.target,
      path: rec?.path ?? key.slice(key.indexOf(':') + 1),
      secret: Boolean(rec?.secret || now?.secret),
    };
  }
}

async function diffNode(ctx: NodeContext): Promise<NodeDiff> {
  const { inv, set, secrets, opts } = ctx;
  const model = inv.nodes.find((n) => n.hostname === set.node)!;
  const show = (p: string) => displayPath(p, opts.cwd);
  const recPath = recordPath(opts.buildDir, set.node);
  const imgPath = join(opts.buildDir, `${set.node}.img`);
  const record = await readBuildRecord(recPath);
  const nowValues = renderedSecretValues(model.role, model.hostname, secrets);
  for (const v of nowValues) ctx.seen.add(v.value);
  const names = secretsOfRole(model.role, Boolean(inv.cluster.wifi));

  if (!record) {
    return {
      node: set.node,
      role: model.role,
      status: 'never-built',
      source: 'none',
      record: show(recPath),
      instanceId: { rendered: set.instanceId, changed: true },
      secrets: [],
      files: [],
      notes: [],
    };
  }

  const notes: string[] = [];
  const rendered = new Map<string, NowFile>();
  // rendered files a build writes into the boot partition and the rootfs (the rootfs ones, such as the
  // cloud-init seed-mount drop-in, are in the build record too)
  for (const f of set.files) {
    if (f.target !== 'boot' && f.target !== 'root') continue;
    rendered.set(`${f.target}:${f.path}`, { target: f.target, contents: f.contents, secret: f.secret, digest: fileDigest(f, secrets), ...(f.secret ? {} : { sha: sha256(f.contents) }) });
  }
  for (const p of await currentPayload(inv, set)) rendered.set(`root:${p.dest}`, { target: 'root', source: p.source, secret: false });

  const useImage = record.image?.compress === 'none' && (await isFile(imgPath));
  if (!useImage) {
    notes.push(
      record.image?.compress && record.image.compress !== 'none'
        ? `the image was built compressed (${record.image.compress}): compared by hash from the build record`
        : `${show(imgPath)} is gone: compared by hash from the build record`,
    );
  }

  const files: FileDiff[] = [];
  let secretChanges: SecretChange[];
  if (useImage) {
    const layout = await inspectImage(imgPath, { bootLabel: null, rootLabel: null });
    const boot = { image: imgPath, offset: layout.boot.startBytes };
    const root = { image: imgPath, offset: layout.root.startBytes };
    const built = new Map<string, string>();
    let mismatch = false;
    for (const f of record.files) {
      if (f.target !== 'boot') continue;
      const data = await fatReadFile(boot, `/${f.path.replace(/^\/+/, '')}`);
      if (f.sha256 && sha256(data) !== f.sha256) mismatch = true;
      built.set(f.path, data.toString('utf8'));
    }
    if (mismatch) notes.push(`${show(imgPath)} does not match its build record (changed after the build?): showing what the image holds`);
    const builtSecrets = builtSecretValues(record.role === 'server' ? 'server' : 'agent', built.get('user-data') ?? '', built.get('network-config'));
    for (const v of builtSecrets.values) ctx.seen.add(v.value);
    const mask: MaskValue[] = maskPair(builtSecrets.values, nowValues);
    secretChanges = compareSecretsFromImage(names, builtSecrets.values, nowValues);

    // cmdline.txt: what a build from the same base writes now (transformCmdline is idempotent)
    const builtCmdline = built.get('cmdline.txt');
    if (builtCmdline !== undefined) rendered.set('boot:cmdline.txt', { target: 'boot', contents: transformCmdline(builtCmdline, set.instanceId), secret: false });

    for (const { rec, now, target, path, secret } of pairFiles(record, rendered)) {
      if (target === 'boot') {
        files.push(
          contentDiff({
            node: set.node,
            target,
            path,
            secret,
            ...(rec ? { built: built.get(path) ?? '' } : {}),
            ...(now?.contents !== undefined ? { rendered: now.contents } : {}),
            mask,
            showContent: !secret || builtSecrets.complete,
          }),
        );
        continue;
      }
      // rootfs files (rendered ones and the payload): text files read back and diffed, the rest (k3s binary, image tarballs) by hash
      const nowData = now?.source ? await readFile(now.source) : now?.contents !== undefined ? Buffer.from(now.contents) : undefined;
      if (rec && nowData && !secret && TEXT_PAYLOAD.test(path) && rec.bytes <= 4 * 1024 * 1024) {
        const builtData = await ext4ReadFile(root, path);
        files.push(contentDiff({ node: set.node, target, path, secret, built: builtData.toString('utf8'), rendered: nowData.toString('utf8'), mask }));
      } else {
        files.push(hashDiff({ target, path, secret, ...(rec?.sha256 ? { built: rec.sha256 } : {}), ...(nowData ? { rendered: sha256(nowData) } : {}) }));
      }
    }
  } else {
    const changeTimes = record.inputs.secretsDigest === ctx.secretsDigest ? {} : await ctx.changeTimes();
    secretChanges = compareSecretsFromRecord(names, { secretsDigest: record.inputs.secretsDigest, builtAt: record.builtAt }, { digest: ctx.secretsDigest, changedAt: changeTimes });
    const cmdBase = record.base?.path && (await isFile(record.base.path)) ? record.base.path : undefined;
    if (cmdBase) {
      const layout = await inspectImage(cmdBase, { bootLabel: null, rootLabel: null });
      const line = (await fatReadFile({ image: cmdBase, offset: layout.boot.startBytes }, '/cmdline.txt')).toString('utf8');
      rendered.set('boot:cmdline.txt', { target: 'boot', secret: false, sha: sha256(transformCmdline(line, set.instanceId)) });
    }
    for (const { rec, now, target, path, secret } of pairFiles(record, rendered)) {
      if (target === 'boot' && path === 'cmdline.txt' && !now) {
        // base image gone too: cmdline.txt differs exactly when the ds=nocloud instance id does
        files.push(hashDiff({ target, path, secret, built: record.instanceId, rendered: set.instanceId, note: 'base image gone: decided by the instance id' }));
        continue;
      }
      const nowHash = now?.source ? sha256(await readFile(now.source)) : secret ? now?.digest : now?.sha;
      const builtHash = rec ? (rec.secret ? rec.digest : rec.sha256) : undefined;
      files.push(hashDiff({ target, path, secret, ...(builtHash ? { built: builtHash } : {}), ...(nowHash ? { rendered: nowHash } : {}) }));
    }
  }

  const partial: Omit<NodeDiff, 'status'> = {
    node: set.node,
    role: model.role,
    source: useImage ? 'image' : 'record',
    record: show(recPath),
    ...(useImage ? { image: show(imgPath) } : {}),
    builtAt: record.builtAt,
    instanceId: { built: record.instanceId, rendered: set.instanceId, changed: record.instanceId !== set.instanceId },
    secrets: secretChanges,
    files,
    notes,
  };
  if (record.role !== model.role) notes.push(`the node was built as ${record.role} and is now ${model.role}`);
  return { ...partial, status: nodeChanged(partial) ? 'changed' : 'unchanged' };
}

/** Diffs the selected nodes (every node when none is given) against their last builds. */
export async function diffNodes(opts: NodeDiffOptions): Promise<NodeDiffResult> {
  const inv = opts.inventory;
  const { loaded, sets } = await renderInventory(inv, { env: opts.env, now: opts.now, ...(opts.nodes.length ? { only: opts.nodes } : {}) });
  const seen = new Set<string>();
  let times: Promise<Partial<Record<SecretName, string>>> | undefined;
  const changeTimes = () => (times ??= secretChangeTimes(inv, opts.env));
  const nodes: NodeDiff[] = [];
  for (const set of sets) {
    nodes.push(await diffNode({ inv, set, secrets: loaded.secrets, secretsDigest: loaded.digest, opts, seen, changeTimes }));
  }
  for (const v of Object.values(loaded.secrets)) if (typeof v === 'string') seen.add(v);
  return { nodes, secretsVersion: loaded.version, secretValues: [...seen] };
}

// ─── cluster ───────────────────────────────────────────────────────────────────────────────────

export interface ClusterDiffOptions {
  /** default: the manifests/ pi-image ships (what server images carry) */
  manifestsDir?: string;
  kubeconfig?: string;
  context?: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** deadline for the API check before kubectl runs (default 30 s) */
  timeoutMs?: number;
}

const KUBECTL_HINT =
  'install kubectl (`apt-get install kubectl` from the Kubernetes apt repository at pkgs.k8s.io), or on a server node run `sudo k3s kubectl diff -f /var/lib/rancher/k3s/server/manifests/`';

/** kubectl's exit code decides (see below), so every code counts as "ran" for `run`. */
const ANY_EXIT = Array.from({ length: 256 }, (_, i) => i);

/** `kubectl diff -f <manifests>`: exit 0 = no differences, 1 = differences, anything else = an error. */
export async function diffCluster(opts: ClusterDiffOptions): Promise<ClusterDiff> {
  const dir = opts.manifestsDir ? (isAbsolute(opts.manifestsDir) ? opts.manifestsDir : join(opts.cwd, opts.manifestsDir)) : packagePath('manifests');
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error('not a directory');
  } catch {
    throw new InputError(`manifests directory ${displayPath(dir, opts.cwd)} does not exist`, { hint: 'pass --manifests DIR (default: the manifests/ pi-image ships)' });
  }
  // the kubeconfig and the API are checked as verify checks them (same errors, same exit codes),
  // so kubectl runs only against a cluster that answers and its noise is not the first thing seen
  const kube = await import('../adapters/kube.js');
  const target = kube.loadKubeConfig(kube.resolveKubeconfigPath({ flag: opts.kubeconfig, env: opts.env, cwd: opts.cwd }), opts.context);
  await kube.probeApi(target, opts.timeoutMs ?? 30_000);
  const args = ['diff', '-f', dir, '--kubeconfig', target.location.path, '--context', target.context];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.env)) if (typeof v === 'string') env[k] = v;
  let result;
  try {
    result = await run('kubectl', args, { env, cwd: opts.cwd, okExitCodes: ANY_EXIT, what: 'diffing manifests/ against the cluster' });
  } catch (e) {
    if (e instanceof EnvironmentError) throw new EnvironmentError('`kubectl` is not installed (pi-image diff --cluster runs `kubectl diff`)', { hint: KUBECTL_HINT, cause: e });
    throw e;
  }
  if (result.exitCode > 1) {
    // kubectl's own words, one line: its `error: …` line if it printed one, else its last line
    const lines = result.stderr.trim().split('\n').map((l) => l.trim()).filter(Boolean);
    const detail = (lines.find((l) => /^error:/i.test(l)) ?? lines[lines.length - 1] ?? '').replace(/^error:\s*/i, '');
    throw new ClusterError(`\`kubectl diff\` against ${target.server} (context ${target.context}) failed with exit code ${result.exitCode}${detail ? `: ${detail}` : ''}`, {
      hint: 'the API answered pi-image; check what kubectl says above, the RBAC of the kubeconfig user (manifests/10-rbac.yaml), and `pi-image verify`',
    });
  }
  const shownArgs = args.map((a) => displayPath(a, opts.cwd));
  return {
    status: result.exitCode === 1 ? 'changed' : 'unchanged',
    manifestsDir: displayPath(dir, opts.cwd),
    objects: kubectlDiffObjects(result.stdout),
    patch: result.stdout,
    kubectl: { args: shownArgs, exitCode: result.exitCode },
  };
}

// ─── evidence ──────────────────────────────────────────────────────────────────────────────────

/** docs/governance/reviews/, where review evidence goes unless --evidence says otherwise. */
export { DEFAULT_EVIDENCE_DIR } from '../core/defaults.js';

export interface EvidenceFiles {
  patch: string;
  summaryMd: string;
  summaryJson: unknown;
}

/**
 * Writes `<dir>/<YYYY-MM-DD>-<name>[-N]/{diff.patch,summary.md,summary.json}` and returns the folder.
 * Everything passes through `redact` with every secret value seen, so no value can be written.
 */
export async function writeDiffEvidence(dir: string, name: string, now: Date, files: EvidenceFiles, secretValues: readonly string[]): Promise<string> {
  return writeEvidenceFolder({
    root: dir,
    name,
    date: now,
    files: { 'diff.patch': files.patch, 'summary.md': files.summaryMd, 'summary.json': `${JSON.stringify(files.summaryJson, null, 2)}\n` },
    secretValues,
    hint: 'pass --evidence DIR pointing at a writable directory',
  });
}
