/**
 * Builds a real Raspberry-Pi-OS-layout disk image WITHOUT root, for integration tests:
 * a sparse file with an MBR (sfdisk), p1 at 8 MiB: 512 MiB FAT32 labelled `bootfs`
 * (mkfs.vfat --offset) holding cmdline.txt/config.txt and the commented-out seed files,
 * p2: ext4 labelled `rootfs` (mkfs.ext4 -d <dir> -E offset=…) with /etc/os-release and
 * /etc/cloud/cloud.cfg (+ the Pi's 99_raspberry-pi.cfg).
 *
 * Options produce broken variants (GPT, no FAT, no cloud-init, other labels) for negative tests.
 * Needs: fdisk (sfdisk), dosfstools, mtools, e2fsprogs — all rootless.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export const MiB = 1024 * 1024;

export interface PiOsImageOptions {
  /** where to create the image (a new temp dir when absent) */
  dir?: string;
  name?: string;
  /** partition table type (default dos) */
  table?: 'dos' | 'gpt';
  /** false: p1 is created but left unformatted (no FAT) */
  fat?: boolean;
  /** false: no /etc/cloud/cloud.cfg in the rootfs */
  cloudInit?: boolean;
  bootLabel?: string;
  rootLabel?: string;
  /** size of p2 (default 64 MiB) */
  rootMiB?: number;
  /** size of p1 (default 512 MiB, as Raspberry Pi OS) */
  bootMiB?: number;
  /** 8 hex digits (default 6c586e13) */
  diskId?: string;
  /** extra files in the rootfs, path (absolute) → contents */
  rootFiles?: Record<string, string>;
  /** extra files on the boot partition, name → contents */
  bootFiles?: Record<string, string>;
}

export interface PiOsImage {
  path: string;
  dir: string;
  diskId: string;
  bootOffset: number;
  bootSize: number;
  rootOffset: number;
  rootSize: number;
  cmdline: string;
  /** removes the temp dir (only when the helper created it) */
  cleanup(): Promise<void>;
}

const OS_RELEASE = `PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.2
ID=debian
HOME_URL="https://www.debian.org/"
`;

const CLOUD_CFG = `# minimal cloud.cfg for tests
users:
  - default
disable_root: true
cloud_init_modules: [seed_random, bootcmd, write_files, growpart, resizefs, set_hostname, update_hostname, users_groups, ssh]
cloud_config_modules: [runcmd]
cloud_final_modules: [scripts_user, final_message]
`;

const PI_CLOUD_CFG = `datasource_list: [ NoCloud, None ]
datasource:
  NoCloud:
    seedfrom: file:///boot/firmware
ssh_deletekeys: false
ssh_genkeytypes: []
`;

const CONFIG_TXT = `# For more options and information see
# http://rptl.io/configtxt
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
disable_fw_kms_setup=1
arm_64bit=1
disable_overscan=1
arm_boost=1

[cm4]
otg_mode=1

[all]
`;

async function sh(cmd: string, args: string[], input?: string): Promise<void> {
  await execa(cmd, args, input === undefined ? {} : { input });
}

export async function makePiOsImage(opts: PiOsImageOptions = {}): Promise<PiOsImage> {
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'pi-os-image-')));
  const path = join(dir, opts.name ?? 'base.img');
  const diskId = (opts.diskId ?? '6c586e13').toLowerCase();
  const bootSize = (opts.bootMiB ?? 512) * MiB;
  const rootSize = (opts.rootMiB ?? 64) * MiB;
  const bootOffset = 8 * MiB;
  const rootOffset = bootOffset + bootSize;
  const total = rootOffset + rootSize + (opts.table === 'gpt' ? MiB : 0);
  const cmdline = `console=serial0,115200 console=tty1 root=PARTUUID=${diskId}-02 rootfstype=ext4 fsck.repair=yes rootwait resize`;

  await rm(path, { force: true });
  await sh('truncate', ['-s', String(total), path]);
  const s = (bytes: number): number => bytes / 512;
  const table =
    opts.table === 'gpt'
      ? `label: gpt\nstart=${s(bootOffset)}, size=${s(bootSize)}, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\nstart=${s(rootOffset)}, size=${s(rootSize)}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n`
      : `label: dos\nlabel-id: 0x${diskId}\nstart=${s(bootOffset)}, size=${s(bootSize)}, type=c\nstart=${s(rootOffset)}, size=${s(rootSize)}, type=83\n`;
  await sh('sfdisk', ['-q', path], table);

  if (opts.fat !== false) {
    await sh('mkfs.vfat', ['-F', '32', '-n', opts.bootLabel ?? 'bootfs', '--offset', String(s(bootOffset)), path, String(bootSize / 1024)]);
    const stage = join(dir, `boot-stage-${process.pid}`);
    await mkdir(stage, { recursive: true });
    const bootFiles: Record<string, string> = {
      'cmdline.txt': `${cmdline}\n`,
      'config.txt': CONFIG_TXT,
      'meta-data': '# instance-id: rpios-image\n',
      'user-data': '#cloud-config\n# (commented out by default)\n',
      'network-config': '# network:\n#   version: 2\n',
      ...opts.bootFiles,
    };
    const locals: string[] = [];
    for (const [name, contents] of Object.entries(bootFiles)) {
      const local = join(stage, name);
      await writeFile(local, contents);
      locals.push(local);
    }
    await execa('mcopy', ['-i', `${path}@@${bootOffset}`, ...locals, '::/'], { env: { MTOOLS_SKIP_CHECK: '1' } });
    await rm(stage, { recursive: true, force: true });
  }

  const rootDir = join(dir, `root-stage-${process.pid}`);
  await rm(rootDir, { recursive: true, force: true });
  const rootFiles: Record<string, string> = {
    '/etc/os-release': OS_RELEASE,
    '/etc/hostname': 'raspberrypi\n',
    '/etc/fstab': `proc /proc proc defaults 0 0\nPARTUUID=${diskId}-01 /boot/firmware vfat defaults 0 2\nPARTUUID=${diskId}-02 / ext4 defaults,noatime 0 1\n`,
    ...(opts.cloudInit === false
      ? {}
      : { '/etc/cloud/cloud.cfg': CLOUD_CFG, '/etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg': PI_CLOUD_CFG }),
    ...opts.rootFiles,
  };
  for (const [p, contents] of Object.entries(rootFiles)) {
    const local = join(rootDir, p);
    await mkdir(join(local, '..'), { recursive: true });
    await writeFile(local, contents);
  }
  await mkdir(join(rootDir, 'boot/firmware'), { recursive: true });
  await sh('mkfs.ext4', [
    '-F', '-q', '-b', '4096', '-L', opts.rootLabel ?? 'rootfs', '-d', rootDir,
    '-E', `offset=${rootOffset},root_owner=0:0`, path, `${rootSize / 1024}k`,
  ]);
  await rm(rootDir, { recursive: true, force: true });

  return {
    path,
    dir,
    diskId,
    bootOffset,
    bootSize,
    rootOffset,
    rootSize,
    cmdline,
    cleanup: async () => {
      if (ownDir) await rm(dir, { recursive: true, force: true });
      else await rm(path, { force: true });
    },
  };
}

/** Copies byte range [offset, offset+size) of `image` into a sparse file `out` (for fsck.vfat). */
export async function extractPartition(image: string, offset: number, size: number, out: string): Promise<void> {
  await execa('dd', [
    `if=${image}`, `of=${out}`, 'bs=1M', `skip=${offset}`, `count=${size}`,
    'iflag=skip_bytes,count_bytes', 'conv=sparse', 'status=none',
  ]);
}

/** `fsck.vfat -n` on the boot partition (dosfstools has no --offset: checks an extracted copy). */
export async function fsckFat(image: string, offset: number, size: number): Promise<{ ok: boolean; output: string }> {
  const out = `${image}.p1-${process.pid}`;
  await extractPartition(image, offset, size, out);
  try {
    const r = await execa('fsck.vfat', ['-n', out], { reject: false, all: true });
    return { ok: r.exitCode === 0, output: String(r.all ?? '') };
  } finally {
    await rm(out, { force: true });
  }
}

/** `e2fsck -fn` on the root partition in place. */
export async function fsckExt4(image: string, offset: number): Promise<{ ok: boolean; output: string }> {
  const r = await execa('e2fsck', ['-fn', `${image}?offset=${offset}`], { reject: false, all: true });
  return { ok: r.exitCode === 0, output: String(r.all ?? '') };
}
