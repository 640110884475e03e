/**
 * `pi-image boot-test`: what to look at on a booted node and how to judge it. Pure.
 * The app layer boots the image under QEMU, runs `probeScript()` over SSH as the admin user and
 * hands the output to `evaluateBoot`, which returns named checks (the same shape as `verify`).
 */
import { parse as parseYaml } from 'yaml';
import type { CheckResult } from './verify/checks.js';
import { JOIN_UNIT_NAME, NODE_PATHS } from './render/paths.js';

export interface BootExpectations {
  hostname: string;
  role: 'server' | 'agent';
  adminUser: string;
  sshKeys: readonly string[];
  instanceId: string;
  /** the rendered /etc/rancher/k3s/config.yaml */
  k3sConfigYaml: string;
  /** sha256 of each secret file as rendered; null: the file must NOT be on the node */
  secretFiles: Readonly<Record<string, string | null>>;
  /** the image carries the k3s air-gap payload */
  airgap: boolean;
  /** where k3s should find what the image carries (absent: those checks are skipped) */
  k3s?: K3sExpectations;
}

export interface K3sExpectations {
  /** k3s' data dir on the node (config.yaml data-dir, default /var/lib/rancher/k3s) */
  dataDir: string;
  /** the node's data disk mount point, when it has one */
  dataMount?: string;
  /** the unit install.sh creates: k3s (server) or k3s-agent */
  service: 'k3s' | 'k3s-agent';
  /** air-gap image tarballs the image stages (copied into <dataDir>/agent/images) */
  airgapImages: readonly string[];
  /** manifest file names a server image stages (copied into <dataDir>/server/manifests) */
  manifests: readonly string[];
}

/** Join phases in order (the join script's enter_phase calls). */
const JOIN_PHASES = [
  'starting',
  'waiting-for-clock',
  'waiting-for-data-disk',
  'waiting-for-network',
  'waiting-for-server',
  'staging-k3s-files',
  'installing',
  'starting-k3s',
  'waiting-for-registration',
  'removing-seed-secrets',
  'joined',
] as const;

function phaseAtLeast(phase: string | undefined, wanted: (typeof JOIN_PHASES)[number]): boolean {
  const i = JOIN_PHASES.indexOf(phase as (typeof JOIN_PHASES)[number]);
  return i >= 0 && i >= JOIN_PHASES.indexOf(wanted);
}

/** Reads the join unit's status file on the node (prints nothing while there is none). */
export function joinStatusCommand(): string {
  return `sudo -n cat ${shq(`${NODE_PATHS.statusDir}/status.json`)} 2>/dev/null`;
}

/**
 * Whether the join has got as far as a boot test can take it, so the probe describes the node's
 * settled state instead of a moment in its first minutes: it joined, or it waits for a server that
 * the lone VM cannot reach (an agent; a server joining another server). Any other phase is still on
 * its way (or stuck: boot-test then probes at its deadline and the checks say where it stopped).
 */
export function joinSettled(statusJson: string): { settled: boolean; phase?: string } {
  let phase: string | undefined;
  try {
    const p = (JSON.parse(statusJson) as { phase?: unknown }).phase;
    if (typeof p === 'string') phase = p;
  } catch {
    /* no status yet */
  }
  return { settled: phase === 'joined' || phase === 'waiting-for-server', ...(phase === undefined ? {} : { phase }) };
}

/** Sections the probe prints, in order; each starts with a line `@@<name>`. */
export const PROBE_SECTIONS = [
  'hostname',
  'groups',
  'authorized-keys',
  'passwd',
  'sshd',
  'cloud-init',
  'cmdline',
  'k3s-config',
  'files',
  'unit',
  'status',
  'journal',
  'first-boot',
  'k3s-data',
  'k3s-service',
] as const;
export type ProbeSection = (typeof PROBE_SECTIONS)[number];
export type Probe = Partial<Record<ProbeSection, string>>;

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The bash script run on the node (as the admin user, who has passwordless sudo). Prints no secret. */
export function probeScript(exp: Pick<BootExpectations, 'adminUser' | 'secretFiles' | 'k3s'>): string {
  const files = Object.keys(exp.secretFiles).map(shq).join(' ');
  const k = exp.k3s;
  const k3sSections = k
    ? [
        // did first boot get past multi-user.target (userconf-pi's userconfig.service holds it when enabled)?
        'echo @@first-boot; echo "multi-user.target=$(systemctl is-active multi-user.target)"; echo "userconfig=$(systemctl is-enabled userconfig.service 2>/dev/null || true)"',
        `echo @@k3s-data; d=${shq(k.dataDir)}; ${k.dataMount ? `mountpoint -q ${shq(k.dataMount)} && echo mounted=yes || echo mounted=no; ` : ''}echo "data-dir=$d"; echo "images=$(sudo -n ls -1 "$d/agent/images" 2>/dev/null | tr '\n' ' ')"; echo "manifests=$(sudo -n ls -1 "$d/server/manifests" 2>/dev/null | tr '\n' ' ')"`,
        `echo @@k3s-service; systemctl show ${k.service}.service -p LoadState,UnitFileState,ActiveState,SubState,Type; echo "journal=$(sudo -n journalctl _SYSTEMD_UNIT=${k.service}.service SYSLOG_IDENTIFIER=k3s --no-pager -o cat -n 200 2>/dev/null | grep -v '^$' | tail -n 1)"`,
      ]
    : [];
  return [
    'export LC_ALL=C',
    'echo @@hostname; hostname',
    'echo @@groups; id -nG',
    'echo @@authorized-keys; cat ~/.ssh/authorized_keys 2>/dev/null',
    `echo @@passwd; sudo -n passwd -S ${shq(exp.adminUser)} 2>&1`,
    "echo @@sshd; sudo -n sshd -T 2>/dev/null | grep -Ei '^(passwordauthentication|kbdinteractiveauthentication|permitrootlogin) '",
    'echo @@cloud-init; cloud-init status --long --format json 2>/dev/null || cloud-init status --long 2>&1',
    'echo @@cmdline; cat /proc/cmdline',
    `echo @@k3s-config; sudo -n cat ${shq(NODE_PATHS.k3sConfig)} 2>&1`,
    // for every secret file: path, mode, owner, and the sha256 of its contents (never the contents)
    `echo @@files; for f in ${files}; do if sudo -n test -e "$f"; then printf '%s %s %s\\n' "$f" "$(sudo -n stat -c '%a %U' "$f")" "$(sudo -n sha256sum "$f" | cut -d' ' -f1)"; else echo "$f absent"; fi; done`,
    `echo @@unit; systemctl show ${JOIN_UNIT_NAME} -p UnitFileState,ActiveState,SubState,Result,NRestarts,ExecMainStatus; sudo -n test -e ${shq(NODE_PATHS.k3sBinary)} && echo k3s-binary=present || echo k3s-binary=absent`,
    `echo @@status; sudo -n cat ${shq(`${NODE_PATHS.statusDir}/status.json`)} 2>&1`,
    `echo @@journal; sudo -n journalctl -u ${JOIN_UNIT_NAME} --no-pager -o cat -n 40 2>&1 | tail -n 40`,
    ...k3sSections,
    'echo @@end',
  ].join('\n');
}

export function parseProbe(output: string): Probe {
  const probe: Probe = {};
  let current: ProbeSection | undefined;
  let lines: string[] = [];
  const flush = () => {
    if (current) probe[current] = lines.join('\n').trim();
  };
  for (const line of output.split('\n')) {
    const m = /^@@([a-z0-9-]+)$/.exec(line.trim());
    if (m) {
      flush();
      current = (PROBE_SECTIONS as readonly string[]).includes(m[1]!) ? (m[1] as ProbeSection) : undefined;
      lines = [];
    } else if (current) lines.push(line);
  }
  flush();
  return probe;
}

function check(name: string, node: string, ok: boolean, passMsg: string, failMsg: string): CheckResult {
  return { name, node, status: ok ? 'pass' : 'fail', message: ok ? passMsg : failMsg };
}

function keyBody(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(' ');
}

interface CloudInitStatus {
  status?: string;
  errors?: unknown[];
  recoverable_errors?: Record<string, unknown[]>;
  extended_status?: string;
}

function cloudInitCheck(node: string, text: string | undefined): CheckResult {
  if (!text) return check('cloud-init', node, false, '', 'no answer from `cloud-init status`');
  let st: CloudInitStatus | undefined;
  try {
    st = JSON.parse(text) as CloudInitStatus;
  } catch {
    const m = /^status:\s*(\S+)/m.exec(text);
    st = m ? { status: m[1]! } : undefined;
  }
  if (!st?.status) return check('cloud-init', node, false, '', `unreadable status: ${text.split('\n')[0]}`);
  // errors are reported at the top level and per stage (init-local, init, modules-config, modules-final)
  const stages = Object.entries(st as Record<string, unknown>).filter(
    ([, v]) => v !== null && typeof v === 'object' && !Array.isArray(v) && ('errors' in v || 'recoverable_errors' in v),
  ) as [string, CloudInitStatus][];
  const errors = [...new Set([...(st.errors ?? []).map(String), ...stages.flatMap(([stage, v]) => (v.errors ?? []).map((e) => `${stage}: ${String(e)}`))])];
  const recoverable = [
    ...new Set(
      [['', st] as [string, CloudInitStatus], ...stages].flatMap(([stage, v]) =>
        Object.entries(v.recoverable_errors ?? {}).flatMap(([level, list]) => list.map((e) => `${stage ? `${stage} ` : ''}${level}: ${String(e)}`)),
      ),
    ),
  ];
  if (st.status !== 'done') {
    const why = [...errors, ...recoverable].slice(0, 3).join('; ');
    return check('cloud-init', node, false, '', `status ${st.extended_status ?? st.status}${why ? `: ${why}` : ''}`);
  }
  if (errors.length || recoverable.length) {
    return check('cloud-init', node, false, '', `done with problems: ${[...errors, ...recoverable].slice(0, 3).join('; ')}`);
  }
  return check('cloud-init', node, true, 'done, no errors or warnings', '');
}

function parseKeyValues(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of (text ?? '').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

function k3sConfigCheck(node: string, exp: BootExpectations, text: string | undefined): CheckResult {
  let actual: Record<string, unknown>;
  let wanted: Record<string, unknown>;
  try {
    actual = (parseYaml(text ?? '') ?? {}) as Record<string, unknown>;
    wanted = parseYaml(exp.k3sConfigYaml) as Record<string, unknown>;
  } catch {
    return check('k3s-config', node, false, '', `${NODE_PATHS.k3sConfig} is not valid YAML`);
  }
  if (typeof actual !== 'object' || Object.keys(actual).length === 0) {
    return check('k3s-config', node, false, '', `${NODE_PATHS.k3sConfig} is missing or empty`);
  }
  const differing = [...new Set([...Object.keys(wanted), ...Object.keys(actual)])].filter(
    (k) => JSON.stringify(actual[k]) !== JSON.stringify(wanted[k]),
  );
  const summary = [
    wanted.server ? `server ${String(wanted.server)}` : wanted['cluster-init'] ? 'cluster-init' : 'server',
    `${(wanted['node-label'] as unknown[] | undefined)?.length ?? 0} labels`,
    `${(wanted['node-taint'] as unknown[] | undefined)?.length ?? 0} taints`,
  ].join(', ');
  return check(
    'k3s-config',
    node,
    differing.length === 0,
    `as rendered (${summary})`,
    `differs from the rendered config in ${differing.join(', ')}`,
  );
}

function secretFilesChecks(node: string, exp: BootExpectations, text: string | undefined): CheckResult[] {
  const seen = new Map<string, { mode: string; owner: string; sha: string } | 'absent'>();
  for (const line of (text ?? '').split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length === 2 && parts[1] === 'absent') seen.set(parts[0]!, 'absent');
    else if (parts.length === 4) seen.set(parts[0]!, { mode: parts[1]!, owner: parts[2]!, sha: parts[3]! });
  }
  return Object.entries(exp.secretFiles).map(([path, sha]) => {
    const got = seen.get(path);
    const name = path === NODE_PATHS.nodePassword ? 'node-password' : path === NODE_PATHS.agentTokenFile ? 'agent-token-file' : 'token-file';
    if (sha === null) {
      return check(name, node, got === 'absent', `${path} absent (${exp.role}s do not get it)`, `${path} is present on an ${exp.role}; it must not be`);
    }
    if (!got || got === 'absent') return check(name, node, false, '', `${path} is missing`);
    const problems = [
      got.mode === '600' ? '' : `mode ${got.mode} (want 600)`,
      got.owner === 'root' ? '' : `owner ${got.owner} (want root)`,
      got.sha === sha ? '' : 'contents differ from the rendered file',
    ].filter(Boolean);
    return check(name, node, problems.length === 0, `${path} 0600 root, contents as rendered`, `${path}: ${problems.join(', ')}`);
  });
}

function joinUnitCheck(node: string, exp: BootExpectations, probe: Probe): CheckResult {
  const unit = parseKeyValues(probe.unit);
  let status: { phase?: string; attempts?: number; run?: number; lastError?: string } = {};
  try {
    status = JSON.parse(probe.status ?? '') as typeof status;
  } catch {
    /* reported below */
  }
  const enabled = unit.UnitFileState === 'enabled';
  const ran = status.phase !== undefined;
  const journal = (probe.journal ?? '').split('\n').filter((l) => l.trim());
  const lastLines = journal.slice(-2).join(' | ');
  const desc = ran
    ? `phase ${status.phase}, run ${status.run ?? '?'}, attempt ${status.attempts ?? '?'}${status.lastError ? `, last error: ${status.lastError}` : ''}; unit ${unit.ActiveState ?? '?'}/${unit.SubState ?? '?'}, restarts ${unit.NRestarts ?? '?'}`
    : 'no status.json';
  if (!enabled) return check('join-unit', node, false, '', `${JOIN_UNIT_NAME} is ${unit.UnitFileState || 'not installed'}; ${desc}`);
  if (!ran) return check('join-unit', node, false, '', `${JOIN_UNIT_NAME} enabled but never ran (${desc}); journal: ${lastLines || 'empty'}`);
  return check('join-unit', node, true, `enabled and ran: ${desc}${lastLines ? `; journal: ${lastLines}` : ''}`, '');
}

function installPathCheck(node: string, exp: BootExpectations, probe: Probe): CheckResult {
  const binary = parseKeyValues(probe.unit)['k3s-binary'] === 'present';
  const journal = probe.journal ?? '';
  let status: { phase?: string; attempts?: number } = {};
  try {
    status = JSON.parse(probe.status ?? '') as typeof status;
  } catch {
    /* no status: judged from the journal alone */
  }
  const waitingForServer: CheckResult = {
    name: 'install-path',
    node,
    status: 'warn',
    message: `waiting for the server (attempt ${status.attempts ?? '?'}); an agent installs k3s once the server answers`,
  };
  if (exp.airgap) {
    const used = /k3s installed \(air-gapped\)/.test(journal);
    if (!used && binary && status.phase === 'waiting-for-server') return waitingForServer;
    return check(
      'install-path',
      node,
      binary && used,
      'air-gapped: the baked k3s binary and installer were used',
      `air-gap payload expected: k3s binary ${binary ? 'present' : 'absent'}, journal ${used ? 'shows' : 'does not show'} an air-gapped install`,
    );
  }
  if (/k3s install|installer|k3s installed/i.test(journal)) {
    return check('install-path', node, true, 'online install of the pinned version attempted (see join-unit for its state)', '');
  }
  if (status.phase === 'waiting-for-server') return waitingForServer;
  return check('install-path', node, false, '', `no k3s install attempt yet (phase ${status.phase ?? 'unknown'})`);
}

function words(v: string | undefined): string[] {
  return (v ?? '').split(/\s+/).filter(Boolean);
}

/** Checks of where k3s looks for what the image carries, and of the unit install.sh made. */
function k3sChecks(node: string, exp: BootExpectations, k: K3sExpectations, probe: Probe): CheckResult[] {
  const out: CheckResult[] = [];
  let status: { phase?: string } = {};
  try {
    status = JSON.parse(probe.status ?? '') as typeof status;
  } catch {
    /* judged as "no phase" */
  }
  const phase = status.phase;
  const boot = parseKeyValues(probe['first-boot']);
  const userconfig = boot.userconfig ?? '';
  out.push(
    check(
      'first-boot',
      node,
      boot['multi-user.target'] === 'active' && userconfig !== 'enabled',
      `multi-user.target reached; userconfig.service ${userconfig || 'not installed'}`,
      `multi-user.target is ${boot['multi-user.target'] ?? 'unknown'}, userconfig.service ${userconfig || 'unknown'} (an enabled userconf-pi rename holds first boot)`,
    ),
  );
  const data = parseKeyValues(probe['k3s-data']);
  if (k.dataMount) {
    const onDisk = k.dataDir === k.dataMount || k.dataDir.startsWith(`${k.dataMount}/`);
    out.push(
      check(
        'data-disk',
        node,
        data.mounted === 'yes' && onDisk,
        `mounted at ${k.dataMount}; k3s data dir ${k.dataDir} is on it`,
        data.mounted !== 'yes' ? `nothing is mounted at ${k.dataMount}` : `k3s data dir ${k.dataDir} is not on the data disk at ${k.dataMount}`,
      ),
    );
  }
  const staged = phaseAtLeast(phase, 'installing');
  const waiting = (what: string): CheckResult => ({ name: what, node, status: 'warn', message: `not staged yet: the join is in phase ${phase ?? 'unknown'} (files are copied after the server answers)` });
  if (k.airgapImages.length > 0) {
    const have = words(data.images);
    const missing = k.airgapImages.filter((i) => !have.includes(i));
    out.push(
      !staged && missing.length > 0
        ? waiting('airgap-images')
        : check('airgap-images', node, missing.length === 0, `${k.airgapImages.join(', ')} in ${k.dataDir}/agent/images`, `missing from ${k.dataDir}/agent/images: ${missing.join(', ')}`),
    );
  }
  if (exp.role === 'server' && k.manifests.length > 0) {
    const have = words(data.manifests);
    const missing = k.manifests.filter((m) => !have.includes(m));
    out.push(
      !staged && missing.length > 0
        ? waiting('manifests')
        : check('manifests', node, missing.length === 0, `${k.manifests.length} manifest(s) in ${k.dataDir}/server/manifests`, `missing from ${k.dataDir}/server/manifests: ${missing.join(', ')}`),
    );
  }
  const svc = parseKeyValues(probe['k3s-service']);
  const unit = `${k.service}.service`;
  if (!phaseAtLeast(phase, 'starting-k3s') && svc.LoadState !== 'loaded') {
    out.push({ name: 'k3s-service', node, status: 'warn', message: `${unit} not installed yet (join phase ${phase ?? 'unknown'})` });
  } else {
    const last = svc.journal ? `; last log: ${svc.journal}` : '';
    out.push(
      check(
        'k3s-service',
        node,
        svc.LoadState === 'loaded' && svc.UnitFileState === 'enabled' && svc.ActiveState === 'active',
        `${unit} enabled and active (Type=${svc.Type ?? '?'})${last}`,
        `${unit}: ${svc.LoadState === 'loaded' ? `${svc.UnitFileState ?? '?'}, ${svc.ActiveState ?? '?'}/${svc.SubState ?? '?'}` : 'not installed'}${last}`,
      ),
    );
  }
  return out;
}

/** Judges a probed node. Every check is named; a missing section fails its check. */
export function evaluateBoot(exp: BootExpectations, probe: Probe): CheckResult[] {
  const node = exp.hostname;
  const out: CheckResult[] = [];
  const host = probe.hostname?.trim();
  out.push(check('hostname', node, host === exp.hostname, `hostname ${host}`, `hostname is ${host || 'unknown'}, want ${exp.hostname}`));

  const groups = (probe.groups ?? '').split(/\s+/);
  const keys = new Set((probe['authorized-keys'] ?? '').split('\n').filter((l) => l.trim()).map(keyBody));
  const missingKeys = exp.sshKeys.filter((k) => !keys.has(keyBody(k)));
  out.push(
    check(
      'admin-user',
      node,
      groups.includes('sudo') && missingKeys.length === 0,
      `${exp.adminUser} in sudo, ${exp.sshKeys.length} authorized key(s)`,
      [!groups.includes('sudo') ? `${exp.adminUser} is not in group sudo` : '', missingKeys.length ? `${missingKeys.length} inventory key(s) missing from authorized_keys` : '']
        .filter(Boolean)
        .join('; '),
    ),
  );

  const sshd = parseKeyValues((probe.sshd ?? '').replace(/^(\S+)\s+/gm, '$1='));
  const locked = /^\S+\s+L\b/m.test(probe.passwd ?? '');
  out.push(
    check(
      'password-login',
      node,
      sshd.passwordauthentication === 'no' && locked,
      'disabled (sshd PasswordAuthentication no, password locked)',
      `sshd PasswordAuthentication ${sshd.passwordauthentication ?? 'unknown'}, password ${locked ? 'locked' : 'not locked'}`,
    ),
  );
  out.push(cloudInitCheck(node, probe['cloud-init']));

  const cmdline = probe.cmdline ?? '';
  const tokens = cmdline.split(/\s+/);
  const ds = `ds=nocloud;i=${exp.instanceId}`;
  out.push(
    check(
      'kernel-cmdline',
      node,
      tokens.includes('cgroup_enable=memory') && tokens.includes(ds),
      `cgroup_enable=memory and ${ds}`,
      `missing ${[tokens.includes('cgroup_enable=memory') ? '' : 'cgroup_enable=memory', tokens.includes(ds) ? '' : ds].filter(Boolean).join(' and ')}`,
    ),
  );
  out.push(k3sConfigCheck(node, exp, probe['k3s-config']));
  out.push(...secretFilesChecks(node, exp, probe.files));
  out.push(joinUnitCheck(node, exp, probe));

  out.push(installPathCheck(node, exp, probe));
  if (exp.k3s) out.push(...k3sChecks(node, exp, exp.k3s, probe));
  return out;
}
