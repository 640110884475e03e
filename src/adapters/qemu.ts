/**
 * Boots a Pi-OS-layout arm64 image under `qemu-system-aarch64 -M virt` (no KVM needed).
 *
 * A Raspberry Pi's firmware reads the kernel from the FAT boot partition; QEMU cannot, so
 * `extractBootFiles` copies kernel + initrd + cmdline.txt out of p1 with mtools (no root), and
 * `virtCmdline` turns the Pi command line into one for the virt board (serial `ttyAMA0`, root on
 * `/dev/vda2`, `net.ifnames=0` so the NIC is `eth0` as on a Pi; `cgroup_*`, `ds=` and the rest kept).
 *
 *   const vm = await startVm({ image });                 // disk opened with snapshot=on: image untouched
 *   await vm.waitForConsole(/login:/, { timeoutMs: 300_000 });
 *   await waitForSsh(vm, { user: 'admin', identityFile: key });
 *   const r = await vmExec(vm, 'cloud-init status --long', { user: 'admin', identityFile: key });
 *   await vm.stop();                                     // ACPI-less virt: power button via QMP, then kill
 *
 * The serial console goes to `vm.consoleLog` (a file). SSH is forwarded from 127.0.0.1:<sshPort>
 * (user networking), or the guest sits on a tap device of a LAN the caller made (`network.kind:
 * 'tap'`, optionally inside a network namespace: `netns`). The argument list itself is pure:
 * `qemuArgs` in src/core/qemu-args.ts; this module owns the process.
 */
import { execa, type ResultPromise } from 'execa';
import type { SshFailure } from './ssh.js';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EnvironmentError, IoError } from '../core/errors.js';
import { parseConfigTxt, qemuArgs, virtCmdline, type VmNetwork } from '../core/qemu-args.js';
import { fatCopyOut, fatList, fatReadText } from './fat.js';
import { bootPartitionOffset } from './partitions.js';
import { installHint, requireTools, run } from './process.js';

export type { TapNetwork, UserNetwork, VmNetwork } from '../core/qemu-args.js';
export const QEMU_BINARY = 'qemu-system-aarch64';

// ── boot files ───────────────────────────────────────────────────────────────────────────────────

export interface BootFiles {
  /** temp directory holding the files; removed by `cleanup()` */
  dir: string;
  kernel: string;
  initrd: string | undefined;
  /** contents of cmdline.txt (one line, trimmed) */
  cmdline: string;
  cleanup(): Promise<void>;
}

export interface ExtractBootFilesOptions {
  /** names to try for the kernel (default: config.txt's `kernel=`, then vmlinuz, kernel8.img, kernel_2712.img) */
  kernelNames?: readonly string[];
  /** names to try for the initrd (default: config.txt's `initramfs`, then initrd.img) */
  initrdNames?: readonly string[];
  /** directory under which the temp dir is made (default os.tmpdir()) */
  tmpRoot?: string;
}

/** Copies kernel, initrd and cmdline.txt out of the image's FAT partition into a temp dir. */
export async function extractBootFiles(image: string, opts: ExtractBootFilesOptions = {}): Promise<BootFiles> {
  const fat = { image, offset: await bootPartitionOffset(image) };
  const names = new Map<string, string>(); // lower-case → as stored
  for (const n of await fatList(fat, '/')) if (!n.endsWith('/')) names.set(n.toLowerCase(), n);
  const readText = async (name: string): Promise<string | undefined> => {
    const stored = names.get(name.toLowerCase());
    return stored === undefined ? undefined : fatReadText(fat, `/${stored}`);
  };
  const config = parseConfigTxt((await readText('config.txt')) ?? '');
  const pick = (cands: readonly (string | undefined)[]): string | undefined => {
    for (const c of cands) if (c !== undefined && names.has(c.toLowerCase())) return names.get(c.toLowerCase());
    return undefined;
  };
  const kernelName = pick(opts.kernelNames ?? [config.kernel, 'vmlinuz', 'kernel8.img', 'kernel_2712.img']);
  if (kernelName === undefined) {
    throw new IoError(`no kernel found in the boot partition of ${image}`, {
      hint: 'the QEMU boot test needs an arm64 kernel that runs on the virt board (e.g. Debian linux-image-arm64) on the FAT partition',
    });
  }
  const initrdName = pick(opts.initrdNames ?? [config.initramfs, 'initrd.img']);
  const cmdline = ((await readText('cmdline.txt')) ?? '').split('\n')[0]?.trim() ?? '';

  const dir = await mkdtemp(join(opts.tmpRoot ?? tmpdir(), 'pi-image-boot-'));
  try {
    const kernel = join(dir, 'kernel');
    await fatCopyOut(fat, `/${kernelName}`, kernel);
    let initrd: string | undefined;
    if (initrdName !== undefined) {
      initrd = join(dir, 'initrd');
      await fatCopyOut(fat, `/${initrdName}`, initrd);
    }
    return { dir, kernel, initrd, cmdline, cleanup: () => rm(dir, { recursive: true, force: true }) };
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

// ── ports ────────────────────────────────────────────────────────────────────────────────────────

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new IoError('could not find a free TCP port'))));
    });
  });
}

// ── the VM ───────────────────────────────────────────────────────────────────────────────────────

export interface PortForward {
  /** host port on 127.0.0.1 (0 / omitted: pick a free one) */
  host?: number;
  guest: number;
}

export interface StartVmOptions {
  image: string;
  /** write changes into the image (default false: `snapshot=on`, the image file is left untouched) */
  writable?: boolean;
  memoryMiB?: number;
  cpus?: number;
  cpu?: string;
  /** serial console log file (default: `console.log` in the VM's temp dir, kept after stop) */
  consoleLog?: string;
  /** host port forwarded to the guest's port 22 (default: a free one) */
  sshPort?: number;
  /** user-mode network shaped like the node's LAN (default: slirp's 10.0.2.0/24 with DHCP), or a tap on the caller's LAN */
  network?: VmNetwork;
  /** run QEMU inside this network namespace (`ip netns exec`): where the tap device is */
  netns?: string;
  /** more forwards, e.g. `{ guest: 6443 }` for the Kubernetes API */
  forwards?: readonly PortForward[];
  /**
   * kernel (and initrd) to boot instead of the ones on the image's boot partition: Raspberry Pi OS
   * ships a Pi kernel that does not run on the virt board, so a generic arm64 kernel is given here
   */
  kernel?: string;
  initrd?: string;
  /** kernel command line; default `virtCmdline(<image's cmdline.txt>, extraCmdline)` */
  cmdline?: string;
  extraCmdline?: readonly string[];
  /** more raw disk images, attached as further virtio disks (/dev/vdb, …) in this order, writable */
  disks?: readonly string[];
  /** extra qemu arguments, appended */
  extraArgs?: readonly string[];
  /** temp root for boot files and the QMP socket (default os.tmpdir()) */
  tmpRoot?: string;
}

export interface WaitOptions {
  timeoutMs?: number;
  pollMs?: number;
}

export interface SshOptions {
  user: string;
  identityFile: string;
}

export interface StopOptions {
  /** time the guest gets to power off after the power button (default 60 s); 0 = kill at once */
  gracefulMs?: number;
}

export interface Vm {
  pid: number | undefined;
  sshPort: number;
  /** guest port → host port for every forward (22 included) */
  ports: ReadonlyMap<number, number>;
  consoleLog: string;
  cmdline: string;
  args: readonly string[];
  startedAt: number;
  /** resolves with the exit code when qemu exits */
  exited: Promise<number | undefined>;
  isRunning(): boolean;
  readConsole(): Promise<string>;
  /** resolves with the console text once `pattern` appears; rejects on timeout or qemu exit */
  waitForConsole(pattern: string | RegExp, opts?: WaitOptions): Promise<string>;
  /** power button (QMP `system_powerdown`), wait for exit, then kill; idempotent */
  stop(opts?: StopOptions): Promise<void>;
  kill(): Promise<void>;
}

/**
 * A blank sparse disk image holding one filesystem (no partition table), labelled, for a VM's data
 * disk: what a node's `dataDisk: {device: /dev/disk/by-label/<label>}` finds. Made without root.
 */
export async function makeScratchDisk(path: string, o: { sizeMiB: number; fsType: string; label: string }): Promise<void> {
  await run('truncate', ['-s', `${o.sizeMiB}M`, path], { what: 'creating the scratch disk' });
  const mkfs = o.fsType === 'ext4' ? ['mkfs.ext4', ['-q', '-F', '-L', o.label, path]] : o.fsType === 'xfs' ? ['mkfs.xfs', ['-q', '-f', '-L', o.label, path]] : ['mkfs.btrfs', ['-q', '-f', '-L', o.label, path]];
  await run(mkfs[0] as string, mkfs[1] as string[], { what: `formatting the scratch disk (${o.fsType})` });
}

/** Boots the image. Caller must `stop()` (or `kill()`) the VM. */
export async function startVm(opts: StartVmOptions): Promise<Vm> {
  await requireQemu();
  try {
    await stat(opts.image);
  } catch (e) {
    throw new IoError(`image ${opts.image} cannot be read`, { cause: e });
  }
  const boot = await extractBootFiles(opts.image, opts.tmpRoot === undefined ? {} : { tmpRoot: opts.tmpRoot });
  const cmdline = opts.cmdline ?? virtCmdline(boot.cmdline, opts.extraCmdline ?? []);
  const consoleLog = opts.consoleLog ?? join(boot.dir, 'console.log');
  const qmpSocket = join(boot.dir, 'qmp.sock');
  const tap = opts.network?.kind === 'tap';
  // a tap VM is on its LAN: no forwards (sshPort 0: reach it on its address from that LAN)
  const sshPort = tap ? 0 : (opts.sshPort ?? (await freePort()));
  const ports = new Map<number, number>(tap ? [] : [[22, sshPort]]);
  if (!tap) for (const f of opts.forwards ?? []) ports.set(f.guest, f.host ?? (await freePort()));
  // a given kernel comes with its own initrd (or none); the image's are used only together
  const args = qemuArgs({
    kernel: opts.kernel ?? boot.kernel,
    initrd: opts.kernel === undefined ? boot.initrd : opts.initrd,
    cmdline,
    image: opts.image,
    ...(opts.writable === undefined ? {} : { writable: opts.writable }),
    ...(opts.disks === undefined ? {} : { disks: opts.disks }),
    ...(opts.cpu === undefined ? {} : { cpu: opts.cpu }),
    ...(opts.cpus === undefined ? {} : { cpus: opts.cpus }),
    ...(opts.memoryMiB === undefined ? {} : { memoryMiB: opts.memoryMiB }),
    ...(opts.network === undefined ? {} : { network: opts.network }),
    forwards: ports,
    consoleLog,
    qmpSocket,
    ...(opts.extraArgs === undefined ? {} : { extraArgs: opts.extraArgs }),
  });
  // inside a network namespace the caller made (its bridge and taps live there)
  const [file, argv] = opts.netns === undefined ? [QEMU_BINARY, args] : ['ip', ['netns', 'exec', opts.netns, QEMU_BINARY, ...args]];

  const child: ResultPromise<{ stdin: 'ignore'; stdout: 'pipe'; stderr: 'pipe'; reject: false }> = execa(file, argv, {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    reject: false,
  });
  let running = true;
  let exitInfo = '';
  const exited = child.then(async (r) => {
    running = false;
    exitInfo = `qemu exited (${r.exitCode ?? r.signal ?? '?'})${String(r.stderr ?? '').trim() === '' ? '' : `: ${String(r.stderr).trim().slice(-1000)}`}`;
    if (r.code === 'ENOENT') exitInfo = `${QEMU_BINARY} could not be started`;
    if (opts.consoleLog === undefined) {
      // the console log lives in the boot dir: keep it, remove the rest
      await rm(boot.kernel, { force: true });
      if (boot.initrd !== undefined) await rm(boot.initrd, { force: true });
      await rm(qmpSocket, { force: true });
    } else {
      await boot.cleanup();
    }
    return r.exitCode;
  });
  const startedAt = Date.now();

  const readConsole = async (): Promise<string> => {
    try {
      return await readFile(consoleLog, 'utf8');
    } catch {
      return '';
    }
  };

  const vm: Vm = {
    pid: child.pid,
    sshPort,
    ports,
    consoleLog,
    cmdline,
    args,
    startedAt,
    exited,
    isRunning: () => running,
    readConsole,
    async waitForConsole(pattern, w = {}) {
      const deadline = Date.now() + (w.timeoutMs ?? 300_000);
      const test = (s: string): boolean => (typeof pattern === 'string' ? s.includes(pattern) : pattern.test(s));
      for (;;) {
        const text = await readConsole();
        if (test(text)) return text;
        checkPanic(text, consoleLog);
        if (!running) throw new IoError(`VM stopped before the console showed ${String(pattern)}: ${exitInfo}`, { details: tail(text) });
        if (Date.now() > deadline) {
          throw new IoError(`timed out after ${w.timeoutMs ?? 300_000} ms waiting for ${String(pattern)} on the VM console`, {
            details: tail(text),
            hint: `full console log: ${consoleLog}`,
          });
        }
        await sleep(w.pollMs ?? 500);
      }
    },
    async stop(s = {}) {
      if (!running) return;
      const graceful = s.gracefulMs ?? 60_000;
      if (graceful > 0) {
        await qmp(qmpSocket, 'system_powerdown').catch(() => undefined);
        const done = await Promise.race([exited.then(() => true), sleep(graceful).then(() => false)]);
        if (done) return;
      }
      await vm.kill();
    },
    async kill() {
      if (!running) return;
      await qmp(qmpSocket, 'quit').catch(() => undefined);
      const done = await Promise.race([exited.then(() => true), sleep(3000).then(() => false)]);
      if (!done) child.kill('SIGKILL');
      await exited;
    },
  };

  // qemu fails fast on bad arguments: surface that as an error rather than a later timeout
  const early = await Promise.race([exited.then(() => true), sleep(1500).then(() => false)]);
  if (early) {
    throw new IoError(`${QEMU_BINARY} failed to start: ${exitInfo}`, { hint: `arguments: ${args.join(' ')}` });
  }
  return vm;
}

/** Throws EnvironmentError (with the apt-get hint) when qemu-system-aarch64 is not installed. */
export async function requireQemu(): Promise<void> {
  try {
    await requireTools([QEMU_BINARY]);
  } catch (e) {
    if (e instanceof EnvironmentError) {
      throw new EnvironmentError(`\`${QEMU_BINARY}\` is not installed (needed to boot-test arm64 images)`, {
        hint: installHint(QEMU_BINARY),
        cause: e,
      });
    }
    throw e;
  }
}

// ── SSH ──────────────────────────────────────────────────────────────────────────────────────────

export interface SshResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  /** why SSH itself failed (exit code 255, as with OpenSSH); undefined when the command ran */
  failure?: SshFailure;
}

/**
 * Runs one shell command in the guest over SSH (src/adapters/ssh.ts, the one SSH client), with the
 * identity file only and the guest's throwaway host keys unchecked. Never throws for a non-zero
 * exit, nor for an SSH failure (exit 255 with the reason, as a booting guest produces them); a
 * key file that cannot be used is an EnvironmentError.
 */
export async function vmExec(vm: Pick<Vm, 'sshPort'>, command: string, o: SshOptions & { timeoutMs?: number }): Promise<SshResult> {
  // loaded here, not at start-up: ssh2 is a heavy library every other command would pay for
  const { keyFileAuth, SshError, sshExec } = await import('./ssh.js');
  const auth = await keyFileAuth(o.identityFile, '--identity', process.env);
  try {
    const r = await sshExec({ host: '127.0.0.1', port: vm.sshPort, username: o.user, auth, knownHostsPath: undefined, command, timeoutMs: o.timeoutMs ?? 120_000 });
    return { stdout: r.stdout.toString('utf8'), stderr: r.stderr, exitCode: r.exitCode };
  } catch (error) {
    if (error instanceof SshError) return { stdout: '', stderr: error.message, exitCode: 255, failure: error.reason };
    throw error;
  }
}

/** Polls until `ssh user@vm true` succeeds; returns milliseconds since the VM started. */
export async function waitForSsh(vm: Vm, o: SshOptions & WaitOptions): Promise<number> {
  const timeoutMs = o.timeoutMs ?? 600_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!vm.isRunning()) {
      throw new IoError('VM stopped while waiting for SSH', { details: tail(await vm.readConsole()) });
    }
    const r = await vmExec(vm, 'true', { ...o, timeoutMs: 30_000 });
    if (r.exitCode === 0) return Date.now() - vm.startedAt;
    checkPanic(await vm.readConsole(), vm.consoleLog);
    const last = r.stderr.trim();
    if (Date.now() > deadline) {
      throw new IoError(`timed out after ${timeoutMs} ms waiting for SSH as ${o.user} on port ${vm.sshPort}${last === '' ? '' : ` (last error: ${last})`}`, {
        details: tail(await vm.readConsole()),
        hint: `console log: ${vm.consoleLog}`,
      });
    }
    await sleep(o.pollMs ?? 3000);
  }
}

// ── internals ────────────────────────────────────────────────────────────────────────────────────

const PANIC = /Kernel panic - not syncing|initramfs: .*dropping to a shell/;

/** A guest that panicked (or whose initramfs gave up) will never come up: fail now, not at the timeout. */
function checkPanic(text: string, consoleLog: string): void {
  const m = PANIC.exec(text);
  if (m !== null) {
    throw new IoError(`the VM failed to boot: ${m[0]}`, { details: tail(text), hint: `console log: ${consoleLog}` });
  }
}

function tail(text: string, lines = 30): string[] {
  return text.replace(/\r/g, '').split('\n').slice(-lines);
}

/** Sends one QMP command (after capability negotiation) and resolves when it is answered. */
async function qmp(socket: string, command: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const conn = createConnection(socket);
    let buf = '';
    let stage = 0;
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new IoError(`QMP ${command} timed out`));
    }, 5000);
    conn.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    conn.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    conn.on('data', (d) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if ('QMP' in msg && stage === 0) {
          stage = 1;
          conn.write('{"execute":"qmp_capabilities"}\n');
        } else if ('return' in msg && stage === 1) {
          stage = 2;
          conn.write(`${JSON.stringify({ execute: command })}\n`);
        } else if (('return' in msg || 'error' in msg) && stage === 2) {
          clearTimeout(timer);
          conn.end();
          resolve();
        }
      }
    });
  });
}
