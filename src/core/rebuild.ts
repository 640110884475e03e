/**
 * The timed rebuild drill (`pi-image rebuild <node>`) as pure functions: phase records, budget
 * accounting, drain planning, the "did the node really come back" check, the verdict, and the
 * evidence (evidence.json + README.md). No clock, no I/O: every time arrives as epoch
 * milliseconds from src/app/rebuild.ts, every cluster fact as a V1Node / V1Pod object.
 *
 * Phases, in order (each one timed; any may be `skipped`):
 *   preflight → cordon → drain → reset-node-password → build → remove-node → flash | netboot → rejoin → uncordon
 */
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { evidenceFolderName } from './evidence.js';
import type { Inventory } from './model.js';
import { type CheckResult, type ClusterSnapshot, runChecks, summarize } from './verify/checks.js';
import { formatDuration } from './verify/duration.js';

export const PHASES = ['preflight', 'cordon', 'drain', 'reset-node-password', 'build', 'remove-node', 'flash', 'netboot', 'rejoin', 'uncordon'] as const;
export type PhaseName = (typeof PHASES)[number];
export type PhaseStatus = 'ok' | 'skipped' | 'failed';

export interface PhaseRecord {
  name: PhaseName;
  status: PhaseStatus;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  /** one line: what happened */
  summary: string;
  /** more lines (pods evicted, objects deleted, files checked …) */
  details: string[];
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function phaseRecord(name: PhaseName, startMs: number, endMs: number, status: PhaseStatus, summary: string, details: readonly string[] = []): PhaseRecord {
  return { name, status, startedAt: iso(startMs), endedAt: iso(endMs), durationMs: Math.max(0, endMs - startMs), summary, details: [...details] };
}

// ── budget ───────────────────────────────────────────────────────────────────────────────────────

export interface BudgetAccount {
  budgetMs: number;
  usedMs: number;
  /** what is left (0 once exceeded) */
  remainingMs: number;
  exceeded: boolean;
}

export function budgetAccount(budgetMs: number, startMs: number, nowMs: number): BudgetAccount {
  const usedMs = Math.max(0, nowMs - startMs);
  return { budgetMs, usedMs, remainingMs: Math.max(0, budgetMs - usedMs), exceeded: usedMs > budgetMs };
}

// ── the node before and after ────────────────────────────────────────────────────────────────────

/** What the drill remembers about the node before it is taken down. */
export interface NodeIdentity {
  name: string;
  uid?: string;
  /** status.nodeInfo.bootID: changes with every boot of the machine */
  bootID?: string;
  unschedulable: boolean;
}

export function nodeIdentity(node: V1Node): NodeIdentity {
  const id: NodeIdentity = { name: node.metadata?.name ?? '', unschedulable: node.spec?.unschedulable === true };
  if (node.metadata?.uid) id.uid = node.metadata.uid;
  if (node.status?.nodeInfo?.bootID) id.bootID = node.status.nodeInfo.bootID;
  return id;
}

/** The Node of an inventory hostname: metadata.name, else k3s's recorded hostname. */
export function findClusterNode(nodes: readonly V1Node[], hostname: string): V1Node | undefined {
  return nodes.find((n) => n.metadata?.name === hostname) ?? nodes.find((n) => n.metadata?.annotations?.['k3s.io/hostname'] === hostname);
}

/**
 * `rebooted`: the Node object reports a boot that is not the one from before the rebuild. Without
 * it, a node that was powered off a moment ago would still pass `ready` (the API keeps reporting
 * Ready=True for ~40 s, node-monitor-grace-period) and the drill would "pass" before the reflashed
 * node ever booted.
 */
export function rebootCheck(hostname: string, before: NodeIdentity | undefined, node: V1Node): CheckResult {
  const now = nodeIdentity(node);
  if (before === undefined) {
    return { name: 'rebooted', node: hostname, status: 'pass', message: 'no earlier registration recorded: the registration counts' };
  }
  if (before.uid !== undefined && now.uid !== undefined && now.uid !== before.uid) {
    return { name: 'rebooted', node: hostname, status: 'pass', message: 'registered anew (new Node object)' };
  }
  if (before.bootID === undefined || now.bootID === undefined) {
    return { name: 'rebooted', node: hostname, status: 'pass', message: 'no bootID reported: cannot tell boots apart, the registration counts' };
  }
  return now.bootID !== before.bootID
    ? { name: 'rebooted', node: hostname, status: 'pass', message: `new boot (bootID ${now.bootID.slice(0, 8)}…, was ${before.bootID.slice(0, 8)}…)` }
    : {
        name: 'rebooted',
        node: hostname,
        status: 'fail',
        message: `still the boot from before the rebuild (bootID ${before.bootID.slice(0, 8)}…): the API reports the old node, the reflashed one has not registered yet`,
      };
}

/** The rejoin checks of one node: verify's per-node checks (registered, ready, role, k3s-version, arch, labels, taints) + `rebooted`. */
export function rejoinChecks(inventory: Inventory, snapshot: ClusterSnapshot, hostname: string, before: NodeIdentity | undefined): CheckResult[] {
  const results = runChecks(inventory, snapshot, { nodes: [hostname] });
  const node = findClusterNode(snapshot.nodes, hostname);
  return node === undefined ? results : [...results, rebootCheck(hostname, before, node)];
}

// ── drain ────────────────────────────────────────────────────────────────────────────────────────

export interface PodSummary {
  namespace: string;
  name: string;
  phase?: string;
  /** kinds of the controllers owning it (ReplicaSet, StatefulSet, DaemonSet, Job, Node …) */
  ownerKinds: string[];
  /** a static pod's API mirror (annotation kubernetes.io/config.mirror) */
  mirror: boolean;
}

export function podSummary(pod: V1Pod): PodSummary {
  const s: PodSummary = {
    namespace: pod.metadata?.namespace ?? 'default',
    name: pod.metadata?.name ?? '',
    ownerKinds: (pod.metadata?.ownerReferences ?? []).filter((o) => o.controller === true).map((o) => o.kind),
    mirror: pod.metadata?.annotations?.['kubernetes.io/config.mirror'] !== undefined,
  };
  if (pod.status?.phase) s.phase = pod.status.phase;
  return s;
}

export const podId = (p: Pick<PodSummary, 'namespace' | 'name'>): string => `${p.namespace}/${p.name}`;

export interface DrainPlan {
  evict: PodSummary[];
  /** left alone, as `kubectl drain --ignore-daemonsets` does */
  ignored: { pod: string; reason: string }[];
  /** the drain cannot finish while these are there */
  blocked: { pod: string; reason: string }[];
}

/** Which pods on the node to evict. Same rules as `kubectl drain --ignore-daemonsets` without `--force`. */
export function planDrain(pods: readonly PodSummary[]): DrainPlan {
  const plan: DrainPlan = { evict: [], ignored: [], blocked: [] };
  for (const p of [...pods].sort((a, b) => podId(a).localeCompare(podId(b)))) {
    if (p.mirror || p.ownerKinds.includes('Node')) plan.ignored.push({ pod: podId(p), reason: 'static (mirror) pod: the kubelet runs it from a file' });
    else if (p.ownerKinds.includes('DaemonSet')) plan.ignored.push({ pod: podId(p), reason: 'DaemonSet pod: comes back with the node' });
    else if (p.phase === 'Succeeded' || p.phase === 'Failed') plan.ignored.push({ pod: podId(p), reason: `already finished (${p.phase})` });
    else if (p.ownerKinds.length === 0) {
      plan.blocked.push({ pod: podId(p), reason: 'not managed by a controller: evicting it deletes it for good (move or delete it yourself, or use --skip-drain)' });
    } else plan.evict.push(p);
  }
  return plan;
}

// ── node password ────────────────────────────────────────────────────────────────────────────────

/** k3s keeps each node's password (hashed) in this Secret and refuses a node that presents another one. */
export const NODE_PASSWORD_NAMESPACE = 'kube-system';
export const nodePasswordSecretName = (hostname: string): string => `${hostname}.node-password.k3s`;

export type SecretPresence = 'present' | 'absent' | 'unknown';

/** What to tell the operator when the node did not come back in time. */
export function notRejoinedHints(o: { node: string; results: readonly CheckResult[]; passwordSecret: SecretPresence; resetDone: boolean; error?: string }): string[] {
  const hints: string[] = [];
  if (o.error !== undefined) hints.push(`the cluster API could not be read while waiting: ${o.error}`);
  const failing = (name: string): boolean => o.results.some((r) => r.name === name && r.status === 'fail');
  const neverCameBack = o.results.length === 0 || failing('registered') || failing('rebooted');
  const secret = `${NODE_PASSWORD_NAMESPACE}/${nodePasswordSecretName(o.node)}`;
  if (neverCameBack && !o.resetDone && o.passwordSecret !== 'absent') {
    hints.push(
      `${o.passwordSecret === 'present' ? `the Secret ${secret} exists` : `the Secret ${secret} could not be read (not allowed?)`}: k3s refuses a node whose /etc/rancher/node/password does not match it ` +
        '("Node password rejected, duplicate hostname or contents of \'/etc/rancher/node/password\' may not match server node-passwd entry" in `journalctl -u k3s` on the server, `journalctl -u k3s-agent` on the node). ' +
        'pi-image renders the same password on every rebuild, so this means the node was first built another way or with another node-password seed: ' +
        `re-run with --reset-node-password (deletes that Secret and the Node ${o.node})`,
    );
  }
  if (neverCameBack) {
    hints.push(`on the node (console or ssh as the admin user): \`cat /var/lib/pi-image/status.json\`, \`journalctl -u pi-image-join\`, \`cloud-init status --long\``);
  } else {
    hints.push(`the node registered but checks still fail: \`pi-image verify --node ${o.node}\` shows them; it stays cordoned until they pass (\`kubectl uncordon ${o.node}\` by hand)`);
  }
  return hints;
}

// ── verdict ──────────────────────────────────────────────────────────────────────────────────────

export type DrillVerdict = 'pass' | 'over-budget' | 'not-rejoined' | 'aborted';

export function drillVerdict(o: { budget: BudgetAccount; rejoined: boolean; aborted?: { phase: PhaseName; message: string } }): {
  verdict: DrillVerdict;
  ok: boolean;
  reason: string;
} {
  const b = `budget ${formatDuration(o.budget.budgetMs)}, used ${formatDuration(o.budget.usedMs)}`;
  if (o.aborted) return { verdict: 'aborted', ok: false, reason: `stopped in phase ${o.aborted.phase}: ${o.aborted.message} (${b})` };
  if (!o.rejoined) {
    return {
      verdict: 'not-rejoined',
      ok: false,
      reason: `the node did not pass its checks ${o.budget.exceeded ? 'before the budget ran out — over budget' : 'in the time given'} (${b})`,
    };
  }
  if (o.budget.exceeded) return { verdict: 'over-budget', ok: false, reason: `the node came back, but over budget (${b})` };
  return { verdict: 'pass', ok: true, reason: `the node came back and passed every check within budget (${b})` };
}

// ── evidence ─────────────────────────────────────────────────────────────────────────────────────

export const EVIDENCE_SCHEMA = 'pi-image/rebuild-evidence/v1';

export type DrillTarget =
  | { mode: 'device'; device: string; description?: string }
  | { mode: 'netboot'; root: string; server: string };

export interface FlashEvidence {
  result: 'ok' | 'failed' | 'skipped';
  bytes: number;
  imageSha256: string;
  readbackSha256?: string;
  /** a mapped write: only the block map's ranges were written, and each read back against its sha256 */
  mapped?: { bytes: number; ranges: number };
  writeMs: number;
  verifyMs: number;
  files: { target: string; path: string; ok: boolean; problem?: string }[];
}

export interface NetbootEvidence {
  tftpDir: string;
  nfsDir: string;
  bootFiles: number;
  rootfsEntries: number;
  sharedFiles: string;
}

export interface DrainEvidence {
  cordoned: boolean;
  /** the node was cordoned before the drill: it stays cordoned afterwards */
  alreadyCordoned: boolean;
  evicted: string[];
  ignored: { pod: string; reason: string }[];
  remaining: { pod: string; reason: string }[];
}

export interface RebuildEvidence {
  schema: typeof EVIDENCE_SCHEMA;
  drill: 'rebuild';
  cluster: string;
  node: string;
  role: string;
  operator: string;
  tool: { name: 'pi-image'; version: string };
  target: DrillTarget;
  /** the API the drill talked to (no credentials) */
  kube: { context: string; server: string; reachableAtStart: boolean };
  startedAt: string;
  endedAt: string;
  durationMs: number;
  budget: BudgetAccount;
  verdict: DrillVerdict;
  ok: boolean;
  reason: string;
  phases: PhaseRecord[];
  image: { sha256: string; size: number; instanceId: string; builtAt: string; buildRecord: string } | null;
  base: { name: string; sha256: string } | null;
  flash: FlashEvidence | null;
  netboot: NetbootEvidence | null;
  drain: DrainEvidence | null;
  nodePasswordReset: { deleted: string[]; notFound: string[] } | null;
  verify: { rounds: number; timedOut: boolean; checks: CheckResult[]; error?: string } | null;
  /** what happened to the cordon at the end */
  cordonAtEnd: string;
  notes: string[];
}

/** `<YYYY-MM-DD>-rebuild-<node>` (UTC date of the start); `-2`, `-3` … when taken (the naming of every review folder). */
export function evidenceDirName(node: string, startedAt: string, taken: readonly string[]): string {
  return evidenceFolderName(new Date(startedAt), `rebuild-${node}`, (f) => taken.includes(f));
}

export function renderEvidenceJson(e: RebuildEvidence): string {
  return `${JSON.stringify(e, null, 2)}\n`;
}

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const table = (head: readonly string[], rows: readonly (readonly string[])[]): string[] => [
  `| ${head.join(' | ')} |`,
  `| ${head.map(() => '---').join(' | ')} |`,
  ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
];

const VERDICT_TEXT: Record<DrillVerdict, string> = {
  pass: 'PASS',
  'over-budget': 'FAIL — over budget',
  'not-rejoined': 'FAIL — node did not come back',
  aborted: 'FAIL — drill aborted',
};

function targetText(t: DrillTarget): string {
  return t.mode === 'device' ? `flash ${t.device}${t.description ? ` (${t.description})` : ''}` : `netboot export to ${t.root} (server ${t.server})`;
}

const REVIEW_CHECKLIST = [
  'The verdict and the budget are as recorded above; an over-budget or failed drill has a follow-up issue',
  'The image sha256 matches the build record committed or attached for this change (`pi-image diff <node>` was clean before the drill)',
  'The node is schedulable again (`kubectl get node <node>`), or the reason it stays cordoned is written under Notes',
  'Pods evicted by the drain are Running elsewhere or back on the node (`kubectl get pods -A -o wide`)',
  'Anything done by hand during the drill (card moved, power cycled, Secret deleted) is written under Notes',
];

/** README.md of the evidence folder (same sections as docs/governance/reviews/templates/rebuild-drill.md). */
export function renderEvidenceMarkdown(e: RebuildEvidence): string {
  const l: string[] = [];
  l.push(`# Rebuild drill: ${e.node} (${e.startedAt.slice(0, 10)})`, '');
  l.push(`**Verdict: ${VERDICT_TEXT[e.verdict]}** — ${e.reason}`, '');
  l.push('## Summary', '');
  l.push(
    ...table(
      ['item', 'value'],
      [
        ['cluster', e.cluster],
        ['node', `${e.node} (${e.role})`],
        ['operator', e.operator],
        ['tool', `${e.tool.name} ${e.tool.version}`],
        ['target', targetText(e.target)],
        ['Kubernetes API', `${e.kube.server} (context ${e.kube.context})${e.kube.reachableAtStart ? '' : ' — unreachable at the start'}`],
        ['started', e.startedAt],
        ['ended', e.endedAt],
        ['duration', `${formatDuration(e.durationMs)} (${e.durationMs} ms)`],
        ['budget', `${formatDuration(e.budget.budgetMs)}; used ${formatDuration(e.budget.usedMs)}; ${e.budget.exceeded ? 'EXCEEDED' : `${formatDuration(e.budget.remainingMs)} left`}`],
        ['image sha256', e.image ? e.image.sha256 : '— (not built)'],
        ['base image sha256', e.base ? `${e.base.sha256} (${e.base.name})` : '—'],
        ['instance id', e.image ? e.image.instanceId : '—'],
        ['flash verification', e.flash ? `${e.flash.result}${flashReadback(e.flash)}` : e.netboot ? 'n/a (netboot export)' : '— (not flashed)'],
        ['cordon at the end', e.cordonAtEnd],
      ],
    ),
    '',
  );
  l.push('## Phases', '');
  l.push(...table(['phase', 'status', 'started', 'duration', 'what happened'], e.phases.map((p) => [p.name, p.status, p.startedAt, secs(p.durationMs), p.summary])));
  l.push('');
  const detailed = e.phases.filter((p) => p.details.length > 0);
  for (const p of detailed) {
    l.push(`### ${p.name}`, '', ...p.details.map((d) => `- ${d}`), '');
  }
  l.push('## Verify checks (this node)', '');
  if (e.verify && e.verify.checks.length > 0) {
    l.push(`${e.verify.rounds} round${e.verify.rounds === 1 ? '' : 's'}${e.verify.timedOut ? ', gave up at the deadline' : ''}.`, '');
    l.push(...table(['check', 'status', 'message'], e.verify.checks.map((c) => [c.name, c.status, c.message])));
  } else {
    l.push(e.verify?.error ? `No result: ${e.verify.error}` : 'Not run.');
  }
  l.push('');
  if (e.flash && e.flash.files.length > 0) {
    l.push('## Files read back from the card', '');
    l.push(...table(['file', 'result'], e.flash.files.map((f) => [`${f.target}:${f.path}`, f.ok ? 'ok' : `FAIL ${f.problem ?? ''}`])));
    l.push('');
  }
  l.push('## Notes', '');
  l.push(...(e.notes.length > 0 ? e.notes.map((n) => `- ${n}`) : ['- none']), '');
  l.push('## Review', '');
  l.push(...REVIEW_CHECKLIST.map((i) => `- [ ] ${i}`), '');
  l.push('Reviewer: ______________________  Date: __________  Decision (accept / repeat the drill): ______________________', '');
  l.push('Follow-ups (issue links): ', '');
  l.push(`Machine-readable: \`evidence.json\` (schema \`${e.schema}\`). Written by \`pi-image rebuild\`; no secret values are recorded.`, '');
  return l.join('\n');
}

/** The `-o text` report of the command. */
export function renderDrillText(e: RebuildEvidence, evidenceDir: string): string {
  const l: string[] = [];
  l.push(`rebuild drill ${e.node}: ${VERDICT_TEXT[e.verdict]}`);
  l.push(`  ${e.reason}`);
  for (const p of e.phases) l.push(`  ${p.name.padEnd(19)} ${p.status.padEnd(7)} ${secs(p.durationMs).padStart(8)}  ${p.summary}`);
  if (e.verify && e.verify.checks.length > 0) {
    const s = summarize(e.verify.checks);
    l.push(`  checks: ${s.pass} ok, ${s.fail} failing, ${s.warn} warning${s.warn === 1 ? '' : 's'}`);
    for (const c of e.verify.checks.filter((x) => x.status !== 'pass')) l.push(`    ${c.status === 'fail' ? 'FAIL' : 'warn'} ${c.name}: ${c.message}`);
  }
  l.push(`  cordon: ${e.cordonAtEnd}`);
  for (const n of e.notes) l.push(`  note: ${n}`);
  l.push(`evidence: ${evidenceDir}/evidence.json, ${evidenceDir}/README.md`);
  return `${l.join('\n')}\n`;
}

/** How the card was read back: the whole image's sha256, or each mapped range's. */
function flashReadback(f: FlashEvidence): string {
  if (f.mapped !== undefined) return ` (read back the ${f.mapped.ranges} mapped ranges of the block map, ${f.mapped.bytes} bytes, each against its sha256)`;
  return f.readbackSha256 ? ` (read back sha256 ${f.readbackSha256})` : '';
}
