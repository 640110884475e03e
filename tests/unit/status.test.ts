import { describe, expect, it } from 'vitest';
import { describeProgress, parseJoinStatus, parseStatusProbe, renderStatusTable, statusProbeCommand } from '../../src/core/status.js';

const waiting = { node: 'pi-cluster-4', role: 'agent', phase: 'waiting-for-server', run: 1, attempts: 7, lastError: 'k3s server does not answer', startedAt: 'a', updatedAt: 'b', joinedAt: null };

describe('first-boot status (core)', () => {
  it('parses what the join script writes, and names what is wrong otherwise', () => {
    expect(parseJoinStatus(JSON.stringify(waiting))).toEqual(waiting);
    expect(parseJoinStatus('{"node":')).toBe('/var/lib/pi-image/status.json is not JSON');
    expect(parseJoinStatus('[]')).toBe('/var/lib/pi-image/status.json is not a JSON object');
    expect(parseJoinStatus(JSON.stringify({ ...waiting, attempts: 'x', phase: 3 }))).toBe('/var/lib/pi-image/status.json lacks or mistypes phase, attempts');
  });
  it('splits the probe output; an absent file is undefined', () => {
    expect(parseStatusProbe('== pi-image status\n{"a":1}\n\n== cloud-init\nrunning\n')).toEqual({ statusText: '{"a":1}', cloudInit: 'running' });
    expect(parseStatusProbe('== pi-image status\nabsent\n\n== cloud-init\n')).toEqual({});
    expect(parseStatusProbe('garbage')).toEqual({});
    expect(statusProbeCommand("/tmp/it's/status.json")).toContain(`'/tmp/it'\\''s/status.json'`);
  });
  it('describes progress as an operator reads it', () => {
    expect(describeProgress(waiting)).toBe('waiting-for-server, attempt 7: k3s server does not answer');
    expect(describeProgress({ ...waiting, run: 3, attempts: 0, lastError: null })).toBe('waiting-for-server (run 3)');
    expect(describeProgress({ ...waiting, phase: 'joined', joinedAt: 'T' })).toBe('joined at T');
  });
  it('renders reachable, unreachable and not-yet-started nodes in one table', () => {
    const t = renderStatusTable([
      { node: 'pi-cluster-4', host: 'h', reachable: true, status: waiting, cloudInit: 'done' },
      { node: 'pi-cluster-3', host: 'h', reachable: false, error: 'cannot ssh (ECONNREFUSED)' },
      { node: 'pi-cluster-2', host: 'h', reachable: true },
    ]).split('\n');
    expect(t[0]).toMatch(/^NODE\s+PHASE\s+ATTEMPTS\s+JOINED-AT\s+CLOUD-INIT\s+LAST-ERROR$/);
    expect(t[1]).toMatch(/^pi-cluster-4\s+waiting-for-server\s+7\s+-\s+done\s+k3s server does not answer$/);
    expect(t[2]).toMatch(/^pi-cluster-3\s+unreachable\s+-\s+-\s+-\s+cannot ssh \(ECONNREFUSED\)$/);
    expect(t[3]).toMatch(/^pi-cluster-2\s+no-status\s+-\s+-\s+-\s+no \/var\/lib\/pi-image\/status\.json yet/);
  });
});
