/**
 * `pi-image boot-test`: boot a node image under qemu-system-aarch64 and check from outside, over
 * SSH as the inventory's admin user, that it provisioned itself. The image is opened with
 * snapshot=on: the file is never modified.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeScratchDisk, startVm, type StartVmOptions, type Vm, vmExec } from '../adapters/qemu.js';
import { type BootExpectations, evaluateBoot, joinSettled, joinStatusCommand, parseProbe, probeScript } from '../core/boottest.js';
import { EnvironmentError, InputError, IoError } from '../core/errors.js';
import { findNode } from '../core/node-selection.js';
import type { Inventory, NodeModel } from '../core/model.js';
import { k3sDataDir } from '../core/render/k3s.js';
import { NODE_PATHS } from '../core/render/paths.js';
import type { CheckResult } from '../core/verify/checks.js';
import { readBuildRecord, recordPath, recordPathForImage } from '../adapters/build-record.js';
import type { BuildRecord } from '../core/build-record.js';
import { renderInventory } from './render.js';

export interface BootTestOptions {
  inventory: Inventory;
  node: string;
  /** image to boot; default <buildDir>/<node>.img */
  image?: string;
  buildDir: string;
  /** private key for the admin user (default $PI_IMAGE_SSH_KEY, then ~/.ssh/id_ed25519) */
  identity?: string;
  timeoutMs: number;
  keep: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  now: Date;
  onPhase?: (phase: string, elapsedMs: number) => void;
  /** boot this kernel (and initrd) instead of the image's own (a Raspberry Pi kernel does not run on QEMU's virt board) */
  kernel?: string;
  initrd?: string;
  /** extra VM options (tests: memory, console log location) */
  vm?: Partial<StartVmOptions>;
}

export interface BootTestResult {
  node: string;
  image: string;
  checks: CheckResult[];
  ok: boolean;
  /** milliseconds from power-on */
  timings: { sshMs?: number; provisionedMs?: number; joinSettledMs?: number; totalMs: number };
  consoleLog: string;
  /** the image was built from another rendering of the node than the current inventory gives */
  stale: boolean;
  /** with --keep: how to reach the still-running VM */
  kept?: { sshPort: number; pid?: number };
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function identityPath(opts: BootTestOptions): string {
  const given = opts.identity ?? opts.env.PI_IMAGE_SSH_KEY;
  if (given) return isAbsolute(given) ? given : join(opts.cwd, given);
  return join(opts.env.HOME ?? homedir(), '.ssh', 'id_ed25519');
}

/** The filesystem label a data disk device names (`/dev/disk/by-label/L` or `LABEL=L`), if any. */
export function dataDiskLabel(device: string): string | undefined {
  const m = /^(?:\/dev\/disk\/by-label\/|LABEL=)([A-Za-z0-9._-]{1,16})$/.exec(device);
  return m?.[1];
}

/** Names of the files the image staged in `dir` (from its build record). */
function stagedNames(record: BuildRecord | undefined, dir: string): string[] {
  return (record?.files ?? []).filter((f) => f.path.startsWith(`${dir}/`)).map((f) => f.path.slice(dir.length + 1));
}

/** What the node should look like, from the inventory, its secrets and the image's build record. */
async function expectations(opts: BootTestOptions, node: NodeModel, record: BuildRecord | undefined) {
  const inv = opts.inventory;
  const {
    sets: [set],
  } = await renderInventory(inv, { env: opts.env, now: opts.now, only: [node.hostname] });
  const file = (path: string) => set!.files.find((f) => f.target === 'build' && f.path === path)?.contents;
  const secretFiles: Record<string, string | null> = {};
  for (const path of [NODE_PATHS.tokenFile, NODE_PATHS.agentTokenFile, NODE_PATHS.nodePassword]) {
    const contents = file(path);
    secretFiles[path] = contents === undefined ? null : sha256(contents);
  }
  const exp: BootExpectations = {
    hostname: node.hostname,
    role: node.role,
    adminUser: inv.cluster.admin.user,
    sshKeys: inv.cluster.admin.sshKeys,
    instanceId: record?.instanceId ?? set!.instanceId,
    k3sConfigYaml: file(NODE_PATHS.k3sConfig) ?? '',
    secretFiles,
    airgap: (record?.files ?? []).some((f) => f.path === NODE_PATHS.k3sBinary),
    k3s: {
      dataDir: k3sDataDir(node),
      ...(node.dataDisk ? { dataMount: node.dataDisk.mountPoint } : {}),
      service: node.role === 'server' ? 'k3s' : 'k3s-agent',
      airgapImages: stagedNames(record, NODE_PATHS.airgapStage),
      manifests: stagedNames(record, NODE_PATHS.manifestsStage),
    },
  };
  return { exp, stale: record !== undefined && record.instanceId !== set!.instanceId };
}

/** QEMU user-mode network shaped like the node's LAN, so a static address works and SSH reaches it. */
export function vmNetwork(inv: Inventory, node: NodeModel): StartVmOptions['network'] {
  const net = inv.cluster.network;
  if (node.address.mode !== 'static' || !net.cidr || !net.gateway) return undefined;
  return { cidr: net.cidr, host: net.gateway, guest: node.address.address };
}

/** How long sshd may keep refusing the key (it can answer before cloud-init wrote authorized_keys). */
const KEY_REFUSED_GRACE_MS = 120_000;

/**
 * Waits until the admin user can log in. Fails early when sshd keeps refusing the key: the image
 * does not carry it (or --identity is the wrong key), and waiting until the deadline would not help.
 */
async function waitForLogin(vm: Vm, ssh: { user: string; identityFile: string }, deadline: number): Promise<number> {
  let refusedSince: number | undefined;
  for (;;) {
    if (!vm.isRunning()) throw new IoError(`the VM stopped before ${ssh.user} could log in; see the console log ${vm.consoleLog}`);
    const r = await vmExec(vm, 'true', { ...ssh, timeoutMs: 30_000 });
    if (r.exitCode === 0) return Date.now() - vm.startedAt;
    const last = r.stderr.trim().split('\n').pop() ?? '';
    if (r.failure === 'refused') refusedSince ??= Date.now();
    // OpenSSH >= 9.8 penalises a source after failed logins by closing its connections early
    // (a `closed` failure): that continues the refusal. Only sshd going away resets it.
    else if (r.failure === 'unreachable') refusedSince = undefined;
    if (refusedSince !== undefined && Date.now() - refusedSince > KEY_REFUSED_GRACE_MS) {
      throw new IoError(`sshd refuses ${ssh.user} with ${ssh.identityFile} (for ${KEY_REFUSED_GRACE_MS / 1000} s): the image does not accept this key`, {
        hint: 'pass --identity with the private key of an admin.sshKeys entry, or rebuild the image',
      });
    }
    if (Date.now() > deadline) throw new IoError(`no SSH login as ${ssh.user} before the deadline (last: ${last || 'no answer'})`);
    await sleep(3000);
  }
}

export async function bootTest(opts: BootTestOptions): Promise<BootTestResult> {
  const inv = opts.inventory;
  const node = findNode(inv, opts.node);
  const image = opts.image ? (isAbsolute(opts.image) ? opts.image : join(opts.cwd, opts.image)) : join(opts.buildDir, `${node.hostname}.img`);
  try {
    await stat(image);
  } catch {
    throw new InputError(`image ${image} does not exist`, { hint: `build it first: pi-image build ${node.hostname} (or pass --image PATH)` });
  }
  const key = identityPath(opts);
  try {
    await stat(key);
  } catch {
    throw new EnvironmentError(`SSH key ${key} does not exist`, {
      hint: 'pass --identity FILE (or set $PI_IMAGE_SSH_KEY): the private key of one of admin.sshKeys in cluster.yaml',
    });
  }
  const record = opts.image ? await readBuildRecord(recordPathForImage(image)) : await readBuildRecord(recordPath(opts.buildDir, node.hostname));
  const { exp, stale } = await expectations(opts, node, record);

  const network = vmNetwork(inv, node);
  const abs = (p: string) => (isAbsolute(p) ? p : join(opts.cwd, p));
  for (const [flag, path] of [['--kernel', opts.kernel], ['--initrd', opts.initrd]] as const) {
    if (path === undefined) continue;
    try {
      await stat(abs(path));
    } catch {
      throw new InputError(`${flag} ${path} does not exist`, { hint: 'give an arm64 kernel (and its initrd) that boots on QEMU virt, e.g. the test base\'s vmlinuz and initrd.img' });
    }
  }
  // a node with a data disk gets a blank one, labelled as its inventory names it (the VM's /dev/vdb)
  const disks: string[] = [];
  let scratch: string | undefined;
  const label = node.dataDisk ? dataDiskLabel(node.dataDisk.device) : undefined;
  if (node.dataDisk && label !== undefined) {
    scratch = await mkdtemp(join(tmpdir(), 'pi-image-boot-test-disk-'));
    disks.push(join(scratch, 'data.img'));
    await makeScratchDisk(disks[0]!, { sizeMiB: 2048, fsType: node.dataDisk.fsType, label });
    opts.onPhase?.(`data disk ${node.dataDisk.device} attached (blank ${node.dataDisk.fsType}, 2 GiB)`, 0);
  }
  const vm: Vm = await startVm({
    image,
    ...(disks.length ? { disks } : {}),
    ...(network ? { network } : {}),
    ...(opts.kernel ? { kernel: abs(opts.kernel) } : {}),
    ...(opts.initrd ? { initrd: abs(opts.initrd) } : {}),
    ...opts.vm,
  });
  const started = Date.now();
  const deadline = started + opts.timeoutMs;
  const ssh = { user: inv.cluster.admin.user, identityFile: key };
  const timings: BootTestResult['timings'] = { totalMs: 0 };
  let checks: CheckResult[] = [];
  try {
    opts.onPhase?.('booting', 0);
    try {
      timings.sshMs = await waitForLogin(vm, ssh, deadline);
    } catch (e) {
      checks = [{ name: 'ssh-login', node: node.hostname, status: 'fail', message: (e as Error).message.split('\n')[0]! }];
      throw e;
    }
    opts.onPhase?.('ssh up', timings.sshMs);
    // wait for cloud-init to finish (status leaves "running"/"not started")
    for (;;) {
      const r = await vmExec(vm, 'cloud-init status 2>/dev/null | sed -n "s/^status: //p"', { ...ssh, timeoutMs: 60_000 });
      const status = r.stdout.trim();
      if (status && status !== 'running' && status !== 'not started' && status !== 'not run') break;
      if (Date.now() > deadline) break;
      await sleep(3000);
    }
    timings.provisionedMs = Date.now() - vm.startedAt;
    opts.onPhase?.('cloud-init finished', timings.provisionedMs);
    // wait for the join to settle (joined, or waiting for a server the lone VM cannot reach), so the
    // checks judge where first boot ends, not a moment of it; at the deadline the probe runs anyway
    let lastPhase: string | undefined;
    for (;;) {
      const r = await vmExec(vm, joinStatusCommand(), { ...ssh, timeoutMs: 60_000 });
      const join = joinSettled(r.stdout);
      if (join.phase !== lastPhase && join.phase !== undefined) opts.onPhase?.(`join: ${join.phase}`, Date.now() - vm.startedAt);
      lastPhase = join.phase;
      if (join.settled || Date.now() > deadline) break;
      await sleep(5000);
    }
    timings.joinSettledMs = Date.now() - vm.startedAt;
    const probe = await vmExec(vm, probeScript(exp), { ...ssh, timeoutMs: 120_000 });
    if (probe.exitCode !== 0 && !probe.stdout.includes('@@end')) {
      throw new IoError(`probing ${node.hostname} over SSH failed (exit ${probe.exitCode})`, { details: probe.stderr.trim().split('\n').slice(-5) });
    }
    checks = [{ name: 'ssh-login', node: node.hostname, status: 'pass', message: `as ${ssh.user} with the inventory key` }, ...evaluateBoot(exp, parseProbe(probe.stdout))];
  } catch (e) {
    if (checks.length === 0) throw e;
  } finally {
    timings.totalMs = Date.now() - started;
    if (!opts.keep) {
      await vm.stop({ gracefulMs: 20_000 });
      if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
    }
  }
  const ok = checks.length > 0 && checks.every((c) => c.status !== 'fail');
  const result: BootTestResult = { node: node.hostname, image, checks, ok, timings, consoleLog: vm.consoleLog, stale };
  if (opts.keep) result.kept = { sshPort: vm.sshPort, ...(vm.pid !== undefined ? { pid: vm.pid } : {}) };
  return result;
}
