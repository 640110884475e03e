/**
 * cmdline.txt transformations. The Pi firmware reads ONE line of space-separated kernel arguments;
 * both functions keep the original tokens in order and are idempotent.
 */

/**
 * What k3s needs on a Raspberry Pi kernel: the DTB's `cgroup_disable=memory` is undone by
 * `cgroup_enable=memory` after it. `cgroup_memory=1` is obsolete on current Pi kernels (logged as an
 * unknown parameter): it is not added, and removed where an earlier build put it.
 */
const CGROUP_TOKENS = ['cgroup_enable=memory'] as const;
const OBSOLETE_TOKENS = new Set(['cgroup_memory=1']);

function tokens(line: string): string[] {
  return line.split(/\s+/).filter((t) => t.length > 0);
}

function key(token: string): string {
  const eq = token.indexOf('=');
  return eq === -1 ? token : token.slice(0, eq);
}

/** NoCloud's cmdline token: `ds=nocloud;i=<instance-id>` pins the instance so the seed is not re-run every boot. */
export function nocloudToken(instanceId: string): string {
  return `ds=nocloud;i=${instanceId}`;
}

/**
 * The cmdline.txt of an SD/USB-booted node: the original tokens (without an obsolete
 * `cgroup_memory=1`), then `cgroup_enable=memory` (only if absent; the firmware injects
 * `cgroup_disable=memory` otherwise) and `ds=nocloud;i=<id>` (replacing any earlier `ds=` token).
 * Returns one line ending in `\n`.
 */
export function transformCmdline(baseLine: string, instanceId: string): string {
  const out = tokens(baseLine).filter((t) => key(t) !== 'ds' && !OBSOLETE_TOKENS.has(t));
  for (const t of CGROUP_TOKENS) if (!out.includes(t)) out.push(t);
  out.push(nocloudToken(instanceId));
  return `${out.join(' ')}\n`;
}

export interface NfsRoot {
  /** NFS server address (IP or hostname) */
  server: string;
  /** exported directory holding the node's root filesystem, absolute */
  path: string;
}

/** Tokens that only make sense for a local root filesystem (plus the NFS ones we put back ourselves). */
const ROOT_KEYS = new Set(['root', 'rootfstype', 'resize', 'init', 'fsck.repair', 'nfsroot', 'ip', 'rw', 'ro', 'rootwait']);

/**
 * The cmdline.txt of a netbooted node: the original tokens without the local-root ones (`root=`,
 * `rootfstype=`, `resize`, `init=`, `fsck.repair=`), then
 * `root=/dev/nfs nfsroot=<server>:<path>,vers=3 rw ip=dhcp rootwait`, the cgroup tokens and, when an
 * instance id is given, `ds=nocloud;i=<id>` (replacing an earlier `ds=`). One line; idempotent.
 */
export function netbootCmdline(baseLine: string, nfs: NfsRoot, instanceId?: string): string {
  const all = tokens(baseLine);
  const keptDs = all.filter((t) => key(t) === 'ds');
  const kept = all.filter(
    (t) => !ROOT_KEYS.has(key(t)) && key(t) !== 'ds' && !(CGROUP_TOKENS as readonly string[]).includes(t) && !OBSOLETE_TOKENS.has(t),
  );
  const nfsTokens = ['root=/dev/nfs', `nfsroot=${nfs.server}:${nfs.path},vers=3`, 'rw', 'ip=dhcp', 'rootwait'];
  const out = [...kept, ...nfsTokens, ...CGROUP_TOKENS];
  if (instanceId !== undefined) out.push(nocloudToken(instanceId));
  else out.push(...keptDs);
  return `${out.join(' ')}\n`;
}
