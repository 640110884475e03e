/**
 * What a bake will do for one node, decided purely from the inventory, the rendered files and the
 * facts the adapters gathered (base image, air-gap files, manifests). `pi-image build --dry-run`
 * prints this plan; src/app/build.ts carries it out.
 */
import { InputError } from './errors.js';
import type { Inventory, NodeFileSet } from './model.js';
import { NODE_PATHS } from './render/paths.js';

/** A file copied from the build machine into the rootfs (large payloads: k3s binary, images, manifests). */
export interface PayloadFile {
  /** absolute path on the build machine */
  source: string;
  /** absolute path in the node's root filesystem */
  dest: string;
  mode: number;
  size: number;
}

export interface HostFile {
  name: string;
  path: string;
  size: number;
}

/** A change to a file the base image already has (the bake only adds files otherwise). */
export type RootfsEdit = { kind: 'remove'; path: string } | { kind: 'symlink'; path: string; target: string };

/** What the build learned about the base image's root filesystem. */
export interface BaseFacts {
  /**
   * Raspberry Pi's userconf-pi is installed (`/usr/bin/cancel-rename` or `userconfig.service`):
   * pi-gen's export runs `rename-user`, which leaves userconfig.service enabled and getty@tty1
   * disabled (pi-gen export-image/01-user-rename/01-run.sh; userconf-pi rename-user).
   */
  userconfPi: boolean;
}

/**
 * What userconf-pi's `cancel-rename` does on a console system (RPi-Distro/userconf-pi
 * cancel-rename: rm /var/lib/userconf-pi/autologin and /etc/ssh/sshd_config.d/rename_user.conf,
 * `systemctl disable userconfig`, `systemctl enable getty@tty1`), as edits of the rootfs.
 * userconfig.service is a oneshot on tty8, WantedBy=multi-user.target (debian/
 * userconf-pi.userconfig.service): left enabled it waits for an answer on the console, holding
 * multi-user.target, so cloud-final and the join unit never run on a headless node.
 */
export const USERCONF_GUARD: readonly RootfsEdit[] = [
  { kind: 'remove', path: '/etc/systemd/system/multi-user.target.wants/userconfig.service' },
  { kind: 'symlink', path: '/etc/systemd/system/getty.target.wants/getty@tty1.service', target: '/usr/lib/systemd/system/getty@.service' },
  { kind: 'remove', path: '/etc/ssh/sshd_config.d/rename_user.conf' },
  { kind: 'remove', path: '/var/lib/userconf-pi/autologin' },
];

export interface BakeInputs {
  /** the base image to copy (never modified) */
  basePath: string;
  baseName: string;
  /** final output path, e.g. build/images/pi-cluster-4.img (.xz/.zst appended when compressed) */
  output: string;
  compress: 'none' | 'xz' | 'zstd';
  /** files found in the cluster's airgapDir (absent when the cluster has none) */
  airgap?: { dir: string; files: readonly HostFile[] };
  /** manifests/*.yaml found for server images */
  manifests: readonly HostFile[];
  /** facts about the base's root filesystem (default: nothing to guard) */
  baseFacts?: BaseFacts;
}

export interface BakePlan {
  node: string;
  role: 'server' | 'agent';
  instanceId: string;
  base: { name: string; path: string };
  output: string;
  compress: BakeInputs['compress'];
  /** seed files written to the FAT partition (plus the transformed cmdline.txt) */
  boot: { path: string; bytes: number; secret: boolean }[];
  /** rendered files written into the rootfs */
  root: { path: string; mode: number; bytes: number; secret: boolean }[];
  payload: PayloadFile[];
  /** edits of files the base already has (the userconf-pi guard) */
  edits: RootfsEdit[];
}

export const AIRGAP_BINARY = 'k3s-arm64';
export const AIRGAP_INSTALLER = 'install.sh';
/** image tarball names k3s accepts in agent/images/, most compact first */
export const AIRGAP_IMAGES = ['k3s-airgap-images-arm64.tar.zst', 'k3s-airgap-images-arm64.tar.gz', 'k3s-airgap-images-arm64.tar'];
/** where a server image carries manifests/ (the join script copies them to <data-dir>/server/manifests) */
export const MANIFESTS_DIR = NODE_PATHS.manifestsStage;

function outputName(output: string, compress: BakeInputs['compress']): string {
  return compress === 'xz' ? `${output}.xz` : compress === 'zstd' ? `${output}.zst` : output;
}

/** The air-gap payload: binary, installer and one image tarball, or an InputError naming what is missing. */
export function airgapPayload(inventory: Inventory, airgap: NonNullable<BakeInputs['airgap']>): PayloadFile[] {
  const byName = new Map(airgap.files.map((f) => [f.name, f]));
  const images = AIRGAP_IMAGES.map((n) => byName.get(n)).find((f) => f !== undefined);
  const missing = [
    byName.has(AIRGAP_BINARY) ? undefined : AIRGAP_BINARY,
    byName.has(AIRGAP_INSTALLER) ? undefined : AIRGAP_INSTALLER,
    images ? undefined : AIRGAP_IMAGES[0],
  ].filter((x): x is string => x !== undefined);
  if (missing.length) {
    throw new InputError(`air-gap directory ${airgap.dir} (k3s.airgapDir in ${inventory.cluster.source}) lacks ${missing.join(', ')}`, {
      hint: `download them for ${inventory.cluster.k3s.version ?? 'your k3s version'} from the k3s release page (arm64) into ${airgap.dir}, or remove k3s.airgapDir to install over the network on first boot`,
    });
  }
  const bin = byName.get(AIRGAP_BINARY)!;
  const inst = byName.get(AIRGAP_INSTALLER)!;
  return [
    { source: bin.path, dest: NODE_PATHS.k3sBinary, mode: 0o755, size: bin.size },
    { source: inst.path, dest: NODE_PATHS.bakedInstaller, mode: 0o755, size: inst.size },
    { source: images!.path, dest: `${NODE_PATHS.airgapStage}/${images!.name}`, mode: 0o644, size: images!.size },
  ];
}

export function planBake(inventory: Inventory, set: NodeFileSet, inputs: BakeInputs): BakePlan {
  const node = inventory.nodes.find((n) => n.hostname === set.node);
  if (!node) throw new InputError(`${set.node} is not in the inventory`);
  const payload: PayloadFile[] = [];
  if (inputs.airgap) payload.push(...airgapPayload(inventory, inputs.airgap));
  if (node.role === 'server' && inventory.cluster.manifests) {
    for (const m of inputs.manifests) payload.push({ source: m.path, dest: `${MANIFESTS_DIR}/${m.name}`, mode: 0o600, size: m.size });
  }
  return {
    node: node.hostname,
    role: node.role,
    instanceId: set.instanceId,
    base: { name: inputs.baseName, path: inputs.basePath },
    output: outputName(inputs.output, inputs.compress),
    compress: inputs.compress,
    boot: set.files
      .filter((f) => f.target === 'boot')
      .map((f) => ({ path: f.path, bytes: Buffer.byteLength(f.contents), secret: f.secret }))
      .concat([{ path: 'cmdline.txt', bytes: 0, secret: false }]),
    root: set.files
      .filter((f) => f.target === 'root')
      .map((f) => ({ path: f.path, mode: f.mode, bytes: Buffer.byteLength(f.contents), secret: f.secret })),
    payload,
    edits: inputs.baseFacts?.userconfPi ? [...USERCONF_GUARD] : [],
  };
}

/**
 * Disk space a build needs in the output directory, from the allocated size of one node image
 * (sparse base + payload). Uncompressed images all stay. Compressed ones exist raw only while in the
 * works (--jobs being written and --jobs being hashed/compressed); their compressed outputs stay,
 * counted at half the raw size (OS images compress to well under that with xz or zstd).
 */
export function buildSpaceNeeded(perNode: number, nodes: number, jobs: number, compress: 'none' | 'xz' | 'zstd'): number {
  const margin = 64 * 1024 * 1024;
  if (compress === 'none') return perNode * nodes + margin;
  return perNode * Math.min(nodes, 2 * Math.max(1, jobs)) + Math.ceil((perNode * nodes) / 2) + margin;
}

/** Human-readable plan lines for --dry-run (no file contents). */
export function describePlan(plan: BakePlan): string[] {
  const lines = [
    `${plan.node} (${plan.role}, instance ${plan.instanceId}) → ${plan.output}`,
    `  copy base ${plan.base.name} (${plan.base.path}) sparsely; the base itself is not modified`,
    `  boot partition: ${plan.boot.map((b) => (b.path === 'cmdline.txt' ? 'cmdline.txt (+cgroup, ds=nocloud)' : b.path)).join(', ')}`,
  ];
  for (const r of plan.root) lines.push(`  rootfs: ${r.path} (0${r.mode.toString(8)}${r.secret ? ', secret' : ''})`);
  for (const p of plan.payload) lines.push(`  rootfs: ${p.dest} (0${p.mode.toString(8)}, ${p.size} bytes from ${p.source})`);
  if (plan.edits.length > 0) {
    lines.push('  rootfs: userconf-pi guard (as cancel-rename on a console system): userconfig.service disabled, getty@tty1 enabled, rename_user.conf removed');
  }
  if (plan.compress !== 'none') lines.push(`  compress with ${plan.compress}`);
  return lines;
}
