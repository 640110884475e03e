/**
 * Rendering at the application level: inventory + secrets → per-node file sets (pure core), and
 * writing them for review to build/<node>/ (boot/ = the FAT seed, rootfs/ = files user-data carries).
 * Used by `pi-image render` and `pi-image build`.
 */
import { createHash, createHmac } from 'node:crypto';
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { loadTemplates } from '../adapters/templates.js';
import { atomicWriteFile } from '../adapters/atomic-write.js';
import { type LoadedSecrets, loadSecrets } from './secrets.js';
import { IoError } from '../core/errors.js';
import type { Inventory, NodeFileSet, RenderedFile, Secrets } from '../core/model.js';
import { renderNodeFiles } from '../core/render/node.js';
import type { Templates } from '../core/render/templates.js';

export interface RenderNodesOptions {
  /** hostnames to render; all nodes when absent */
  only?: readonly string[];
  /** year the image is built in (the join script waits for a clock at least this late) */
  buildYear: number;
  /** template sources; read from the package's cloud-init/ when absent */
  templates?: Templates;
}

/** Renders the file sets of the selected nodes (every node by default), in inventory order. */
export async function renderNodes(inventory: Inventory, secrets: Secrets, opts: RenderNodesOptions): Promise<NodeFileSet[]> {
  const templates = opts.templates ?? (await loadTemplates());
  return renderNodeFiles(inventory, secrets, templates, {
    buildYear: opts.buildYear,
    ...(opts.only ? { only: opts.only } : {}),
  });
}

export interface RenderInventoryOptions {
  env: NodeJS.ProcessEnv;
  now: Date;
  /** hostnames; every node when absent */
  only?: readonly string[];
}

/**
 * Loads the cluster secrets and renders the selected nodes: the first step of render, build, diff
 * and boot-test. The secrets store must exist (`pi-image secrets init`): nothing is created here.
 */
export async function renderInventory(
  inventory: Inventory,
  opts: RenderInventoryOptions,
): Promise<{ loaded: LoadedSecrets; templates: Templates; sets: NodeFileSet[] }> {
  const loaded = await loadSecrets(inventory.dir, inventory.cluster.name, {
    env: opts.env,
    wifiRequired: inventory.cluster.wifi !== undefined,
  });
  const templates = await loadTemplates();
  const sets = await renderNodes(inventory, loaded.secrets, {
    buildYear: buildYearFrom(opts.env, opts.now),
    templates,
    ...(opts.only ? { only: [...new Set(opts.only)] } : {}),
  });
  return { loaded, templates, sets };
}

/**
 * The build year: from SOURCE_DATE_EPOCH when set (reproducible builds), else the current UTC year.
 */
export function buildYearFrom(env: NodeJS.ProcessEnv, now: Date): number {
  const epoch = env.SOURCE_DATE_EPOCH;
  if (epoch && /^\d+$/.test(epoch)) return new Date(Number(epoch) * 1000).getUTCFullYear();
  return now.getUTCFullYear();
}

/** Where a rendered file goes under build/<node>/. */
export function reviewPath(file: RenderedFile): string {
  const rel = file.path.replace(/^\/+/, '');
  return file.target === 'boot' ? join('boot', rel) : join('rootfs', rel);
}

export interface WrittenFile {
  target: RenderedFile['target'];
  /** the file's path on its target (FAT root or rootfs) */
  path: string;
  /** where it was written, relative to the output directory */
  file: string;
  mode: string;
  bytes: number;
  secret: boolean;
  /**
   * 12 hex digits identifying the contents: sha256 for ordinary files; for files with secrets an
   * HMAC-SHA256 keyed with the node-password seed, so a low-entropy secret (a Wi-Fi passphrase)
   * cannot be guessed offline from the printed value.
   */
  digest: string;
}

export interface WrittenNode {
  node: string;
  instanceId: string;
  /** the node's directory: <outDir>/<node> */
  dir: string;
  files: WrittenFile[];
}

/** Name of the per-node manifest render writes (lists the files it wrote; no contents). */
export const MANIFEST = 'render.json';

export function fileDigest(file: RenderedFile, secrets: Secrets): string {
  const h = file.secret ? createHmac('sha256', secrets.nodePasswordSeed) : createHash('sha256');
  return h.update(file.contents, 'utf8').digest('hex').slice(0, 12);
}

async function previousFiles(nodeDir: string): Promise<string[]> {
  try {
    const manifest = JSON.parse(await readFile(join(nodeDir, MANIFEST), 'utf8')) as { files?: { file?: unknown }[] };
    return (manifest.files ?? []).flatMap((f) => (typeof f.file === 'string' ? [f.file] : []));
  } catch {
    return [];
  }
}

/**
 * Writes each file set to <outDir>/<node>/ (boot/…, rootfs/…, render.json), every file atomically
 * (temp file + rename); files with secrets are 0600 and the node directory 0700. Files a previous
 * render wrote that are no longer rendered are removed; nothing else in the directory is touched.
 */
export async function writeNodeFiles(outDir: string, sets: readonly NodeFileSet[], secrets: Secrets): Promise<WrittenNode[]> {
  const written: WrittenNode[] = [];
  for (const set of sets) {
    const nodeDir = join(outDir, set.node);
    try {
      await mkdir(nodeDir, { recursive: true, mode: 0o700 });
      await chmod(nodeDir, 0o700);
    } catch (cause) {
      throw new IoError(`cannot create ${nodeDir}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, {
        hint: 'check that the output directory is writable (or pass --out DIR)',
        cause,
      });
    }
    const stale = new Set(await previousFiles(nodeDir));
    const files: WrittenFile[] = [];
    for (const f of set.files) {
      const rel = reviewPath(f);
      const mode = f.secret ? 0o600 : f.mode;
      await atomicWriteFile(join(nodeDir, rel), f.contents, mode);
      stale.delete(rel.split(sep).join('/'));
      files.push({
        target: f.target,
        path: f.path,
        file: rel.split(sep).join('/'),
        mode: `0${mode.toString(8)}`,
        bytes: Buffer.byteLength(f.contents, 'utf8'),
        secret: f.secret,
        digest: fileDigest(f, secrets),
      });
    }
    for (const rel of stale) {
      if (rel.startsWith('/') || rel.split('/').includes('..')) continue;
      await rm(join(nodeDir, rel), { force: true });
    }
    await atomicWriteFile(
      join(nodeDir, MANIFEST),
      `${JSON.stringify({ node: set.node, instanceId: set.instanceId, files }, null, 2)}\n`,
      0o644,
    );
    written.push({ node: set.node, instanceId: set.instanceId, dir: nodeDir, files });
  }
  return written;
}
