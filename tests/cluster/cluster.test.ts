/**
 * The cluster tier: the sample inventory's server and two agents, built with `pi-image build`, boot
 * together under QEMU on one virtual LAN and form the cluster; one node is rebuilt by the timed drill
 * and rejoins. Run as root: `npm run test:cluster` (part of `npm run test:all`).
 *
 * - The LAN is a network namespace the test makes (tests/cluster/lan.ts): a bridge holding the
 *   inventory's gateway address (the operator's laptop) and a tap per VM. The nodes use their static
 *   inventory addresses. Nothing links the namespace to the host: no traffic leaves it.
 * - pi-image runs inside the namespace, as the operator's laptop on the LAN would run it: the built
 *   CLI (`bin/pi-image`), as a separate process.
 * - k3s cannot be downloaded here: the nodes run the k3s stand-ins of tests/e2e/fixtures (a server
 *   that speaks the parts of the k3s API pi-image and the agents use, and refuses wrong tokens and
 *   reused node names; agents that join through it). See docs/testing.md.
 * - The faults of the real world are played in order: the agents are powered on before the server;
 *   the server VM is killed once while the agents join, then restarted; one agent carries a stale
 *   agent token (built before `secrets rotate agent-token`) until it is rebuilt.
 */
import { execa } from 'execa';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeScratchDisk, startVm, type Vm } from '../../src/adapters/qemu.js';
import { cli } from '../helpers/run-cli.js';
import { baseKernel, bootableInventory, type BootableInventory, REPO_ROOT, testBase } from '../e2e/fixtures/setup.js';
import { VirtualLan } from './lan.js';

const unsupported = await VirtualLan.unsupported();
if (unsupported !== undefined) console.warn(`[cluster] SKIPPED: ${unsupported}`);

const SERVER = 'pi-cluster-1';
const AGENTS = ['pi-cluster-2', 'pi-cluster-4'] as const;
const STALE = 'pi-cluster-2';
const DRILLED = 'pi-cluster-4';
const NODES = [SERVER, ...AGENTS];
/** the sample inventory's LAN (nodes/cluster.yaml) */
const LAN = { cidr: '10.0.0.0/24', gateway: '10.0.0.1' };
const MINUTE = 60_000;

/** One node's machine: its disk (a copy of its image: the SD card), data disk, NIC on the LAN. */
interface Machine {
  node: string;
  disk: string;
  dataDisk?: string;
  tap: string;
  mac: string;
  vm?: Vm;
  boots: number;
}

const log = (line: string) => console.log(`[cluster ${new Date().toISOString().slice(11, 19)}] ${line}`);

describe.skipIf(unsupported !== undefined)('cluster tier: the nodes form the cluster under QEMU and one is rebuilt by the drill', () => {
  let setup: BootableInventory;
  let lan: VirtualLan;
  let base = '';
  let kernel = { kernel: '', initrd: '' };
  let work = '';
  let kubeconfig = '';
  let knownHosts = '';
  let loop = '';
  const machines = new Map<string, Machine>();
  const times: Record<string, number> = {};
  const tierStart = Date.now();

  /** pi-image as the operator runs it on the LAN: the built CLI, inside the namespace. */
  const pi = async (args: string[], o: { timeoutMs?: number; onStderr?: (line: string) => void } = {}) => {
    const child = lan.run(join(REPO_ROOT, 'bin', 'pi-image'), args, {
      cwd: setup.inv.root,
      env: { ...setup.env, PI_IMAGE_SSH_KEY: setup.key, SSH_AUTH_SOCK: '' },
      timeout: o.timeoutMs ?? 30 * MINUTE,
      ...(o.onStderr ? { stderr: 'pipe' } : {}),
    });
    if (o.onStderr) {
      let buf = '';
      (child as unknown as { stderr: NodeJS.ReadableStream }).stderr.on('data', (d: Buffer) => {
        buf += d.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          o.onStderr!(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      });
    }
    const r = await child;
    const out = { code: r.exitCode ?? -1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
    log(`pi-image ${args.join(' ')} → exit ${out.code}`);
    return out;
  };
  const json = <T>(text: string): T => JSON.parse(text) as T;

  const power = {
    async on(m: Machine): Promise<void> {
      m.boots++;
      m.vm = await startVm({
        image: m.disk,
        writable: true,
        ...(m.dataDisk ? { disks: [m.dataDisk] } : {}),
        network: { kind: 'tap', ifname: m.tap, mac: m.mac },
        netns: lan.name,
        kernel: kernel.kernel,
        initrd: kernel.initrd,
        cpus: 1,
        memoryMiB: 1536,
        consoleLog: join(work, `${m.node}.boot${m.boots}.console.log`),
      });
      log(`${m.node} powered on (boot ${m.boots})`);
    },
    /** pulling the plug: no shutdown */
    async cut(m: Machine): Promise<void> {
      await m.vm?.kill();
      m.vm = undefined;
      log(`${m.node} power cut`);
    },
    async off(m: Machine): Promise<void> {
      await m.vm?.stop({ gracefulMs: 60_000 });
      m.vm = undefined;
      log(`${m.node} powered off`);
    },
  };

  const status = async (node: string) => {
    const r = await pi(['status', node, '-o', 'json', '--known-hosts', knownHosts, '--timeout', '60s']);
    return json<{ nodes: { node: string; reachable: boolean; status?: { role: string; phase: string; attempts: number; run: number; lastError: string | null }; error?: string }[] }>(r.stdout).nodes[0]!;
  };

  /** Polls `pi-image status` until `accept` holds (the node's own first-boot report), for minutes. */
  const waitForStatus = async (node: string, accept: (s: Awaited<ReturnType<typeof status>>) => boolean, what: string, limitMs = 30 * MINUTE) => {
    const t0 = Date.now();
    let last: Awaited<ReturnType<typeof status>> | undefined;
    while (Date.now() - t0 < limitMs) {
      last = await status(node);
      if (accept(last)) return last;
      await sleep(10_000);
    }
    throw new Error(`${node}: ${what} not seen within ${limitMs / MINUTE} min; last status: ${JSON.stringify(last)}`);
  };

  const build = async (nodes: string[]) => {
    const t0 = Date.now();
    const r = await cli(['build', ...nodes, '--base', base, '--jobs', '2'], { cwd: setup.inv.root, env: setup.env });
    expect(r.code, r.stderr).toBe(0);
    log(`built ${nodes.join(', ')} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  };
  const imageOf = (node: string) => join(setup.inv.root, 'build', 'images', `${node}.img`);

  beforeAll(async () => {
    base = await testBase('cluster');
    await execa('npm', ['run', '-s', 'build'], { cwd: REPO_ROOT });
    setup = await bootableInventory({ drop: ['pi-cluster-3'], run: (argv, o) => cli(argv, o) });
    work = join(setup.inv.root, 'machines');
    await mkdir(work);
    kernel = await baseKernel(base, join(work, 'kernel'));
    knownHosts = join(setup.inv.root, 'known_hosts');
    kubeconfig = join(setup.inv.root, 'kubeconfig');

    // the stale agent: built with the agent token of before the rotation
    await build([STALE]);
    const rotated = await cli(['secrets', 'rotate', 'agent-token'], { cwd: setup.inv.root, env: setup.env });
    expect(rotated.code, rotated.stderr).toBe(0);
    await build([SERVER, DRILLED]);

    const stale = await VirtualLan.removeStale('piimg-cluster-');
    if (stale.length > 0) log(`removed namespaces of earlier runs that were killed: ${stale.join(', ')}`);
    lan = await VirtualLan.create({ name: `piimg-cluster-${process.pid}`, ...LAN });
    for (const node of NODES) {
      const text = await readFile(join(setup.inv.dir, `${node}.yaml`), 'utf8');
      const mac = /^mac:\s*(\S+)/m.exec(text)?.[1] ?? '';
      const m: Machine = { node, disk: join(work, `${node}.disk.img`), tap: await lan.addTap(`tap-${node.replace('pi-cluster-', 'pi')}`), mac, boots: 0 };
      await execa('cp', ['--sparse=always', imageOf(node), m.disk]);
      if (node === SERVER) {
        m.dataDisk = join(work, `${node}.data.img`);
        await makeScratchDisk(m.dataDisk, { sizeMiB: 2048, fsType: 'ext4', label: 'rancher' });
      }
      machines.set(node, m);
    }
  }, 90 * MINUTE);

  afterAll(async () => {
    for (const m of machines.values()) await m.vm?.kill().catch(() => undefined);
    if (loop) await execa('losetup', ['-d', loop], { reject: false });
    await lan?.destroy();
    if (setup) {
      if (process.env.PI_IMAGE_KEEP_CLUSTER === '1') log(`kept ${setup.inv.root}`);
      else setup.inv.cleanup();
    }
    log(`tier total ${((Date.now() - tierStart) / MINUTE).toFixed(1)} min; ${JSON.stringify(times)}`);
  }, 10 * MINUTE);

  it('the LAN is the test’s own: lo, the bridge and one tap per VM, no route out', async () => {
    expect((await lan.interfaces()).sort()).toEqual(['br0', 'lo', ...NODES.map((n) => `tap-${n.replace('pi-cluster-', 'pi')}`)].sort());
    const routes = await lan.routes();
    expect(routes.some((r) => r.startsWith('default'))).toBe(false);
    expect(routes).toEqual([expect.stringMatching(/^10\.0\.0\.0\/24 dev br0 /)]);
  });

  it('agents powered on before the server wait for it, and `status` says so', async () => {
    const t0 = Date.now();
    for (const a of AGENTS) await power.on(machines.get(a)!);
    const s = await waitForStatus(DRILLED, (x) => x.reachable && x.status?.phase === 'waiting-for-server' && x.status.attempts >= 1, 'waiting-for-server');
    times.agentsWaitingMs = Date.now() - t0;
    expect(s.status!.lastError).toMatch(/k3s server https:\/\/10\.0\.0\.11:6443 does not answer/);
    // every node's SSH login within a minute: the default 15 s is an operator's deadline, not a
    // loaded CI machine's (four QEMU guests without KVM beside two CPU hogs missed it)
    const table = await pi(['status', '--known-hosts', knownHosts, '--timeout', '60s']);
    expect(table.stdout).toMatch(/pi-cluster-1\s.*(unreachable|no answer|not reachable)/i);
    expect(table.stdout).toMatch(/pi-cluster-4\s+.*waiting-for-server/);
  });

  it('the server boots last; killed once while the agents join and restarted, the agents recover without help', async () => {
    const server = machines.get(SERVER)!;
    const t0 = Date.now();
    await power.on(server);
    // the server's API answers: the agents are now joining
    await waitForStatus(DRILLED, (x) => x.status !== undefined && !['waiting-for-server', 'starting', 'waiting-for-clock', 'waiting-for-network'].includes(x.status.phase), 'past waiting-for-server');
    times.serverFirstAnswerMs = Date.now() - t0;
    // the operator already holds a kubeconfig when the server's power goes
    const early = join(setup.inv.root, 'kubeconfig-before-the-cut');
    const fetched = await pi(['kubeconfig', '--out', early, '--known-hosts', knownHosts, '--timeout', '2m']);
    expect(fetched.code, fetched.stderr).toBe(0);
    await power.cut(server);
    // what the operator sees while the server is down: the API cannot be reached (exit 5, cluster)
    const down = await pi(['verify', '--kubeconfig', early, '--timeout', '30s', '-o', 'json']);
    log(`verify while the server is down: exit ${down.code}: ${down.stderr.trim()}`);
    expect(down.code).toBe(5);
    expect(json<{ ok: boolean; error?: { message: string } }>(down.stdout).error?.message).toMatch(/10\.0\.0\.11:6443/);
    const during = await status(DRILLED);
    log(`${DRILLED} while the server is down: ${JSON.stringify(during.status)}`);
    expect(during.reachable).toBe(true);
    await power.on(server);
    const joined = await waitForStatus(DRILLED, (x) => x.status?.phase === 'joined', 'joined');
    times.agentJoinedMs = Date.now() - t0;
    expect(joined.status!.lastError).toBeNull();
    const serverStatus = await waitForStatus(SERVER, (x) => x.status?.phase === 'joined', 'joined');
    expect(serverStatus.status!.role).toBe('server');
  });

  it('`pi-image kubeconfig` fetches the admin kubeconfig over SSH and pins the server’s host key', async () => {
    const r = await pi(['kubeconfig', '--out', kubeconfig, '--known-hosts', knownHosts, '--timeout', '2m']);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(kubeconfig, 'utf8')).toMatch(/server: https:\/\/10\.0\.0\.11:6443/);
    expect(await readFile(knownHosts, 'utf8')).toMatch(/^10\.0\.0\.11 ssh-ed25519 /m);
  });

  it('the agent with a stale agent token is refused, and `status` and `verify` say why', async () => {
    const s = await waitForStatus(STALE, (x) => x.status?.phase === 'waiting-for-registration' && /not authorized|401|Unauthorized/i.test(x.status.lastError ?? ''), 'a refused token');
    log(`${STALE}: ${JSON.stringify(s.status)}`);
    const v = await pi(['verify', '--kubeconfig', kubeconfig, '--status', '--known-hosts', knownHosts, '-o', 'json']);
    expect(v.code).toBe(1);
    const report = json<{ checks: { name: string; node?: string; status: string; message: string }[] }>(v.stdout);
    const reg = report.checks.find((c) => c.name === 'registered' && c.node === STALE)!;
    expect(reg.status).toBe('fail');
    expect(reg.message).toMatch(/first boot: waiting-for-registration, attempt \d+: k3s-agent is not active yet: .*(not authorized|401|Unauthorized)/i);
  });

  it('rebuilt with the current token, the stale agent joins; `verify --wait` passes with the inventory’s roles, labels and taints', async () => {
    const m = machines.get(STALE)!;
    await build([STALE]);
    await power.off(m);
    await execa('cp', ['--sparse=always', imageOf(STALE), m.disk]);
    const t0 = Date.now();
    await power.on(m);
    const v = await pi(['verify', '--kubeconfig', kubeconfig, '--wait', '--timeout', '30m', '-o', 'json'], { timeoutMs: 35 * MINUTE });
    times.staleRejoinedMs = Date.now() - t0;
    expect(v.code, v.stdout + v.stderr).toBe(0);
    const report = json<{ ok: boolean; checks: { name: string; node?: string; status: string; message: string }[] }>(v.stdout);
    expect(report.ok).toBe(true);
    const check = (name: string, node: string) => report.checks.find((c) => c.name === name && c.node === node);
    for (const node of NODES) expect(check('ready', node)?.status, node).toBe('pass');
    expect(check('role', SERVER)?.message).toMatch(/^server \(node-role.kubernetes.io\/control-plane=true/);
    for (const a of AGENTS) expect(check('role', a)?.message).toBe('agent (no control-plane labels)');
    expect(check('labels', DRILLED)?.message).toContain('pi-image.io/rack=shelf-b');
    expect(check('labels', DRILLED)?.message).toContain('pi-image.io/pool=general');
    expect(check('taints', DRILLED)?.message).toContain('dedicated=storage:PreferNoSchedule');
    expect(check('arch', SERVER)?.status).toBe('pass');
  });

  it('`pi-image rebuild pi-cluster-4`: cordon, drain, build, flash, power-cycle, rejoin, uncordon, with evidence', async () => {
    const m = machines.get(DRILLED)!;
    loop = (await execa('losetup', ['--find', '--show', m.disk])).stdout.trim();
    const evidenceRoot = join(setup.inv.root, 'evidence');
    let restarted: Promise<void> | undefined;
    let stopped: Promise<void> | undefined;
    const t0 = Date.now();
    // the operator: once the node is drained its power is cut (the card comes out, before the flash
    // starts writing to it), and it is powered on
    // once the new image is on the card
    const r = await pi(
      ['rebuild', DRILLED, '--device', loop, '--allow-loop', '--yes', '--kubeconfig', kubeconfig, '--base', base, '--evidence-dir', evidenceRoot, '--budget', '60m', '--interval', '10s', '-o', 'json'],
      {
        timeoutMs: 70 * MINUTE,
        onStderr: (line) => {
          log(`drill: ${line}`);
          if (/\] build …/.test(line)) stopped = power.cut(m);
          if (/\] rejoin …/.test(line)) restarted = (async () => {
            await stopped;
            await power.on(m);
          })();
        },
      },
    );
    await restarted;
    times.drillMs = Date.now() - t0;
    expect(r.code, r.stderr).toBe(0);
    const evidence = json<{ evidenceDir: string; ok: boolean; durationMs: number; phases: { name: string; status: string; durationMs: number; summary: string; details: string[] }[] }>(r.stdout);
    const names = evidence.phases.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['preflight', 'cordon', 'drain', 'build', 'flash', 'rejoin', 'uncordon']));
    for (const p of evidence.phases.filter((x) => x.status !== 'skipped')) expect(p.durationMs, p.name).toBeGreaterThanOrEqual(0);
    const onDisk = json<typeof evidence>(await readFile(join(evidence.evidenceDir, 'evidence.json'), 'utf8'));
    expect(onDisk.phases.map((p) => p.name)).toEqual(names);
    expect(await readdir(evidence.evidenceDir)).toEqual(expect.arrayContaining(['evidence.json', 'README.md']));
    expect(evidence.ok).toBe(true);
    // the card was written from the block map (mapped ranges only, over the old card's data) and the
    // node booted from it and rejoined: a mapped-only card boots
    const flash = evidence.phases.find((p) => p.name === 'flash')!;
    expect(flash.details.join('\n')).toMatch(/wrote and read back only the block map's \d+ mapped ranges/);
    expect(evidence.phases.find((p) => p.name === 'rejoin')?.status).toBe('ok');
    // every phase timed, and the whole drill far under the seed's 60 minutes
    expect(evidence.durationMs).toBeGreaterThanOrEqual(evidence.phases.reduce((sum, p) => sum + p.durationMs, 0) - 1000);
    expect(evidence.durationMs).toBeLessThan(60 * MINUTE);
    log(`drill evidence: total ${(evidence.durationMs / 1000).toFixed(0)} s; ${JSON.stringify(evidence.phases.map((p) => [p.name, p.status, p.durationMs]))}`);
  });

  it('after the drill `verify` passes again', async () => {
    const v = await pi(['verify', '--kubeconfig', kubeconfig, '--wait', '--timeout', '10m', '-o', 'json'], { timeoutMs: 15 * MINUTE });
    expect(v.code, v.stdout + v.stderr).toBe(0);
    times.tierMs = Date.now() - tierStart;
  });
});
