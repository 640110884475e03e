/**
 * Netboot export (I/O side of src/core/netboot.ts): turns a node's built image into
 *   DIR/tftp/<serial>/   the boot partition files (mtools, rootless) with the NFS-root cmdline.txt,
 *                        without the cloud-init seed (TFTP has no access control)
 *   DIR/nfs/<node>/      the root filesystem with modes, owners, symlinks, hard links, devices, and
 *                        the seed at /boot/firmware (0600)
 *   DIR/dnsmasq.d/pi-image.conf, DIR/exports, DIR/EEPROM.md
 * Every node's folders are staged next to their destination (private until complete) and renamed
 * into place, NFS root first; staging folders of a killed export are removed by the next one.
 *
 * Root filesystem extraction, rootless reading: `debugfs -R "rdump / X" "img?offset=N"` copies
 * contents and symlinks, but (measured with e2fsprogs 1.47.0) it drops setuid/setgid/sticky bits
 * (chmod before chown), does not set symlink owners, skips device nodes and FIFOs and turns hard
 * links into copies. So a second pass lists every inode with `ls -p` (one debugfs run per tree
 * level) and repairs the copy: lchown, then chmod (keeps setuid), link() for hard links, mknod
 * for devices/FIFOs. Writing files owned by other users needs root; reading the image does not.
 * Extended attributes (file capabilities) are not copied — see docs/runbooks/netboot.md.
 */
import { chmod, chown, lchown, link, lstat, mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EnvironmentError, InputError, IoError } from '../core/errors.js';
import { netbootCmdline, netbootFstab, type NetbootNodePlan, type NetbootPlan } from '../core/netboot.js';
import { ext4Batch, ext4Rdump, ext4Stat, type Ext4Volume } from './ext4.js';
import { fatCopyTreeOut, fatListAll, fatReadFile } from './fat.js';
import { inspectImage, type ImageLayout } from './partitions.js';
import { run, pidAlive } from './process.js';
import { atomicWriteFile } from './atomic-write.js';
import { removeOnSignal } from './image-files.js';


export interface RootfsStats {
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  specials: number;
  ms: number;
}

export interface NodeExportResult {
  node: string;
  serial: string;
  image: string;
  tftpDir: string;
  nfsDir: string;
  bootFiles: number;
  rootfs: RootfsStats;
}

// ── boot partition → tftp/<serial>/ ──────────────────────────────────────────────────────────────

/**
 * cloud-init's NoCloud seed on the boot partition (user-data holds the join token and the node
 * password, network-config the Wi-Fi PSK). The Pi firmware reads none of them: they go into the
 * node's NFS root only (/boot/firmware, 0600), never into the world-readable TFTP folder.
 */
export const SEED_FILES: readonly string[] = ['meta-data', 'user-data', 'network-config', 'vendor-data'];

/**
 * Copies the image's FAT partition into `dest` (created 0700, so nothing in it can be fetched while
 * it is being filled), drops the NoCloud seed files, then opens it up: files 0644, dirs 0755.
 * Returns the number of files kept.
 */
export async function copyBootPartition(image: string, layout: ImageLayout, dest: string): Promise<number> {
  await mkdir(dest, { recursive: false, mode: 0o700 });
  await chmod(dest, 0o700);
  await fatCopyTreeOut({ image, offset: layout.boot.startBytes }, dest);
  // FAT names are case-insensitive: USER-DATA is the same file to cloud-init's reader on a card
  for (const e of await readdir(dest)) {
    if (SEED_FILES.includes(e.toLowerCase())) await rm(join(dest, e), { recursive: true, force: true });
  }
  let count = 0;
  const fix = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await fix(p);
      else {
        await chmod(p, 0o644);
        count++;
      }
    }
    await chmod(dir, 0o755);
  };
  await fix(dest);
  return count;
}

/** The NoCloud seed files of the image's boot partition (name → bytes), read straight from the image. */
export async function readSeed(image: string, layout: ImageLayout): Promise<Map<string, Buffer>> {
  const v = { image, offset: layout.boot.startBytes };
  const present = await fatListAll(v);
  const seed = new Map<string, Buffer>();
  for (const name of SEED_FILES) {
    if (present.has(`/${name}`)) seed.set(name, await fatReadFile(v, `/${name}`));
  }
  return seed;
}

// ── ext4 root → nfs/<node>/ ──────────────────────────────────────────────────────────────────────

interface Entry {
  /** path relative to the fs root, starting with / */
  path: string;
  inode: number;
  mode: number;
  uid: number;
  gid: number;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

function dq(p: string): string {
  if (/["\n\r\\]/.test(p)) throw new IoError(`cannot export ${p}: its name contains a quote, backslash or newline`);
  return `"${p}"`;
}

/** Every inode in the filesystem with mode and owner, walking the tree level by level. */
export async function listExt4Tree(root: Ext4Volume): Promise<Entry[]> {
  const out: Entry[] = [];
  let level = ['/'];
  while (level.length > 0) {
    const sections = await ext4Batch(root, level.map((d) => `ls -p ${dq(d)}`), 'listing the root filesystem');
    const next: string[] = [];
    sections.forEach((section, i) => {
      const dir = level[i] ?? '/';
      for (const line of section.split('\n')) {
        const m = /^\/(\d+)\/([0-7]+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line.trim());
        if (!m) continue;
        const name = m[5] ?? '';
        if (name === '.' || name === '..' || name === '') continue;
        const e: Entry = {
          path: dir === '/' ? `/${name}` : `${dir}/${name}`,
          inode: Number(m[1]),
          mode: parseInt(m[2] ?? '0', 8),
          uid: Number(m[3]),
          gid: Number(m[4]),
        };
        out.push(e);
        if ((e.mode & S_IFMT) === S_IFDIR) next.push(e.path);
      }
    });
    level = next;
  }
  return out;
}

/** Major/minor numbers of device inodes (debugfs `stat`). */
async function deviceNumbers(root: Ext4Volume, paths: readonly string[]): Promise<Map<string, [number, number]>> {
  const res = new Map<string, [number, number]>();
  const sections = await ext4Batch(root, paths.map((p) => `stat ${dq(p)}`), 'reading device numbers');
  sections.forEach((s, i) => {
    const m = /Device major\/minor number:\s*(\d+):(\d+)/.exec(s);
    const p = paths[i];
    if (m && p !== undefined) res.set(p, [Number(m[1]), Number(m[2])]);
  });
  return res;
}

/**
 * Extracts the image's ext4 root filesystem into `dest` (must not exist) with modes, owners,
 * symlinks, hard links, device nodes and FIFOs. Needs root to set owners.
 */
export async function extractRootfs(image: string, layout: ImageLayout, dest: string): Promise<RootfsStats> {
  if (process.getuid?.() !== 0) {
    throw new EnvironmentError('extracting a root filesystem for NFS needs root: its files belong to root and other users', {
      hint: 'run `sudo pi-image netboot …` on the NFS server (reading the image itself needs no root)',
    });
  }
  const t0 = performance.now();
  const target: Ext4Volume = { image, offset: layout.root.startBytes };
  await mkdir(dest, { recursive: false, mode: 0o700 });
  await ext4Rdump(target, dest);

  const entries = await listExt4Tree(target);
  const stats: RootfsStats = { entries: entries.length, files: 0, dirs: 0, symlinks: 0, hardlinks: 0, specials: 0, ms: 0 };
  const specials = entries.filter((e) => [S_IFCHR, S_IFBLK].includes(e.mode & S_IFMT)).map((e) => e.path);
  const devnums = specials.length > 0 ? await deviceNumbers(target, specials) : new Map<string, [number, number]>();
  const firstPath = new Map<number, string>();
  const dirs: Entry[] = [];
  for (const e of entries) {
    const p = join(dest, e.path);
    const type = e.mode & S_IFMT;
    const perm = e.mode & 0o7777;
    if (type === S_IFDIR) {
      stats.dirs++;
      dirs.push(e);
      continue;
    }
    if (type === S_IFREG) {
      const first = firstPath.get(e.inode);
      if (first !== undefined) {
        await unlink(p);
        await link(first, p);
        stats.hardlinks++;
        continue;
      }
      firstPath.set(e.inode, p);
      stats.files++;
      await chown(p, e.uid, e.gid);
      await chmod(p, perm);
    } else if (type === S_IFLNK) {
      stats.symlinks++;
      await lchown(p, e.uid, e.gid);
    } else if (type === S_IFCHR || type === S_IFBLK || type === S_IFIFO) {
      stats.specials++;
      await rm(p, { force: true });
      const args = type === S_IFIFO ? [p, 'p'] : [p, type === S_IFCHR ? 'c' : 'b', ...(devnums.get(e.path) ?? [0, 0]).map(String)];
      await run('mknod', ['-m', perm.toString(8), ...args], { what: `creating ${e.path}` });
      await chown(p, e.uid, e.gid);
      await chmod(p, perm);
    }
    // sockets are not meaningful in an image; rdump skips them too
  }
  // directories last, deepest first, so a 0500 directory does not block its children
  for (const e of dirs.reverse()) {
    const p = join(dest, e.path);
    await chown(p, e.uid, e.gid);
    await chmod(p, e.mode & 0o7777);
  }
  const top = await ext4Stat(target, '/');
  await chown(dest, top?.uid ?? 0, top?.gid ?? 0);
  await chmod(dest, top?.mode ?? 0o755);
  stats.ms = performance.now() - t0;
  return stats;
}

// ── staging and placement ────────────────────────────────────────────────────────────────────────

/** `.<name>.tmp-<pid>` / `.<name>.old-<pid>`: a node folder being built or being replaced. */
const STAGING = /^\.(.+)\.(tmp|old)-(\d+)$/;

interface Staged {
  dest: string;
  tmp: string;
  /** stops removing `tmp` on a signal (once it is renamed into place or removed) */
  forget: () => void;
}

function stagingPaths(dest: string): { tmp: string; old: string } {
  const parent = dirname(dest);
  const base = dest.slice(parent.length + 1);
  return { tmp: join(parent, `.${base}.tmp-${process.pid}`), old: join(parent, `.${base}.old-${process.pid}`) };
}

/**
 * Builds `dest`'s new contents through `fn(tmp)` in a sibling staging folder, removed again on
 * failure and on SIGINT/SIGTERM until the caller has committed or dropped it (`forget`).
 */
async function stageDir(dest: string, fn: (tmp: string) => Promise<void>): Promise<Staged> {
  await mkdir(dirname(dest), { recursive: true });
  const { tmp } = stagingPaths(dest);
  await rm(tmp, { recursive: true, force: true });
  const forget = removeOnSignal(tmp);
  try {
    await fn(tmp);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    forget();
    throw err;
  }
  return { dest, tmp, forget };
}

/** Swaps a staged folder into place (the earlier one, if any, is removed afterwards). */
async function commitDir(s: Staged): Promise<void> {
  const { old } = stagingPaths(s.dest);
  let hadOld = false;
  try {
    await rename(s.dest, old);
    hadOld = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await rename(s.tmp, s.dest);
  s.forget();
  if (hadOld) await rm(old, { recursive: true, force: true });
}

/**
 * Removes staging folders (`tftp/.<serial>.tmp-<pid>`, `nfs/.<node>.old-<pid>` …) that an export
 * killed half-way left behind: those whose pid is no longer running. Returns what it removed.
 */
export async function removeStaleStaging(root: string): Promise<string[]> {
  const removed: string[] = [];
  for (const sub of ['tftp', 'nfs']) {
    const dir = join(root, sub);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const m = STAGING.exec(name);
      if (!m || pidAlive(Number(m[3]))) continue;
      await rm(join(dir, name), { recursive: true, force: true });
      removed.push(join(dir, name));
    }
  }
  return removed;
}


// ── per node ─────────────────────────────────────────────────────────────────────────────────────

/**
 * Exports one node from its built image. Both folders are staged first; the NFS root is put in
 * place before the TFTP folder, so an export stopped at any point never leaves a TFTP folder (what
 * a Pi boots from) without its root filesystem.
 */
export async function exportNode(node: NetbootNodePlan, image: string): Promise<NodeExportResult> {
  try {
    await stat(image);
  } catch {
    throw new InputError(`${node.node}: image ${image} does not exist`, { hint: `build it first: \`pi-image build ${node.node}\`` });
  }
  const layout = await inspectImage(image, { bootLabel: null, rootLabel: null });
  const seed = await readSeed(image, layout);
  let bootFiles = 0;
  let original = '';
  const staged: Staged[] = [];
  try {
    staged.push(
      await stageDir(node.tftpDir, async (tmp) => {
        bootFiles = await copyBootPartition(image, layout, tmp);
        const cmdlinePath = join(tmp, 'cmdline.txt');
        try {
          original = await readFile(cmdlinePath, 'utf8');
        } catch {
          throw new InputError(`${node.node}: image ${image} has no cmdline.txt on its boot partition`, { hint: 'is it a Raspberry Pi OS image built by `pi-image build`?' });
        }
        await writeFile(cmdlinePath, netbootCmdline(original, node), { mode: 0o644 });
      }),
    );

    let rootfs: RootfsStats | undefined;
    staged.push(
      await stageDir(node.nfsDir, async (tmp) => {
        rootfs = await extractRootfs(image, layout, tmp);
        const fstab = join(tmp, 'etc', 'fstab');
        let orig = '';
        try {
          orig = await readFile(fstab, 'utf8');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        const st = await lstat(fstab).catch(() => undefined);
        await mkdir(join(tmp, 'etc'), { recursive: true });
        await writeFile(fstab, netbootFstab(orig, node), { mode: st === undefined ? 0o644 : st.mode & 0o7777 });
        // cloud-init's NoCloud seed is read from /boot/firmware, which is no partition on a netbooted
        // Pi: put the seed (and the cmdline with its ds= token) there, readable by root only.
        const fw = join(tmp, 'boot', 'firmware');
        await mkdir(fw, { recursive: true, mode: 0o755 });
        for (const [name, data] of seed) {
          await writeFile(join(fw, name), data, { mode: 0o600 });
          await chmod(join(fw, name), 0o600);
        }
        await writeFile(join(fw, 'cmdline.txt'), netbootCmdline(original, node), { mode: 0o644 });
      }),
    );
    const [tftp, nfs] = staged as [Staged, Staged];
    await commitDir(nfs);
    staged.pop();
    await commitDir(tftp);
    staged.pop();
    return {
      node: node.node,
      serial: node.serial,
      image,
      tftpDir: node.tftpDir,
      nfsDir: node.nfsDir,
      bootFiles,
      rootfs: rootfs ?? { entries: 0, files: 0, dirs: 0, symlinks: 0, hardlinks: 0, specials: 0, ms: 0 },
    };
  } finally {
    for (const s of staged) {
      await rm(s.tmp, { recursive: true, force: true });
      s.forget();
    }
  }
}

/** Writes dnsmasq.d/pi-image.conf, exports and EEPROM.md below the plan's root. */
export async function writeSharedFiles(plan: NetbootPlan): Promise<string[]> {
  const files = [
    [join(plan.root, 'dnsmasq.d', 'pi-image.conf'), plan.files.dnsmasq],
    [join(plan.root, 'exports'), plan.files.exports],
    [join(plan.root, 'EEPROM.md'), plan.files.eeprom],
  ] as const;
  for (const [p, c] of files) await atomicWriteFile(p, c);
  return files.map(([p]) => p);
}

/** The host's IPv4 addresses (non-internal), for picking the default --server. */
export async function hostAddresses(): Promise<string[]> {
  const { networkInterfaces } = await import('node:os');
  return Object.values(networkInterfaces())
    .flat()
    .filter((a): a is NonNullable<typeof a> => a !== undefined && a.family === 'IPv4' && !a.internal)
    .map((a) => a.address);
}
