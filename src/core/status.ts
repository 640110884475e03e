/**
 * First-boot status of a node, as the join script writes it to /var/lib/pi-image/status.json
 * (cloud-init/pi-image-join.sh.hbs, `write_status`), plus `cloud-init status`. Pure: parsing and
 * the table; the SSH read is in src/app/status.ts.
 */
import { NODE_PATHS } from './render/paths.js';

export const STATUS_FILE = `${NODE_PATHS.statusDir}/status.json`;

/** What the join script writes (one JSON object, replaced atomically on every change). */
export interface JoinStatus {
  node: string;
  role: string;
  /** starting, waiting-for-clock, waiting-for-data-disk, waiting-for-network, waiting-for-server, installing, starting-k3s, waiting-for-registration, removing-seed-secrets, joined */
  phase: string;
  /** how many times systemd has started the join script */
  run: number;
  /** failed attempts in the current phase */
  attempts: number;
  lastError: string | null;
  startedAt: string;
  updatedAt: string;
  joinedAt: string | null;
}

export interface NodeStatus {
  node: string;
  /** the address pi-image connected to */
  host: string;
  reachable: boolean;
  /** undefined when the node answered but has no status file yet */
  status?: JoinStatus;
  /** `cloud-init status` (running, done, error, degraded, disabled…), when cloud-init answered */
  cloudInit?: string;
  /** why there is no status: the node did not answer, or its status file is unreadable */
  error?: string;
}

const str = (v: unknown): v is string => typeof v === 'string';
const strOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';
const int = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** Parses status.json; a string says what is wrong with it. */
export function parseJoinStatus(text: string): JoinStatus | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return `${STATUS_FILE} is not JSON`;
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return `${STATUS_FILE} is not a JSON object`;
  const o = raw as Record<string, unknown>;
  const bad = (['node', 'role', 'phase', 'startedAt', 'updatedAt'] as const).filter((k) => !str(o[k]));
  if (!int(o['run'])) bad.push('run' as never);
  if (!int(o['attempts'])) bad.push('attempts' as never);
  if (!strOrNull(o['lastError'])) bad.push('lastError' as never);
  if (!strOrNull(o['joinedAt'])) bad.push('joinedAt' as never);
  if (bad.length > 0) return `${STATUS_FILE} lacks or mistypes ${bad.join(', ')}`;
  return {
    node: o['node'] as string,
    role: o['role'] as string,
    phase: o['phase'] as string,
    run: o['run'] as number,
    attempts: o['attempts'] as number,
    lastError: o['lastError'] as string | null,
    startedAt: o['startedAt'] as string,
    updatedAt: o['updatedAt'] as string,
    joinedAt: o['joinedAt'] as string | null,
  };
}

const STATUS_MARK = '== pi-image status';
const CLOUD_INIT_MARK = '== cloud-init';

/** The one command `status` runs on a node (status.json is world-readable: no sudo). */
export function statusProbeCommand(path: string = STATUS_FILE): string {
  const q = `'${path.replace(/'/g, `'\\''`)}'`;
  return [
    `echo '${STATUS_MARK}'`,
    `if [ -e ${q} ]; then cat -- ${q}; else echo 'absent'; fi`,
    `echo; echo '${CLOUD_INIT_MARK}'`,
    `cloud-init status 2>/dev/null | sed -n 's/^status: //p' || true`,
  ].join('; ');
}

/** Splits the probe's output into the status file's text (undefined: absent) and cloud-init's word. */
export function parseStatusProbe(stdout: string): { statusText?: string; cloudInit?: string } {
  const s = stdout.indexOf(STATUS_MARK);
  const c = stdout.indexOf(CLOUD_INIT_MARK);
  if (s < 0 || c < 0 || c < s) return {};
  const statusText = stdout.slice(s + STATUS_MARK.length, c).trim();
  const cloudInit = stdout.slice(c + CLOUD_INIT_MARK.length).trim().split('\n')[0]?.trim() ?? '';
  return { ...(statusText === 'absent' ? {} : { statusText }), ...(cloudInit ? { cloudInit } : {}) };
}

/** One line for a node that is not joined: "waiting-for-server, attempt 7: <last error>". */
export function describeProgress(s: JoinStatus): string {
  if (s.phase === 'joined') return `joined at ${s.joinedAt ?? s.updatedAt}`;
  const attempt = s.attempts > 0 ? `, attempt ${s.attempts}` : '';
  const run = s.run > 1 ? ` (run ${s.run})` : '';
  return `${s.phase}${attempt}${run}${s.lastError ? `: ${s.lastError}` : ''}`;
}

/** What a node's first boot is doing, in one line, whatever status could tell. */
export function describeNodeStatus(n: NodeStatus): string {
  if (!n.reachable) return `not reachable over SSH at ${n.host}${n.error ? ` (${n.error})` : ''}`;
  if (!n.status) return n.error ?? `no ${STATUS_FILE} yet (pi-image-join has not started${n.cloudInit ? `; cloud-init ${n.cloudInit}` : ''})`;
  return describeProgress(n.status);
}

/** Aligned columns: NODE  PHASE  ATTEMPTS  JOINED-AT  CLOUD-INIT  LAST-ERROR. */
export function renderStatusTable(rows: readonly NodeStatus[]): string {
  const cells = rows.map((r) => {
    if (!r.reachable) return [r.node, 'unreachable', '-', '-', '-', r.error ?? ''];
    if (!r.status) return [r.node, 'no-status', '-', '-', r.cloudInit ?? '-', r.error ?? `no ${STATUS_FILE} yet (pi-image-join has not started)`];
    const s = r.status;
    return [r.node, s.phase, String(s.attempts), s.joinedAt ?? '-', r.cloudInit ?? '-', s.lastError ?? ''];
  });
  const header = ['NODE', 'PHASE', 'ATTEMPTS', 'JOINED-AT', 'CLOUD-INIT', 'LAST-ERROR'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]): string => c.map((x, i) => (i < c.length - 1 ? x.padEnd(widths[i]!) : x)).join('  ').trimEnd();
  return [line(header), ...cells.map(line)].join('\n') + '\n';
}
