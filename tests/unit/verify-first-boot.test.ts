/**
 * `verify --status`: a node that is not registered says what its first boot is doing (the status
 * use case's answer, over the firstBoot port), instead of only pointing to `pi-image status`.
 */
import { describe, expect, it } from 'vitest';
import { runVerify, type VerifyPorts } from '../../src/app/verify.js';
import { loadInventory } from '../../src/app/inventory.js';
import { fakeClock } from '../../src/core/clock.js';
import type { NodeStatus } from '../../src/core/status.js';
import { healthySnapshot } from '../helpers/verify-fixtures.js';
import { SAMPLE_DIR } from '../helpers/sample-inventory.js';

async function verifyWithout(missing: string, firstBoot?: VerifyPorts['firstBoot']) {
  const inv = await loadInventory(SAMPLE_DIR, { cwd: SAMPLE_DIR });
  const snapshot = healthySnapshot(inv, { namespaces: [], helmCharts: [] });
  snapshot.nodes = snapshot.nodes.filter((n) => n.metadata?.name !== missing);
  const asked: string[][] = [];
  const ports: VerifyPorts = {
    clock: fakeClock(0),
    kube: { open: () => ({ context: 'test', server: 'https://10.0.0.11:6443', snapshot: async () => snapshot }), isRetryable: () => false },
    readManifests: async () => [],
    ...(firstBoot ? { firstBoot: async (nodes) => (asked.push([...nodes]), firstBoot(nodes)) } : {}),
  };
  const { report } = await runVerify({ inventoryDir: SAMPLE_DIR, cwd: SAMPLE_DIR, env: {}, nodes: [], wait: false, timeoutMs: 60_000, intervalMs: 1000 }, ports);
  return { report, asked, registered: report.checks.find((c) => c.name === 'registered' && c.node === missing)! };
}

describe('verify: the first-boot status of nodes that are not registered', () => {
  it('is added to the failing registered check, asking only the missing nodes', async () => {
    const status: NodeStatus = {
      node: 'pi-cluster-2',
      host: '10.0.0.12',
      reachable: true,
      status: { node: 'pi-cluster-2', role: 'agent', phase: 'waiting-for-registration', run: 1, attempts: 7, lastError: 'k3s-agent: 401 Unauthorized (token refused)', startedAt: 'x', updatedAt: 'y', joinedAt: null },
    };
    const { registered, asked, report } = await verifyWithout('pi-cluster-2', async () => [status]);
    expect(asked).toEqual([['pi-cluster-2']]);
    expect(registered.status).toBe('fail');
    expect(registered.message).toMatch(/`pi-image status pi-cluster-2`.*; first boot: waiting-for-registration, attempt 7: k3s-agent: 401 Unauthorized \(token refused\)$/);
    expect(report.ok).toBe(false);
  });

  it('says when the node cannot be reached, and when status itself failed', async () => {
    const down = await verifyWithout('pi-cluster-4', async () => [{ node: 'pi-cluster-4', host: '10.0.0.14', reachable: false, error: 'connect ETIMEDOUT' }]);
    expect(down.registered.message).toMatch(/first boot: not reachable over SSH at 10\.0\.0\.14 \(connect ETIMEDOUT\)$/);
    const broken = await verifyWithout('pi-cluster-4', async () => {
      throw new Error('SSH key ~/.ssh/id_ed25519 does not exist');
    });
    expect(broken.registered.message).toMatch(/first boot: status unavailable \(SSH key ~\/\.ssh\/id_ed25519 does not exist\)$/);
  });

  it('without the port (no --status) the check only points to `pi-image status`', async () => {
    const { registered, asked } = await verifyWithout('pi-cluster-3');
    expect(asked).toEqual([]);
    expect(registered.message).toMatch(/`pi-image status pi-cluster-3` shows what its first boot is doing$/);
  });
});
