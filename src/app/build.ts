/**
 * `pi-image build`: render → copy the base sparsely → inspect it → write the seed, cmdline.txt and
 * rootfs payload → hash → (compress) → rename into place, with a build record beside the image.
 * The cached base is only ever read. Every output appears atomically or not at all.
 */
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { chmod, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { cacheDir, cachedImagePath, readCacheRecord, trustedSha256 } from '../adapters/image-cache.js';
import { decompressCommand, sniffCompression } from '../adapters/decompress.js';
import { type Ext4Op, hasUserconfPi, requireCloudInit } from '../adapters/ext4.js';
import { fatReadText } from '../adapters/fat.js';
import {
  allocatedBytes,
  ensureFreeSpace,
  fileSha256,
  formatBytes,
  PRIVATE_DIR_MODE,
  PRIVATE_FILE_MODE,
  removeStaleTemps,
  removeOnSignal,
  sparseCopy,
  tempPathFor,
  type TempOutputOptions,
  withTempOutput,
  writeRenderedFiles,
  writeTempFile,
} from '../adapters/image-files.js';
import { hashAndMapImage, type ImageDigest } from '../adapters/bmap.js';
import { bmapPathFor } from '../core/bmap.js';
import { type ImageLayout, inspectImage } from '../adapters/partitions.js';
import { packagePath } from '../adapters/paths.js';
import { run } from '../adapters/process.js';
import { type BakePlan, buildSpaceNeeded, type HostFile, planBake } from '../core/bake.js';
import { EnvironmentError, InputError, IoError } from '../core/errors.js';
import { assertKnownNodes } from '../core/node-selection.js';
import type { Inventory, NodeFileSet, RenderedFile, Secrets } from '../core/model.js';
import { transformCmdline } from '../core/render/cmdline.js';
import { fileDigest, renderInventory } from './render.js';
import { commitBuildOutputs, recordPath } from '../adapters/build-record.js';
import { acquireLock, type HeldLock } from '../adapters/lock.js';
import { BUILD_RECORD_VERSION, type BuildRecord } from '../core/build-record.js';

export interface BuildOptions {
  inventory: Inventory;
  /** hostnames; every node when empty */
  nodes: readonly string[];
  /** catalogue name or a path to a raw image; default: the cluster's image from the cache */
  base?: string;
  outDir: string;
  compress: 'none' | 'xz' | 'zstd';
  jobs: number;
  dryRun: boolean;
  /** hash a cached base even while its size, mtime and inode match its record (default: trust it) */
  verifyBase?: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  now: Date;
  toolVersion: string;
  /** progress of one node: phase name and fraction 0..1 */
  onProgress?: (node: string, phase: string, fraction: number) => void;
  /** a line worth telling the operator (e.g. stale temp files removed) */
  onNote?: (message: string) => void;
}

export interface BuildResult {
  plans: BakePlan[];
  records: BuildRecord[];
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Resolves --base: an existing file path, else a catalogue name in the cache. */
async function resolveBase(opts: BuildOptions): Promise<{ name: string; path: string; sha256?: string; trusted?: string }> {
  const wanted = opts.base ?? opts.inventory.cluster.baseImage;
  const looksLikePath = wanted.includes('/') || /\.(img|xz|zst|zstd|gz)$/i.test(wanted);
  if (looksLikePath) {
    const p = isAbsolute(wanted) ? wanted : resolve(opts.cwd, wanted);
    try {
      const st = await stat(p);
      if (!st.isFile()) throw new InputError(`--base ${wanted} is not a file`);
    } catch (e) {
      if (e instanceof InputError) throw e;
      throw new InputError(`base image ${wanted} does not exist`, { hint: 'pass --base PATH to a raw .img, or a catalogue name (pi-image images list)' });
    }
    const { compression } = await sniffCompression(p);
    if (compression !== 'none') {
      const name = basename(p).replace(/\.(img\.)?(xz|zst|zstd|gz)$/i, '').toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '') || 'my-base';
      throw new InputError(`--base ${wanted} is ${compression}-compressed; build reads a raw image`, {
        hint: `decompress it into the image cache once: pi-image images import ${wanted} --name ${name}, then build with --base ${name} (or image: ${name} in cluster.yaml); or decompress it yourself: ${decompressCommand(compression, wanted)}`,
      });
    }
    return { name: basename(p), path: p };
  }
  const dir = cacheDir(opts.env);
  const path = await cachedImagePath(dir, wanted);
  if (!path) {
    throw new EnvironmentError(`base image ${wanted} is not in the cache (${dir})`, {
      hint: `run \`pi-image images fetch ${wanted}\` (or \`pi-image images import FILE --name ${wanted}\` offline), or pass --base PATH`,
    });
  }
  const record = await readCacheRecord(dir, wanted);
  const trusted = await trustedSha256(dir, wanted);
  return record ? { name: wanted, path, sha256: record.sha256, ...(trusted ? { trusted } : {}) } : { name: wanted, path };
}

async function listHostFiles(dir: string, filter: (name: string) => boolean): Promise<HostFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: HostFile[] = [];
  for (const name of names.filter(filter).sort()) {
    const st = await stat(join(dir, name));
    if (st.isFile()) out.push({ name, path: join(dir, name), size: st.size });
  }
  return out;
}

/** The files on this machine a build copies into images: air-gap files (when configured) and manifests/*.yaml. */
export async function payloadInputs(inv: Inventory): Promise<{ airgap?: { dir: string; files: HostFile[] }; manifests: HostFile[] }> {
  const airgap = await airgapInputs(inv);
  const manifests = inv.cluster.manifests ? await listHostFiles(packagePath('manifests'), (n) => /\.ya?ml$/.test(n)) : [];
  return airgap ? { airgap, manifests } : { manifests };
}

async function airgapInputs(inv: Inventory): Promise<{ dir: string; files: HostFile[] } | undefined> {
  const rel = inv.cluster.k3s.airgapDir;
  if (!rel) return undefined;
  const dir = isAbsolute(rel) ? rel : join(inv.dir, rel);
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error('not a directory');
  } catch {
    throw new InputError(`air-gap directory ${dir} (k3s.airgapDir in ${inv.cluster.source}) does not exist`, {
      hint: 'create it with k3s-arm64, install.sh and k3s-airgap-images-arm64.tar.zst, or remove k3s.airgapDir',
    });
  }
  return { dir, files: await listHostFiles(dir, () => true) };
}

/** A stable hash of the validated inventory (without the local directory path). */
export function inventoryHash(inv: Inventory): string {
  return sha256(JSON.stringify({ cluster: { ...inv.cluster, source: undefined }, nodes: inv.nodes.map((n) => ({ ...n, source: undefined })) }));
}

async function compressFile(src: string, dest: string, kind: 'xz' | 'zstd', commit: TempOutputOptions): Promise<void> {
  await withTempOutput(dest, async (tmp) => {
    if (kind === 'xz') await run('sh', ['-c', 'umask 077 && xz -T0 -c -6 -- "$1" > "$2"', 'sh', src, tmp], { what: 'xz' });
    else await run('zstd', ['-q', '-T0', '-f', '-o', tmp, '--', src], { what: 'zstd' });
  }, commit);
}

/**
 * What the bakes of one build share. The digests are promises: they are computed once per build
 * (not per node), while the first images are being copied and written.
 */
interface BakeContext {
  base: Promise<BuildRecord['base']>;
  inputs: BuildRecord['inputs'];
  /** sha256 of a payload file by its path on the build machine */
  payloadSha256: (source: string) => Promise<string>;
  /**
   * Writing an image (copy, seed, payload) is disk-bound, hashing and compressing it CPU-bound:
   * each runs at most --jobs at a time, so one node's hash overlaps the next node's copy.
   */
  writing: Limiter;
  finishing: Limiter;
  /** aborted when the build fails: no new copies start, running hashes stop */
  signal: AbortSignal;
}

/** Bakes one node; returns its build record. */
async function bakeNode(
  plan: BakePlan,
  set: NodeFileSet,
  layout: ImageLayout,
  secrets: Secrets,
  shared: BakeContext,
  opts: BuildOptions,
): Promise<BuildRecord> {
  const progress = (phase: string, f: number) => opts.onProgress?.(plan.node, phase, f);
  const epoch = Math.floor(opts.now.getTime() / 1000);
  const rawOut = plan.compress === 'none' ? plan.output : plan.output.replace(/\.(xz|zst)$/, '');
  const injected: (RenderedFile & { uid?: number; gid?: number })[] = set.files.filter((f) => f.target === 'boot' || f.target === 'root');
  let rawSha = '';
  let finalSha = '';
  let digest: ImageDigest | undefined;

  const write = (tmp: string) =>
    shared.writing(async () => {
      shared.signal.throwIfAborted(); // another node failed: the build is over
      progress('copy', 0.05);
      await sparseCopy(plan.base.path, tmp);
      progress('seed', 0.4);
      const boot = { image: tmp, offset: layout.boot.startBytes };
      const cmdline = transformCmdline(await fatReadText(boot, '/cmdline.txt'), set.instanceId);
      const cmdlineFile: RenderedFile = { path: 'cmdline.txt', target: 'boot', mode: 0o755, contents: cmdline, secret: false };
      injected.push(cmdlineFile);
      // the payload (k3s binary, images, manifests) goes in the same debugfs run as any rendered
      // rootfs file, read by debugfs straight from the build machine (never held in memory)
      const payload: Ext4Op[] = [
        ...plan.edits,
        ...plan.payload.map((p): Ext4Op => ({ kind: 'copy', path: p.dest, source: p.source, mode: p.mode })),
      ];
      await writeRenderedFiles(tmp, layout, injected, { epoch, rootOps: payload });
      progress('hash', 0.75);
    });
  const hash = (path: string) => fileSha256(path, undefined, shared.signal);
  // the raw image's sha256 and its block map (bmaptool's format), hashed side by side
  const hashAndMap = async (path: string): Promise<string> => {
    digest = await hashAndMapImage(path, layout, shared.signal);
    return digest.sha256;
  };
  const bmapPath = bmapPathFor(plan.output);

  // the finished image stays under a temp name until it is put in place together with its record
  const finalTmp = tempPathFor(plan.output);
  const unregisterFinal = removeOnSignal(finalTmp);
  try {
    await rm(finalTmp, { force: true });
    if (plan.compress === 'none') {
      await write(finalTmp);
      rawSha = await shared.finishing(() => hashAndMap(finalTmp));
      await shared.base; // the base checked out before the image appears
      finalSha = rawSha;
    } else {
      // the raw image only ever exists under a temp name
      const kind = plan.compress;
      const rawTmp = tempPathFor(rawOut);
      const unregister = removeOnSignal(rawTmp);
      try {
        await write(rawTmp);
        await shared.finishing(async () => {
          rawSha = await hashAndMap(rawTmp);
          await shared.base; // the base checked out before the image appears
          progress('compress', 0.85);
          await compressFile(rawTmp, finalTmp, kind, { mode: PRIVATE_FILE_MODE });
          finalSha = await hash(finalTmp);
        });
      } finally {
        await rm(rawTmp, { force: true });
        unregister();
      }
    }
    const record = await recordOf(finalTmp);
    await chmod(finalTmp, PRIVATE_FILE_MODE); // the image holds the node's secrets
    // the block map is owner-only like the image. Its range sha256s are plain hashes of image
    // bytes: a range holding a low-entropy secret (a Wi-Fi passphrase in network-config) amid
    // bytes anyone can predict (a public base image) would let a reader test guesses offline —
    // what the record avoids with HMAC digests. Whoever flashes needs the image (0600) anyway.
    const bmapTmp = await writeTempFile(bmapPath, digest!.bmap.text, PRIVATE_FILE_MODE);
    try {
      await commitBuildOutputs({
        imageTmp: finalTmp,
        image: plan.output,
        record,
        recordPath: recordPath(opts.outDir, plan.node),
        companions: [{ tmp: bmapTmp.path, path: bmapPath }],
        // a build replaces the other forms of the node's image: no stale one stays beside the record
        replaces: ['', '.zst', '.xz'].map((ext) => `${rawOut}${ext}`),
      });
    } finally {
      await rm(bmapTmp.path, { force: true });
      bmapTmp.forget();
    }
    progress('done', 1);
    return record;
  } finally {
    await rm(finalTmp, { force: true });
    unregisterFinal();
  }

  /** The build record of the finished image (not yet in place). */
  async function recordOf(image: string): Promise<BuildRecord> {
    const finalSize = (await stat(image)).size;
    const payloadFiles = await Promise.all(
      plan.payload.map(async (p) => {
        const digest = await shared.payloadSha256(p.source);
        return { target: 'root' as const, path: p.dest, mode: `0${p.mode.toString(8)}`, bytes: p.size, secret: false, sha256: digest, digest: digest.slice(0, 12) };
      }),
    );
    const record: BuildRecord = {
      version: BUILD_RECORD_VERSION,
      node: plan.node,
      role: plan.role,
      instanceId: plan.instanceId,
      tool: { name: 'pi-image', version: opts.toolVersion },
      builtAt: opts.now.toISOString(),
      base: await shared.base,
      inputs: shared.inputs,
      image: {
        path: plan.output,
        sha256: finalSha,
        size: finalSize,
        compress: plan.compress,
        rawSha256: rawSha,
        bmap: { path: bmapPath, sha256: digest!.bmap.checksum, mappedBytes: digest!.bmap.mappedBytes },
      },
      files: [
        ...injected.map((f) => ({
          target: f.target as 'boot' | 'root',
          path: f.path,
          mode: `0${f.mode.toString(8)}`,
          bytes: Buffer.byteLength(f.contents),
          secret: f.secret,
          ...(f.secret ? {} : { sha256: sha256(f.contents) }),
          digest: fileDigest(f, secrets),
        })),
        ...payloadFiles,
      ],
    };
    return record;
  }
}

type Limiter = <R>(task: () => Promise<R>) => Promise<R>;

/** Runs the tasks given to it at most `n` at a time, in the order they arrive. */
function limiter(n: number): Limiter {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (active < n) active++;
    else await new Promise<void>((go) => waiting.push(go)); // the slot is handed over, `active` stays
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

export async function buildImages(opts: BuildOptions): Promise<BuildResult> {
  const inv = opts.inventory;
  assertKnownNodes(inv, opts.nodes);
  const selected = opts.nodes.length ? opts.nodes : inv.nodes.map((n) => n.hostname);

  const { loaded, templates, sets } = await renderInventory(inv, { env: opts.env, now: opts.now, only: selected });

  const base = await resolveBase(opts);
  const layout = await inspectImage(base.path);
  const rootVolume = { image: base.path, offset: layout.root.startBytes };
  await requireCloudInit(rootVolume);
  const baseFacts = { userconfPi: await hasUserconfPi(rootVolume) };
  const { airgap, manifests } = await payloadInputs(inv);

  const plans = sets.map((set) =>
    planBake(inv, set, {
      basePath: base.path,
      baseName: base.name,
      output: join(opts.outDir, `${set.node}.img`),
      compress: opts.compress,
      manifests,
      baseFacts,
      ...(airgap ? { airgap } : {}),
    }),
  );
  if (opts.dryRun) return { plans, records: [] };

  try {
    // a new output directory is owner-only: images hold the join token in their seed
    await mkdir(opts.outDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    for (const stale of await removeStaleTemps(opts.outDir)) {
      opts.onNote?.(`removed ${stale.path} (${formatBytes(stale.bytes)}), left by an interrupted build (process ${stale.pid} no longer runs)`);
    }
  } catch (cause) {
    throw new IoError(`cannot create output directory ${opts.outDir}: ${(cause as NodeJS.ErrnoException).code}`, {
      hint: 'pass --build-dir DIR pointing at a writable directory',
      cause,
    });
  }
  // one writer per node and output directory: a second build of the same node waits here, so two
  // processes never race on one image/record pair (taken in name order: no deadlock between
  // builds of overlapping node sets)
  const locks: HeldLock[] = [];
  try {
    for (const node of plans.map((p) => p.node).sort()) locks.push(await lockNode(opts, node));
    return await bakeAll(opts, plans, sets, layout, loaded, templates, base);
  } finally {
    for (const l of locks.reverse()) await l.release();
  }
}

/** The lock of `<out>/<node>.lock`, saying so when it waits for another build or takes over a dead one's. */
async function lockNode(opts: BuildOptions, node: string): Promise<HeldLock> {
  const path = join(opts.outDir, `${node}.lock`);
  const lock = await acquireLock(path, {
    what: `building ${node} into ${opts.outDir}`,
    waitMs: 60 * 60_000,
    onWait: (owner) =>
      opts.onNote?.(`waiting for ${path}: ${owner ? `process ${owner.pid} is ${owner.what} (since ${owner.since})` : 'another build holds it'}`),
    hint: `another pi-image build of ${node} into ${opts.outDir} is running; wait for it, or build into another --build-dir`,
  });
  if (lock.tookOverFrom) opts.onNote?.(`took over ${path}, left by an interrupted build (process ${lock.tookOverFrom.pid} no longer runs)`);
  return lock;
}

async function bakeAll(
  opts: BuildOptions,
  plans: BakePlan[],
  sets: NodeFileSet[],
  layout: ImageLayout,
  loaded: Awaited<ReturnType<typeof renderInventory>>['loaded'],
  templates: Awaited<ReturnType<typeof renderInventory>>['templates'],
  base: Awaited<ReturnType<typeof resolveBase>>,
): Promise<BuildResult> {
  const inv = opts.inventory;
  const jobs = Math.max(1, opts.jobs);
  const perNode = (await allocatedBytes(base.path)) + plans[0]!.payload.reduce((a, p) => a + p.size, 0);
  await ensureFreeSpace(opts.outDir, buildSpaceNeeded(perNode, plans.length, jobs, opts.compress), `building ${plans.length} image(s)`);

  // The base is hashed while the first node is copied: a --base path has no recorded sha256, and a
  // cached base whose file changed (size, mtime or inode differ from its record), or any cached
  // base with --verify-base, is re-verified against the sha256 recorded when it was fetched. No
  // image is renamed into place before this check has passed. An unchanged cached base is trusted.
  const stop = new AbortController();
  setMaxListeners(0, stop.signal); // one listener per running hash: payload files, base, images
  const baseDigest = base.trusted !== undefined && opts.verifyBase !== true ? Promise.resolve(base.trusted) : fileSha256(base.path, undefined, stop.signal);
  const baseInfo = baseDigest.then((digest) => {
    if (base.sha256 !== undefined && digest !== base.sha256) {
      throw new IoError(`cached base image ${base.name} (${base.path}) has changed since it was fetched: sha256 ${digest.slice(0, 12)}… ≠ recorded ${base.sha256.slice(0, 12)}…`, {
        hint: `fetch it again: pi-image images fetch ${base.name} --force (or import it again)`,
      });
    }
    return { name: base.name, path: base.path, sha256: digest, size: layout.sizeBytes };
  });
  const payloadDigests = new Map<string, Promise<string>>();
  for (const p of plans.flatMap((pl) => pl.payload)) {
    if (!payloadDigests.has(p.source)) payloadDigests.set(p.source, fileSha256(p.source, undefined, stop.signal));
  }
  // awaited when the records are written; until then a failure must not count as unhandled
  for (const pending of [baseInfo, ...payloadDigests.values()]) pending.catch(() => undefined);
  const shared: BakeContext = {
    base: baseInfo,
    inputs: {
      inventorySha256: inventoryHash(inv),
      templatesSha256: sha256(JSON.stringify(templates)),
      secretsVersion: loaded.version,
      secretsDigest: loaded.digest,
    },
    payloadSha256: (source) => payloadDigests.get(source) ?? fileSha256(source),
    writing: limiter(jobs),
    finishing: limiter(jobs),
    signal: stop.signal,
  };
  try {
    const records = await Promise.all(plans.map((plan) => bakeNode(plan, sets.find((s) => s.node === plan.node)!, layout, loaded.secrets, shared, opts)));
    return { plans, records };
  } finally {
    stop.abort(); // a failed build starts no more copies and does not wait for hashes it no longer needs
  }
}
