/** Text rendering of verify results (the `-o text` table). Pure. */
import type { CheckResult, CheckSummary } from './checks.js';

const MARK: Record<CheckResult['status'], string> = { pass: 'ok', fail: 'FAIL', warn: 'warn' };

/** Aligned columns: STATUS  NODE  CHECK  MESSAGE (cluster-wide checks show `-` as node). */
export function renderTable(results: readonly CheckResult[]): string {
  const rows = results.map((r) => [MARK[r.status], r.node ?? '-', r.name, r.message] as const);
  const header = ['STATUS', 'NODE', 'CHECK', 'MESSAGE'] as const;
  const widths = [0, 1, 2].map((i) => Math.max(header[i]?.length ?? 0, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cols: readonly string[]): string =>
    cols.map((c, i) => (i < 3 ? c.padEnd(widths[i] ?? 0) : c)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function renderSummary(summary: CheckSummary): string {
  const total = summary.pass + summary.fail + summary.warn;
  return `${summary.ok ? 'PASS' : 'FAIL'}: ${total} checks — ${summary.pass} ok, ${summary.fail} failing, ${summary.warn} warning${summary.warn === 1 ? '' : 's'}\n`;
}

/** One progress line for `--wait`: the first few failing checks. */
export function renderProgress(results: readonly CheckResult[], remaining: string): string {
  const failing = results.filter((r) => r.status === 'fail');
  const shown = failing.slice(0, 3).map((r) => `${r.node ? `${r.node} ` : ''}${r.name}`);
  const more = failing.length > 3 ? ` and ${failing.length - 3} more` : '';
  return `waiting: ${failing.length} check${failing.length === 1 ? '' : 's'} failing (${shown.join(', ')}${more}); ${remaining} left\n`;
}
