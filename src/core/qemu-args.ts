/**
 * The pure half of booting a Pi-OS-layout image under `qemu-system-aarch64 -M virt`: the kernel
 * command line for the virt board, config.txt's kernel/initramfs, and the QEMU argument list. No
 * I/O: the process lifecycle (boot-file extraction, start, QMP, stop) is src/adapters/qemu.ts.
 */

/** `kernel=` and `initramfs <file>` from a Pi config.txt (last one wins, section filters ignored). */
export function parseConfigTxt(text: string): { kernel?: string; initramfs?: string } {
  const out: { kernel?: string; initramfs?: string } = {};
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    let m = /^kernel\s*=\s*(\S+)/.exec(line);
    if (m?.[1] !== undefined) out.kernel = m[1];
    m = /^initramfs\s+(\S+)/.exec(line);
    if (m?.[1] !== undefined) out.initramfs = m[1];
  }
  return out;
}

/**
 * The Pi's cmdline.txt adjusted for `-M virt`: drops `console=` (serial0/tty1 do not exist there),
 * `root=` (PARTUUID would work but the virt disk is always vda), Pi-firmware-only and first-boot
 * tokens (`resize`, `init=…raspberrypi…`, `splash`, `quiet`, `plymouth.*`), then puts
 * `console=ttyAMA0 root=/dev/vda2 rootwait net.ifnames=0` first. Everything else — `cgroup_*`,
 * `ds=nocloud;…`, `fsck.repair`, `rootfstype` — is kept in order. `extra` tokens are appended.
 */
export function virtCmdline(piCmdline: string, extra: readonly string[] = []): string {
  const drop = (t: string): boolean =>
    t.startsWith('console=') ||
    t.startsWith('root=') ||
    t === 'resize' ||
    t === 'splash' ||
    t === 'quiet' ||
    t.startsWith('plymouth.') ||
    (t.startsWith('init=') && t.includes('raspberrypi')) ||
    t === 'rootwait' ||
    t.startsWith('net.ifnames=');
  const kept = piCmdline.split(/\s+/).filter((t) => t !== '' && !drop(t));
  return ['console=ttyAMA0', 'root=/dev/vda2', 'rootwait', 'net.ifnames=0', ...kept, ...extra].join(' ');
}

/**
 * QEMU user-mode ("slirp") network shaped like the node's LAN, so an image with a static address
 * works: the guest is `guest` inside `cidr`, the host side (gateway, and what forwarded
 * connections come from) is `host`, DHCP would hand out `guest` too.
 */
export interface UserNetwork {
  kind?: 'user';
  /** e.g. 192.168.50.0/24 */
  cidr: string;
  /** the gateway address inside cidr, e.g. 192.168.50.1 */
  host: string;
  /** the node's address, e.g. 192.168.50.11 */
  guest: string;
  /** DNS server address inside cidr (slirp default: .3 of the network) */
  dns?: string;
}

/**
 * A tap device (made beforehand, e.g. on a bridge inside a network namespace): the guest is on that
 * LAN with its own MAC, as a Pi on a switch. No port forwards: the LAN reaches the guest directly.
 */
export interface TapNetwork {
  kind: 'tap';
  /** the tap interface, e.g. `tap-pi2` */
  ifname: string;
  /** the NIC's MAC address, e.g. 52:54:00:00:00:12 (unicast, locally administered is best) */
  mac: string;
}

export type VmNetwork = UserNetwork | TapNetwork;

/** What one VM is booted with; every path is already resolved. */
export interface QemuSpec {
  kernel: string;
  initrd?: string | undefined;
  cmdline: string;
  image: string;
  /** write changes into the image (default false: `snapshot=on`) */
  writable?: boolean;
  disks?: readonly string[];
  cpu?: string;
  cpus?: number;
  memoryMiB?: number;
  /** user networking (default slirp 10.0.2.0/24 with DHCP) or a tap on a bridge */
  network?: VmNetwork;
  /** guest port → port on 127.0.0.1 (user networking only) */
  forwards?: ReadonlyMap<number, number>;
  consoleLog: string;
  qmpSocket: string;
  extraArgs?: readonly string[];
}

/** qemu -drive/-chardev option values: a comma must be doubled. */
export function escapeQemuOpt(v: string): string {
  return v.replace(/,/g, ',,');
}

/** The `-netdev`/`-device` pair of the VM's one NIC. */
export function netArgs(network: VmNetwork | undefined, forwards: ReadonlyMap<number, number> = new Map()): string[] {
  if (network?.kind === 'tap') {
    if (forwards.size > 0) throw new Error('port forwards need user networking; a tap VM is reached on its LAN address');
    return ['-netdev', `tap,id=n0,ifname=${network.ifname},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=n0,mac=${network.mac},romfile=`];
  }
  const guestAddr = network?.guest ?? '';
  const hostfwd = [...forwards].map(([guest, host]) => `hostfwd=tcp:127.0.0.1:${host}-${guestAddr}:${guest}`);
  const net = network === undefined ? [] : [`net=${network.cidr}`, `host=${network.host}`, `dhcpstart=${network.guest}`, ...(network.dns === undefined ? [] : [`dns=${network.dns}`])];
  return ['-netdev', ['user', 'id=n0', ...net, ...hostfwd].join(','), '-device', 'virtio-net-pci,netdev=n0,romfile='];
}

/** The full qemu-system-aarch64 argument list for one VM. */
export function qemuArgs(s: QemuSpec): string[] {
  const drive = `if=virtio,format=raw,file=${escapeQemuOpt(s.image)}${s.writable === true ? '' : ',snapshot=on'}`;
  return [
    '-M', 'virt',
    '-cpu', s.cpu ?? 'cortex-a72',
    '-smp', String(s.cpus ?? 2),
    '-m', String(s.memoryMiB ?? 2048),
    '-kernel', s.kernel,
    ...(s.initrd === undefined ? [] : ['-initrd', s.initrd]),
    '-append', s.cmdline,
    '-drive', drive,
    ...(s.disks ?? []).flatMap((d) => ['-drive', `if=virtio,format=raw,file=${escapeQemuOpt(d)}`]),
    ...netArgs(s.network, s.forwards),
    '-device', 'virtio-rng-pci',
    '-nographic',
    '-monitor', 'none',
    '-chardev', `file,id=con0,path=${escapeQemuOpt(s.consoleLog)}`,
    '-serial', 'chardev:con0',
    '-qmp', `unix:${s.qmpSocket},server=on,wait=off`,
    ...(s.extraArgs ?? []),
  ];
}
