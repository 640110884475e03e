/**
 * The join script's waiting-for-registration error names what k3s itself complains about (a
 * refused token: "… server is not ready: … not authorized"), so `status` and `verify --status` show
 * the reason, not only "not active yet". Runs the rendered script's own functions (golden of
 * pi-cluster-4) with journalctl and systemctl stubbed as the node would answer.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const JOIN_SCRIPT = join(ROOT, 'tests', 'golden', 'pi-cluster-4', 'rootfs', 'usr', 'local', 'sbin', 'pi-image-join');

function lastError(journal: string): string {
  const script = readFileSync(JOIN_SCRIPT, 'utf8');
  const fn = (name: string): string => {
    const m = new RegExp(`^${name}\\(\\) \\{\\n[\\s\\S]*?^\\}\\n`, 'm').exec(script);
    if (!m) throw new Error(`${name} not found in ${JOIN_SCRIPT}`);
    return m[0];
  };
  const prog = [
    'set -Eeuo pipefail',
    'K3S_SERVICE=k3s-agent; DATA_DIR=/nonexistent; K3S_BIN=/bin/false; LAST_ERROR=""',
    // the unit is still activating (Type=notify, not ready); its journal is the test's text
    'systemctl() { return 3; }',
    'journalctl() { printf "%s" "$JOURNAL"; }',
    fn('k3s_problem'),
    fn('node_registered'),
    'node_registered || true',
    'printf "%s" "$LAST_ERROR"',
  ].join('\n');
  return execFileSync('bash', ['-c', prog], { env: { JOURNAL: journal, PATH: process.env.PATH }, encoding: 'utf8' });
}

describe('join script: why the node is not registered yet', () => {
  it('a refused token: the last "server is not ready" message of k3s', () => {
    const journal = [
      'time="2026-12-01T20:00:01Z" level=info msg="Starting k3s agent v1.33.5+k3s1"',
      'time="2026-12-01T20:00:02Z" level=info msg="Waiting to retrieve agent configuration; server is not ready: failed to retrieve configuration from server: not authorized"',
      'time="2026-12-01T20:00:09Z" level=info msg="Waiting to retrieve agent configuration; server is not ready: failed to retrieve configuration from server: not authorized"',
      'time="2026-12-01T20:00:09Z" level=info msg="Connecting to proxy" url="wss://10.0.0.11:6443/v1-k3s/connect"',
    ].join('\n');
    expect(lastError(journal)).toBe(
      'k3s-agent is not active yet: Waiting to retrieve agent configuration; server is not ready: failed to retrieve configuration from server: not authorized (journalctl -u k3s-agent)',
    );
  });

  it('nothing worth saying in the journal: only that the unit is not active yet', () => {
    expect(lastError('time="x" level=info msg="Starting k3s agent"\n')).toBe('k3s-agent is not active yet (journalctl -u k3s-agent)');
  });

  it('a line without msg= is kept whole, control characters dropped, at most 300 characters', () => {
    const long = `level=fatal ${'x'.repeat(400)}\u0007`;
    const out = lastError(`${long}\n`);
    expect(out.startsWith('k3s-agent is not active yet: level=fatal xxx')).toBe(true);
    expect(out).not.toContain('\u0007');
    expect(out.length).toBeLessThan(300 + 100);
  });
});
