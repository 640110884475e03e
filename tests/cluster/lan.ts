/**
 * A virtual LAN for the cluster tier, made by the test and removed after it: a network namespace
 * holding one bridge (the LAN's switch, with the LAN's gateway address: the operator's laptop in the
 * tests) and one tap device per VM. QEMU runs inside the namespace (`startVm({ netns })`), and so do
 * the pi-image commands the test runs as the operator (`run`). The namespace has no link to the host:
 * no veth, no route out, so nothing the nodes or the commands send can leave it, and nothing on the
 * host's network is touched.
 */
import { execa, type Options, type Result } from 'execa';

export interface LanOptions {
  /** namespace name, unique per run (e.g. `piimg-<pid>`) */
  name: string;
  /** the LAN, e.g. 10.0.0.0/24 */
  cidr: string;
  /** the address the bridge gets inside the namespace, e.g. the inventory's gateway 10.0.0.1 */
  gateway: string;
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILLs every process inside the namespace, then deletes it. */
async function removeNamespace(name: string): Promise<void> {
  const pids = await execa('ip', ['netns', 'pids', name], { reject: false });
  for (const pid of String(pids.stdout ?? '').split(/\s+/).filter((p) => /^\d+$/.test(p))) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
  await execa('ip', ['netns', 'delete', name], { reject: false });
}

export class VirtualLan {
  private readonly taps: string[] = [];
  private created = false;

  private constructor(readonly o: LanOptions) {}

  /** Creates the namespace, its loopback and the bridge with the gateway address. */
  static async create(o: LanOptions): Promise<VirtualLan> {
    const lan = new VirtualLan(o);
    const prefix = o.cidr.split('/')[1] ?? '24';
    await execa('ip', ['netns', 'add', o.name]);
    lan.created = true;
    try {
      await lan.ip(['link', 'set', 'lo', 'up']);
      await lan.ip(['link', 'add', 'br0', 'type', 'bridge']);
      await lan.ip(['addr', 'add', `${o.gateway}/${prefix}`, 'dev', 'br0']);
      await lan.ip(['link', 'set', 'br0', 'up']);
    } catch (e) {
      await lan.destroy();
      throw e;
    }
    return lan;
  }

  /**
   * Why this machine cannot make a virtual LAN (no root, no bridge or tun support in the kernel), or
   * undefined when it can: a throwaway namespace with a bridge and a tap is made and removed.
   */
  static async unsupported(): Promise<string | undefined> {
    if (process.getuid?.() !== 0) return 'must run as root (network namespace, bridge, taps)';
    const name = `piimg-probe-${process.pid}`;
    try {
      await execa('ip', ['netns', 'add', name]);
      await execa('ip', ['-n', name, 'link', 'add', 'br0', 'type', 'bridge']);
      await execa('ip', ['-n', name, 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap']);
      return undefined;
    } catch (e) {
      return `cannot make a virtual LAN here: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`;
    } finally {
      await execa('ip', ['netns', 'delete', name], { reject: false });
    }
  }

  get name(): string {
    return this.o.name;
  }

  /** `ip …` inside the namespace. */
  async ip(args: readonly string[]): Promise<void> {
    await execa('ip', ['-n', this.o.name, ...args]);
  }

  /** A tap device on the bridge, for one VM's NIC (created in the namespace, so QEMU must run there too). */
  async addTap(tap: string): Promise<string> {
    await this.ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    this.taps.push(tap);
    await this.ip(['link', 'set', tap, 'master', 'br0']);
    await this.ip(['link', 'set', tap, 'up']);
    return tap;
  }

  /** Runs a program inside the namespace (the operator's laptop on the LAN). */
  run(file: string, args: readonly string[], opts: Options = {}): Promise<Result> {
    return execa('ip', ['netns', 'exec', this.o.name, file, ...args], { reject: false, ...opts }) as Promise<Result>;
  }

  /** The namespace's interfaces: only lo, br0 and the taps (the proof that nothing links it to the host). */
  async interfaces(): Promise<string[]> {
    const r = await execa('ip', ['-n', this.o.name, '-o', 'link', 'show']);
    return r.stdout
      .split('\n')
      .map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1] ?? '')
      .filter((n) => n !== '');
  }

  /** Routes inside the namespace: only the LAN's own (no default route out). */
  async routes(): Promise<string[]> {
    const r = await execa('ip', ['-n', this.o.name, 'route', 'show']);
    return r.stdout.split('\n').filter((l) => l.trim() !== '');
  }

  /** Kills what still runs in the namespace (VMs, commands), then deletes it (its bridge and taps go with it). Idempotent. */
  async destroy(): Promise<void> {
    if (!this.created) return;
    this.created = false;
    await removeNamespace(this.o.name);
  }

  /**
   * Namespaces `<prefix><pid>` left by runs whose process is gone (killed before their cleanup ran):
   * their VMs are stopped and the namespaces deleted. Returns their names.
   */
  static async removeStale(prefix: string): Promise<string[]> {
    const r = await execa('ip', ['netns', 'list'], { reject: false });
    const stale = String(r.stdout ?? '')
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => n.startsWith(prefix) && !alive(Number(n.slice(prefix.length))));
    for (const n of stale) await removeNamespace(n);
    return stale;
  }
}
