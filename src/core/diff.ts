/**
 * `pi-image diff`, pure part: what reflashing a node would change, as unified diffs of the files the
 * last build put into its image against the files rendered now — with every secret value masked on
 * BOTH sides before diffing — plus per-secret changed/unchanged lines, the instance-id change, the
 * text and Markdown reports and the review evidence. The diff algorithm is jsdiff's.
 *
 * No fs, no processes, no clock: the app layer (src/app/diff.ts) reads images, records and secrets
 * and passes contents, times and values in.
 */
import { FILE_HEADERS_ONLY, formatPatch, structuredPatch } from 'diff';
import { parse } from 'yaml';
import type { Role, Secrets } from './model.js';
import { redact } from './redact.js';
import { nodePassword } from './render/k3s.js';
import { NODE_PATHS } from './render/paths.js';
import type { SecretName } from './secrets.js';

// ─── masking ───────────────────────────────────────────────────────────────────────────────────

/** Names a masked value is shown as: `<secret:agent-token>`. `node-password` is derived from the seed. */
export type MaskLabel = SecretName | 'node-password';

export interface MaskValue {
  label: MaskLabel;
  value: string;
  /** set when the built and the current value differ, so the diff shows the line that changes */
  side?: 'old' | 'new';
}

export function maskToken(label: MaskLabel, side?: 'old' | 'new'): string {
  return side ? `<secret:${label}:${side}>` : `<secret:${label}>`;
}

/**
 * The values to mask in a built-vs-rendered diff: a value that is the same on both sides becomes
 * `<secret:name>`; one that differs becomes `<secret:name:old>` / `<secret:name:new>`.
 */
export function maskPair(built: readonly MaskValue[], now: readonly MaskValue[]): MaskValue[] {
  const nowSet = new Set(now.map((v) => v.value));
  const builtSet = new Set(built.map((v) => v.value));
  return [
    ...now.map((v) => (builtSet.has(v.value) || built.every((b) => b.label !== v.label) ? v : { ...v, side: 'new' as const })),
    ...built.filter((v) => !nowSet.has(v.value)).map((v) => ({ ...v, side: 'old' as const })),
  ];
}

/**
 * Replaces every occurrence of every value (as is and JSON-escaped) by `<secret:label>`, longest
 * values first; then runs `redact` over the result with the same values as the last line of defence.
 */
export function maskSecrets(text: string, values: readonly MaskValue[]): string {
  const sorted = values.filter((v) => v.value.length > 0).sort((a, b) => b.value.length - a.value.length);
  let out = text;
  for (const v of sorted) {
    for (const form of new Set([v.value, JSON.stringify(v.value).slice(1, -1)])) {
      if (form.length > 0) out = out.split(form).join(maskToken(v.label, v.side));
    }
  }
  return redact(out, sorted.map((v) => v.value));
}

/** The secret values a node's rendered files hold now (servers: both tokens; agents: the agent token). */
export function renderedSecretValues(role: Role, hostname: string, secrets: Secrets): MaskValue[] {
  const out: MaskValue[] = [];
  if (role === 'server') out.push({ label: 'cluster-token', value: secrets.clusterToken });
  out.push({ label: 'agent-token', value: secrets.agentToken });
  out.push({ label: 'node-password', value: nodePassword(secrets.nodePasswordSeed, hostname) });
  out.push({ label: 'node-password-seed', value: secrets.nodePasswordSeed });
  if (secrets.wifiPsk) out.push({ label: 'wifi-psk', value: secrets.wifiPsk });
  return out;
}

/** What a built image's seed says about its secrets (read back from user-data / network-config). */
export interface BuiltSecrets {
  values: MaskValue[];
  /** false when a secret the role must carry was not found: the built seed's contents must not be shown */
  complete: boolean;
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/**
 * Finds the secret values in a built node's `user-data` (the `write_files` entries of the token
 * file(s) and the node password) and `network-config` (Wi-Fi passwords). The values are only used
 * to mask them and to compare them with the current ones; they are never returned to the user.
 */
export function builtSecretValues(role: Role, userData: string, networkConfig?: string): BuiltSecrets {
  const values: MaskValue[] = [];
  let doc: unknown;
  try {
    doc = parse(userData, { version: '1.1' });
  } catch {
    return { values, complete: false };
  }
  const entries = asRecord(doc)?.write_files;
  const byPath = new Map<string, string>();
  if (Array.isArray(entries)) {
    for (const e of entries) {
      const r = asRecord(e);
      if (r && typeof r.path === 'string' && typeof r.content === 'string') byPath.set(r.path, r.content.trim());
    }
  }
  const wanted: [string, MaskLabel][] = [
    [NODE_PATHS.tokenFile, role === 'server' ? 'cluster-token' : 'agent-token'],
    ...(role === 'server' ? [[NODE_PATHS.agentTokenFile, 'agent-token'] as [string, MaskLabel]] : []),
    [NODE_PATHS.nodePassword, 'node-password'],
  ];
  let complete = true;
  for (const [path, label] of wanted) {
    const v = byPath.get(path);
    if (v) values.push({ label, value: v });
    else complete = false;
  }
  if (networkConfig !== undefined) {
    try {
      const wifis = asRecord(asRecord(asRecord(parse(networkConfig, { version: '1.1' }))?.network)?.wifis) ?? {};
      for (const w of Object.values(wifis)) {
        for (const ap of Object.values(asRecord(asRecord(w)?.['access-points']) ?? {})) {
          const pw = asRecord(ap)?.password;
          if (typeof pw === 'string' && pw !== '') values.push({ label: 'wifi-psk', value: pw });
        }
      }
    } catch {
      complete = false;
    }
  }
  return { values, complete };
}

// ─── secrets: changed / unchanged ──────────────────────────────────────────────────────────────

export type SecretState = 'unchanged' | 'changed' | 'unknown';

export interface SecretChange {
  name: SecretName;
  status: SecretState;
  /** how it was decided: values read back from the image, or the build record's digest + the store's change times */
  basis: 'image' | 'record';
}

/** The secrets a node of this role carries. */
export function secretsOfRole(role: Role, wifi: boolean): SecretName[] {
  const names: SecretName[] = role === 'server' ? ['cluster-token', 'agent-token', 'node-password-seed'] : ['agent-token', 'node-password-seed'];
  if (wifi) names.push('wifi-psk');
  return names;
}

/** Compares the values read back from the image with the ones rendered now (the seed via the derived node password). */
export function compareSecretsFromImage(names: readonly SecretName[], built: readonly MaskValue[], now: readonly MaskValue[]): SecretChange[] {
  const pick = (list: readonly MaskValue[], label: MaskLabel) => list.find((v) => v.label === label)?.value;
  return names.map((name) => {
    const label: MaskLabel = name === 'node-password-seed' ? 'node-password' : name;
    const b = pick(built, label);
    const n = pick(now, label);
    const status: SecretState = b === undefined || n === undefined ? (b === n ? 'unknown' : 'changed') : b === n ? 'unchanged' : 'changed';
    return { name, status, basis: 'image' };
  });
}

/**
 * Without the image: the build record's secrets digest against the current one; when they differ, a
 * secret counts as changed when the store says it was created or rotated after the build.
 */
export function compareSecretsFromRecord(
  names: readonly SecretName[],
  record: { secretsDigest: string; builtAt: string },
  current: { digest: string; changedAt: Partial<Record<SecretName, string>> },
): SecretChange[] {
  if (record.secretsDigest === current.digest) return names.map((name) => ({ name, status: 'unchanged', basis: 'record' }));
  const built = Date.parse(record.builtAt);
  const later = (name: SecretName) => {
    const t = current.changedAt[name];
    return t !== undefined && Date.parse(t) > built;
  };
  const any = names.some(later);
  return names.map((name) => ({ name, status: !any ? 'unknown' : later(name) ? 'changed' : 'unchanged', basis: 'record' }));
}

// ─── files ─────────────────────────────────────────────────────────────────────────────────────

export interface Hunk {
  oldStart: number;
  oldLines: number;
  newStart: number;
  newLines: number;
  lines: string[];
}

export type FileStatus = 'unchanged' | 'changed' | 'added' | 'removed' | 'unknown';

export interface FileDiff {
  target: 'boot' | 'root';
  /** as in the build record: `user-data`, `cmdline.txt`, `/var/lib/pi-image/manifests/…` */
  path: string;
  status: FileStatus;
  /** `content`: read back from the image and diffed; `hash`: compared by hash only (no content) */
  basis: 'content' | 'hash';
  secret: boolean;
  /** masked hunks (empty when unchanged, compared by hash, or only secret values differ) */
  hunks: Hunk[];
  /** the masked unified diff of this file ('' when there is none to show) */
  patch: string;
  note?: string;
}

/** `built/<node>/user-data`, `rendered/<node>/rootfs/var/lib/…` */
export function sidePath(side: 'built' | 'rendered', node: string, target: 'boot' | 'root', path: string): string {
  const rel = target === 'root' ? `rootfs/${path.replace(/^\/+/, '')}` : path.replace(/^\/+/, '');
  return `${side}/${node}/${rel}`;
}

export interface ContentDiffInput {
  node: string;
  target: 'boot' | 'root';
  path: string;
  secret: boolean;
  /** the file in the built image; undefined when the build did not write it */
  built?: string;
  /** the file as rendered now; undefined when a build now would not write it */
  rendered?: string;
  /** every secret value (old and new) to mask on both sides */
  mask: readonly MaskValue[];
  /** false: the built side may hold secret values we could not locate; show no content */
  showContent?: boolean;
}

/** Unified diff of one file with secrets masked on both sides (jsdiff, 3 lines of context). */
export function contentDiff(input: ContentDiffInput): FileDiff {
  const { node, target, path, secret } = input;
  const base = { target, path, basis: 'content' as const, secret, hunks: [] as Hunk[], patch: '' };
  if (input.built === undefined && input.rendered === undefined) return { ...base, status: 'unknown' };
  const status: FileStatus =
    input.built === undefined ? 'added' : input.rendered === undefined ? 'removed' : input.built === input.rendered ? 'unchanged' : 'changed';
  if (status === 'unchanged') return { ...base, status };
  if (input.showContent === false) {
    return { ...base, status, note: 'contents not shown: the secret values in the built file could not be located to mask them' };
  }
  const oldText = maskSecrets(input.built ?? '', input.mask);
  const newText = maskSecrets(input.rendered ?? '', input.mask);
  if (oldText === newText) return { ...base, status, note: 'only secret values differ (see the secret lines)' };
  const p = structuredPatch(sidePath('built', node, target, path), sidePath('rendered', node, target, path), oldText, newText, undefined, undefined, {
    context: 3,
  });
  const hunks = p.hunks.map((h) => ({ oldStart: h.oldStart, oldLines: h.oldLines, newStart: h.newStart, newLines: h.newLines, lines: [...h.lines] }));
  return { ...base, status, hunks, patch: formatPatch(p, FILE_HEADERS_ONLY) };
}

export interface HashDiffInput {
  target: 'boot' | 'root';
  path: string;
  secret: boolean;
  built?: string;
  rendered?: string;
  note?: string;
}

/** Compares a file by hash (the build record's sha256 / HMAC digest): "changed", no content. */
export function hashDiff(input: HashDiffInput): FileDiff {
  const status: FileStatus =
    input.built === undefined && input.rendered === undefined
      ? 'unknown'
      : input.built === undefined
        ? 'added'
        : input.rendered === undefined
          ? 'removed'
          : input.built === input.rendered
            ? 'unchanged'
            : 'changed';
  return {
    target: input.target,
    path: input.path,
    status,
    basis: 'hash',
    secret: input.secret,
    hunks: [],
    patch: '',
    ...(input.note ? { note: input.note } : {}),
  };
}

// ─── nodes ─────────────────────────────────────────────────────────────────────────────────────

export interface NodeDiff {
  node: string;
  role: Role;
  status: 'unchanged' | 'changed' | 'never-built';
  /** what the rendered files were compared with */
  source: 'image' | 'record' | 'none';
  /** the build record and image compared with (as given to the command) */
  record?: string;
  image?: string;
  builtAt?: string;
  instanceId: { built?: string; rendered: string; changed: boolean };
  secrets: SecretChange[];
  files: FileDiff[];
  notes: string[];
}

/** Whether anything would change: a file, a secret or the instance id (never built counts as a change). */
export function nodeChanged(d: Omit<NodeDiff, 'status'>): boolean {
  return (
    d.source === 'none' ||
    d.instanceId.changed ||
    d.secrets.some((s) => s.status === 'changed') ||
    d.files.some((f) => f.status === 'changed' || f.status === 'added' || f.status === 'removed')
  );
}

export function fileLabel(f: Pick<FileDiff, 'target' | 'path'>): string {
  return f.target === 'root' ? `rootfs${f.path.startsWith('/') ? '' : '/'}${f.path}` : f.path;
}

/** Text report of one node: status line, instance id, secrets, files, then the masked patches. */
export function formatNodeDiff(d: NodeDiff): string {
  const lines: string[] = [];
  if (d.status === 'never-built') {
    lines.push(`${d.node} (${d.role}): never built — no build record ${d.record ?? ''}`.trimEnd());
    lines.push(`  run \`pi-image build ${d.node}\` to build it; reflashing needs an image first`);
    return `${lines.join('\n')}\n`;
  }
  const against = d.source === 'image' ? `image ${d.image}` : `build record ${d.record} (image not readable: hashes only)`;
  lines.push(`${d.node} (${d.role}): ${d.status === 'changed' ? 'changed' : 'unchanged'} — rendered now vs ${against}, built ${d.builtAt ?? '?'}`);
  if (d.instanceId.changed) {
    lines.push(`  instance-id ${d.instanceId.built ?? '?'} → ${d.instanceId.rendered} (a reflash re-runs cloud-init on first boot)`);
  } else {
    lines.push(`  instance-id ${d.instanceId.rendered} (unchanged: cloud-init would not run again)`);
  }
  for (const s of d.secrets) lines.push(`  secret ${s.name}: ${s.status}${s.status === 'unknown' ? ' (secrets changed since the build; which one needs the image)' : ''}`);
  for (const f of d.files) {
    const how = f.basis === 'hash' && f.status !== 'unchanged' ? ' (by hash, no content)' : '';
    lines.push(`  ${f.status.padEnd(9)} ${fileLabel(f)}${f.secret ? ' (secret)' : ''}${how}${f.note ? ` — ${f.note}` : ''}`);
  }
  for (const n of d.notes) lines.push(`  note: ${n}`);
  const patches = d.files.map((f) => f.patch).filter((p) => p !== '');
  return `${lines.join('\n')}\n${patches.join('')}`;
}

/** All masked patches of a report, for diff.patch. */
export function combinedPatch(nodes: readonly NodeDiff[]): string {
  return nodes.flatMap((n) => n.files.map((f) => f.patch)).filter((p) => p !== '').join('');
}

export interface NodeCounts {
  node: string;
  status: NodeDiff['status'];
  instanceIdChanged: boolean;
  changed: number;
  added: number;
  removed: number;
  unchanged: number;
  hashOnly: number;
  secretsChanged: SecretName[];
}

export function countNode(d: NodeDiff): NodeCounts {
  const n = (s: FileStatus) => d.files.filter((f) => f.status === s).length;
  return {
    node: d.node,
    status: d.status,
    instanceIdChanged: d.instanceId.changed,
    changed: n('changed'),
    added: n('added'),
    removed: n('removed'),
    unchanged: n('unchanged'),
    hashOnly: d.files.filter((f) => f.basis === 'hash' && f.status !== 'unchanged').length,
    secretsChanged: d.secrets.filter((s) => s.status === 'changed').map((s) => s.name),
  };
}

/** The closing line of the text report. */
export function nodesVerdict(nodes: readonly NodeDiff[]): string {
  const changed = nodes.filter((n) => n.status !== 'unchanged');
  if (changed.length === 0) return `no changes: reflashing ${nodes.length === 1 ? nodes[0]!.node : `these ${nodes.length} nodes`} would write what the last build wrote`;
  const names = changed.map((n) => (n.status === 'never-built' ? `${n.node} (never built)` : n.node));
  return `${changed.length} of ${nodes.length} node(s) would change on reflash: ${names.join(', ')} — rebuild them with \`pi-image build\` before flashing`;
}

// ─── cluster (kubectl diff) ────────────────────────────────────────────────────────────────────

export interface ClusterDiff {
  status: 'unchanged' | 'changed';
  manifestsDir: string;
  /** objects kubectl reported, as its file names say (`apps.v1.Deployment.monitoring.grafana`) */
  objects: string[];
  /** kubectl's diff output */
  patch: string;
  kubectl: { args: string[]; exitCode: number };
}

/**
 * Object names from `kubectl diff` output: its external diff (`diff -u -N`) prints a
 * `diff -u -N /tmp/LIVE-…/<group>.<version>.<Kind>.<ns>.<name> /tmp/MERGED-…/…` line or `+++` header
 * per object.
 */
export function kubectlDiffObjects(output: string): string[] {
  const out: string[] = [];
  for (const line of output.split('\n')) {
    const m = /^\+\+\+ (\S+)/.exec(line) ?? /^diff .* (\S+)$/.exec(line);
    if (!m) continue;
    const name = m[1]!.split('/').pop()!;
    if (name !== '' && name !== 'null' && !out.includes(name)) out.push(name);
  }
  return out;
}

export function formatClusterDiff(c: ClusterDiff): string {
  const head =
    c.status === 'unchanged'
      ? `cluster: no changes — the live objects match ${c.manifestsDir}\n`
      : `cluster: ${c.objects.length} object(s) differ from ${c.manifestsDir}: ${c.objects.join(', ')}\n`;
  return `${head}${c.patch}${c.patch === '' || c.patch.endsWith('\n') ? '' : '\n'}`;
}

// ─── evidence ──────────────────────────────────────────────────────────────────────────────────

export interface EvidenceMeta {
  /** `diff-<node>`, `diff-all`, `diff-cluster` */
  name: string;
  who: string;
  when: string;
  /** the command as run, e.g. `pi-image diff --all` */
  command: string;
  toolVersion: string;
  inventorySha256: string;
  secretsVersion?: number;
}

const NODE_CHECKLIST = [
  'Read the whole `diff.patch`; every hunk is intended (an inventory edit, a template or version change) and nothing else',
  'Every `secret …: changed` line matches a planned rotation, and the cluster-side steps of docs/runbooks/secrets-rotation.md are scheduled before the reflash',
  'node-password-seed is unchanged — or, for each node to reflash, deleting its `<hostname>.node-password.k3s` secret is planned',
  'Every instance-id change is expected: those nodes re-run cloud-init on their first boot after the reflash',
  'An etcd snapshot was taken before reflashing a server (`sudo k3s etcd-snapshot save` on a server); servers are reflashed one at a time',
  'The changed nodes are rebuilt with `pi-image build`, and each card is written with `pi-image flash` (which reads it back)',
  '`pi-image verify --wait` is green afterwards, and its output is attached to this folder',
  'Reviewer name, date and decision (approve / request changes) are recorded below',
];

const CLUSTER_CHECKLIST = [
  'Read the whole `diff.patch`; every object change is intended and matches a reviewed change to manifests/ in git',
  'No RBAC, Secret or NetworkPolicy change widens access unexpectedly',
  'HelmChart version bumps: the chart release notes were read (breaking values, CRD upgrades)',
  'The apply path is agreed: k3s auto-deploy from the servers\' /var/lib/rancher/k3s/server/manifests (rebuilt server image or copied file), or `kubectl apply -f manifests/`',
  '`pi-image verify` (baseline checks) is green afterwards, and its output is attached to this folder',
  'Reviewer name, date and decision (approve / request changes) are recorded below',
];

function metaLines(meta: EvidenceMeta): string[] {
  return [
    `- **Who:** ${meta.who}`,
    `- **When:** ${meta.when}`,
    `- **What:** \`${meta.command}\``,
    `- **Tool:** pi-image ${meta.toolVersion}`,
    `- **Inventory sha256:** \`${meta.inventorySha256}\``,
    ...(meta.secretsVersion === undefined ? [] : [`- **Secrets store version:** ${meta.secretsVersion} (values are never recorded here)`]),
  ];
}

function checklist(items: readonly string[]): string[] {
  return [...items.map((i) => `- [ ] ${i}`), '', 'Reviewer: ______________________  Date: __________  Decision: ______________________'];
}

/** summary.md for a node diff: meta, per-node counts, the review-before-apply checklist. */
export function nodesSummaryMarkdown(meta: EvidenceMeta, nodes: readonly NodeDiff[]): string {
  const rows = nodes.map(countNode);
  const changedNodes = rows.filter((r) => r.status !== 'unchanged').length;
  return [
    `# Review: ${meta.name}`,
    '',
    'What reflashing these nodes would change: the files rendered now from the inventory and secrets,',
    'against what the last `pi-image build` put into each image. Secret values are masked as',
    '`<secret:name>` in `diff.patch`; this folder holds no secret.',
    '',
    ...metaLines(meta),
    '',
    `**Result:** ${changedNodes === 0 ? 'no changes' : `${changedNodes} of ${rows.length} node(s) would change`}`,
    '',
    '| node | status | instance-id | files changed | added | removed | unchanged | by hash only | secrets changed |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.node} | ${r.status} | ${r.status === 'never-built' ? '—' : r.instanceIdChanged ? 'changes' : 'same'} | ${r.changed} | ${r.added} | ${r.removed} | ${r.unchanged} | ${r.hashOnly} | ${r.secretsChanged.join(', ') || '—'} |`,
    ),
    '',
    '## Review before applying',
    '',
    ...checklist(NODE_CHECKLIST),
    '',
  ].join('\n');
}

/** summary.md for a cluster diff. */
export function clusterSummaryMarkdown(meta: EvidenceMeta, c: ClusterDiff): string {
  return [
    `# Review: ${meta.name}`,
    '',
    `What applying ${c.manifestsDir} would change in the running cluster (\`kubectl ${c.kubectl.args.join(' ')}\`, exit ${c.kubectl.exitCode}).`,
    'kubectl masks the data of Secret objects in its output.',
    '',
    ...metaLines(meta),
    '',
    `**Result:** ${c.status === 'unchanged' ? 'no changes' : `${c.objects.length} object(s) differ`}`,
    '',
    ...(c.objects.length ? ['| object |', '| --- |', ...c.objects.map((o) => `| ${o} |`), ''] : []),
    '## Review before applying',
    '',
    ...checklist(CLUSTER_CHECKLIST),
    '',
  ].join('\n');
}
