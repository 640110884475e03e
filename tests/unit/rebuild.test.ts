/** The pure side of the rebuild drill: budget, "did it really reboot", drain plan, verdict, evidence text. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  budgetAccount,
  drillVerdict,
  evidenceDirName,
  EVIDENCE_SCHEMA,
  nodeIdentity,
  notRejoinedHints,
  phaseRecord,
  planDrain,
  podSummary,
  rebootCheck,
  type RebuildEvidence,
  rejoinChecks,
  renderDrillText,
  renderEvidenceJson,
  renderEvidenceMarkdown,
} from '../../src/core/rebuild.js';
import { k3sNode } from '../helpers/kube-api-standin.js';
import { pod } from '../helpers/rebuild-standin.js';
import { REPO_ROOT } from '../helpers/sample-inventory.js';
import { healthyNodes, verifyInventory } from '../helpers/verify-fixtures.js';

const inv = verifyInventory();
const NODE = 'pi-cluster-3';
const asNode = (o: Record<string, unknown>): V1Node => JSON.parse(JSON.stringify(o)) as V1Node;
const node3 = (): V1Node => asNode(healthyNodes(inv).find((n) => (n['metadata'] as { name: string }).name === NODE)!);
const withBoot = (n: V1Node, bootID: string, uid?: string): V1Node => {
  const c = JSON.parse(JSON.stringify(n)) as V1Node;
  c.status!.nodeInfo!.bootID = bootID;
  if (uid !== undefined) c.metadata!.uid = uid;
  return c;
};
const snapshot = (nodes: V1Node[]) => ({ nodes, namespaces: [], helmCharts: [] });

describe('budget', () => {
  it('accounts used and remaining time and flags only a real overrun', () => {
    const start = Date.parse('2025-12-01T10:00:00Z');
    expect(budgetAccount(60_000, start, start + 45_000)).toEqual({ budgetMs: 60_000, usedMs: 45_000, remainingMs: 15_000, exceeded: false });
    expect(budgetAccount(60_000, start, start + 60_000).exceeded).toBe(false);
    expect(budgetAccount(60_000, start, start + 60_001)).toEqual({ budgetMs: 60_000, usedMs: 60_001, remainingMs: 0, exceeded: true });
  });

  it('times phases from the given clock only', () => {
    const p = phaseRecord('build', 1_000, 4_500, 'ok', 'built', ['x']);
    expect(p).toEqual({ name: 'build', status: 'ok', startedAt: new Date(1_000).toISOString(), endedAt: new Date(4_500).toISOString(), durationMs: 3_500, summary: 'built', details: ['x'] });
  });
});

describe('rejoin: the reflashed node, not the old one', () => {
  const before = nodeIdentity(node3());

  it('fails while the API still reports the boot from before the rebuild (old node still Ready)', () => {
    const results = rejoinChecks(inv, snapshot(healthyNodes(inv).map(asNode)), NODE, before);
    expect(results.find((r) => r.name === 'ready')?.status).toBe('pass');
    const reboot = results.find((r) => r.name === 'rebooted');
    expect(reboot?.status).toBe('fail');
    expect(reboot?.message).toContain(before.bootID!.slice(0, 8));
  });

  it('passes on a new boot of the same Node object, or a new Node object', () => {
    expect(rebootCheck(NODE, before, withBoot(node3(), '0d6c3b1a-aaaa-4bbb-8ccc-123456789abc')).status).toBe('pass');
    const anew = rebootCheck(NODE, before, withBoot(node3(), before.bootID!, '11111111-2222-4333-8444-555555555555'));
    expect(anew.status).toBe('pass');
    expect(anew.message).toContain('registered anew');
  });

  it('counts a registration when there is nothing to compare with', () => {
    expect(rebootCheck(NODE, undefined, node3()).status).toBe('pass');
  });

  it('is verify\'s per-node checks plus `rebooted`, and only `registered` while the node is absent', () => {
    const others = healthyNodes(inv).map(asNode).filter((n) => n.metadata?.name !== NODE);
    expect(rejoinChecks(inv, snapshot(others), NODE, before).map((r) => [r.name, r.status])).toEqual([['registered', 'fail']]);
    const back = [...others, withBoot(node3(), '0d6c3b1a-aaaa-4bbb-8ccc-123456789abc')];
    const results = rejoinChecks(inv, snapshot(back), NODE, before);
    expect(results.map((r) => r.name)).toEqual(['registered', 'ready', 'role', 'k3s-version', 'arch', 'labels', 'taints', 'rebooted']);
    expect(results.every((r) => r.status === 'pass' && r.node === NODE)).toBe(true);
  });

  it('still fails a new boot that is not Ready or runs another k3s version', () => {
    const notReady = withBoot(asNode(k3sNode({ name: NODE, role: 'agent', ip: '10.0.0.13', ready: 'False', kubeletVersion: 'v1.32.9+k3s1', labels: { 'pi-image.io/pool': 'general' } })), 'b00710aa-0000-4000-8000-000000000001');
    const results = rejoinChecks(inv, snapshot([notReady]), NODE, before);
    expect(results.filter((r) => r.status === 'fail').map((r) => r.name)).toEqual(['ready', 'k3s-version']);
  });
});

describe('drain plan', () => {
  const summaries = (pods: Record<string, unknown>[]) => pods.map((p) => podSummary(p as V1Pod));

  it('evicts controller pods, leaves DaemonSet, static and finished pods, like kubectl drain --ignore-daemonsets', () => {
    const plan = planDrain(
      summaries([
        pod({ name: 'web-1', namespace: 'apps', node: NODE }),
        pod({ name: 'db-0', namespace: 'apps', node: NODE, owner: 'StatefulSet' }),
        pod({ name: 'svclb-1', namespace: 'kube-system', node: NODE, owner: 'DaemonSet' }),
        pod({ name: 'static-1', namespace: 'kube-system', node: NODE, owner: 'Node', mirror: true }),
        pod({ name: 'job-1', namespace: 'batch', node: NODE, owner: 'Job', phase: 'Succeeded' }),
      ]),
    );
    expect(plan.evict.map((p) => `${p.namespace}/${p.name}`)).toEqual(['apps/db-0', 'apps/web-1']);
    expect(plan.ignored.map((i) => i.pod)).toEqual(['batch/job-1', 'kube-system/static-1', 'kube-system/svclb-1']);
    expect(plan.ignored.find((i) => i.pod === 'kube-system/svclb-1')?.reason).toContain('DaemonSet');
    expect(plan.blocked).toEqual([]);
  });

  it('blocks on a pod no controller would recreate', () => {
    const plan = planDrain(summaries([pod({ name: 'debug', node: NODE, owner: null })]));
    expect(plan.evict).toEqual([]);
    expect(plan.blocked).toHaveLength(1);
    expect(plan.blocked[0]?.pod).toBe('default/debug');
    expect(plan.blocked[0]?.reason).toContain('--skip-drain');
  });
});

describe('verdict and hints', () => {
  const ok = budgetAccount(60_000, 0, 30_000);
  const over = budgetAccount(60_000, 0, 61_000);

  it('passes only when the node is back within budget', () => {
    expect(drillVerdict({ budget: ok, rejoined: true })).toMatchObject({ verdict: 'pass', ok: true });
    expect(drillVerdict({ budget: over, rejoined: true })).toMatchObject({ verdict: 'over-budget', ok: false });
    const lost = drillVerdict({ budget: over, rejoined: false });
    expect(lost).toMatchObject({ verdict: 'not-rejoined', ok: false });
    expect(lost.reason).toContain('over budget');
    const stopped = drillVerdict({ budget: ok, rejoined: false, aborted: { phase: 'drain', message: 'pods left' } });
    expect(stopped).toMatchObject({ verdict: 'aborted', ok: false });
    expect(stopped.reason).toContain('drain: pods left');
  });

  it('points at the node password only when its Secret may be what refuses the node', () => {
    const absent = [{ name: 'registered', node: NODE, status: 'fail' as const, message: 'not registered' }];
    const stale = [{ name: 'rebooted', node: NODE, status: 'fail' as const, message: 'old boot' }];
    const text = (o: Parameters<typeof notRejoinedHints>[0]) => notRejoinedHints(o).join('\n');
    expect(text({ node: NODE, results: stale, passwordSecret: 'present', resetDone: false })).toContain(`--reset-node-password`);
    expect(text({ node: NODE, results: absent, passwordSecret: 'unknown', resetDone: false })).toContain(`kube-system/${NODE}.node-password.k3s could not be read`);
    expect(text({ node: NODE, results: absent, passwordSecret: 'absent', resetDone: false })).not.toContain('--reset-node-password');
    expect(text({ node: NODE, results: absent, passwordSecret: 'present', resetDone: true })).not.toContain('--reset-node-password');
    const registeredButFailing = [{ name: 'ready', node: NODE, status: 'fail' as const, message: 'Ready=False' }];
    expect(text({ node: NODE, results: registeredButFailing, passwordSecret: 'present', resetDone: false })).toContain(`pi-image verify --node ${NODE}`);
  });
});

describe('evidence', () => {
  it('names the folder by UTC start date and never reuses one', () => {
    expect(evidenceDirName(NODE, '2025-12-01T23:59:00.000Z', [])).toBe(`2025-12-01-rebuild-${NODE}`);
    expect(evidenceDirName(NODE, '2025-12-01T23:59:00.000Z', [`2025-12-01-rebuild-${NODE}`, `2025-12-01-rebuild-${NODE}-2`])).toBe(`2025-12-01-rebuild-${NODE}-3`);
  });

  const t0 = Date.parse('2025-12-01T10:00:00Z');
  const evidence: RebuildEvidence = {
    schema: EVIDENCE_SCHEMA,
    drill: 'rebuild',
    cluster: 'pi-cluster',
    node: NODE,
    role: 'agent',
    operator: 'alice',
    tool: { name: 'pi-image', version: '0.1.0' },
    target: { mode: 'device', device: '/dev/sdb', description: '/dev/sdb: SanDisk | Ultra, 31.9 GB, usb' },
    kube: { context: 'pi-cluster', server: 'https://10.0.0.11:6443', reachableAtStart: true },
    startedAt: new Date(t0).toISOString(),
    endedAt: new Date(t0 + 754_000).toISOString(),
    durationMs: 754_000,
    budget: budgetAccount(3_600_000, t0, t0 + 754_000),
    verdict: 'pass',
    ok: true,
    reason: 'the node came back',
    phases: [phaseRecord('build', t0, t0 + 42_000, 'ok', 'built', ['image sha256 aa']), phaseRecord('rejoin', t0 + 50_000, t0 + 754_000, 'ok', 'back')],
    image: { sha256: 'a'.repeat(64), size: 1, instanceId: `${NODE}-0123456789abcdef`, builtAt: new Date(t0).toISOString(), buildRecord: `build/images/${NODE}.json` },
    base: { name: 'raspios-lite-arm64-trixie', sha256: 'b'.repeat(64) },
    flash: { result: 'ok', bytes: 1, imageSha256: 'a'.repeat(64), readbackSha256: 'a'.repeat(64), writeMs: 1, verifyMs: 1, files: [{ target: 'boot', path: 'meta-data', ok: true }] },
    netboot: null,
    drain: null,
    nodePasswordReset: null,
    verify: { rounds: 3, timedOut: false, checks: [{ name: 'ready', node: NODE, status: 'pass', message: 'Ready' }] },
    cordonAtEnd: 'uncordoned',
    notes: [],
  };

  it('renders JSON that round-trips and Markdown with every fact the review needs', () => {
    expect(JSON.parse(renderEvidenceJson(evidence))).toEqual(evidence);
    const md = renderEvidenceMarkdown(evidence);
    expect(md).toContain(`# Rebuild drill: ${NODE} (2025-12-01)`);
    expect(md).toContain('**Verdict: PASS**');
    expect(md).toContain(`| image sha256 | ${'a'.repeat(64)} |`);
    expect(md).toContain(`| base image sha256 | ${'b'.repeat(64)} (raspios-lite-arm64-trixie) |`);
    expect(md).toContain('| operator | alice |');
    expect(md).toContain('| budget | 1h0m0s; used 12m34s; 47m26s left |');
    expect(md).toContain('| build | ok | 2025-12-01T10:00:00.000Z | 42.0 s | built |');
    expect(md).toContain('| ready | pass | Ready |');
    expect(md).toContain('SanDisk \\| Ultra'); // a | in a value does not break the table
    expect(md).toContain(`ok (read back sha256 ${'a'.repeat(64)})`);
    const text = renderDrillText(evidence, 'docs/governance/reviews/x');
    expect(text).toContain(`rebuild drill ${NODE}: PASS`);
    expect(text).toContain('evidence: docs/governance/reviews/x/evidence.json');
  });

  it('keeps the sections and the review checklist of docs/governance/reviews/templates/rebuild-drill.md', () => {
    const template = readFileSync(join(REPO_ROOT, 'docs', 'governance', 'reviews', 'templates', 'rebuild-drill.md'), 'utf8');
    const md = renderEvidenceMarkdown(evidence);
    const headings = template.split('\n').filter((l) => /^##? /.test(l) && !l.startsWith('# Rebuild drill'));
    expect(headings.length).toBeGreaterThanOrEqual(5);
    for (const h of headings) expect(md).toContain(`\n${h}\n`);
    const checklist = template.split('\n').filter((l) => l.startsWith('- [ ] '));
    expect(checklist.length).toBeGreaterThan(0);
    for (const item of checklist) expect(md).toContain(item);
    const summaryRows = template.split('\n').filter((l) => /^\| [a-zA-Z]/.test(l) && l.includes(' | <')).map((l) => l.split(' | ')[0]);
    for (const row of summaryRows) expect(md).toContain(`${row} | `);
  });

  it('says FAIL and why when over budget', () => {
    const failed = { ...evidence, verdict: 'over-budget' as const, ok: false, budget: budgetAccount(600_000, t0, t0 + 754_000), reason: 'over budget' };
    const md = renderEvidenceMarkdown(failed);
    expect(md).toContain('**Verdict: FAIL — over budget**');
    expect(md).toContain('EXCEEDED');
  });
});
