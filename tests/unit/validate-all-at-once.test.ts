/**
 * `validate` reports every problem at once: the cross-file rules run on whatever parsed, a file with
 * schema errors included (minus the refused fields), and report alongside the schema errors.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/run-cli.js';
import { sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

async function errorsOf(edit: (f: Record<string, string>) => void): Promise<string[]> {
  const files = sampleFiles();
  edit(files);
  const inv = writeInventory(files);
  cleanups.push(inv.cleanup);
  const r = await cli(['validate', '-o', 'json'], { cwd: inv.root });
  expect(r.code).toBe(2);
  const report = JSON.parse(r.stdout) as { errors: { file: string; field: string; message: string }[] };
  return report.errors.map((e) => `${e.file} ${e.field}: ${e.message}`).sort();
}

describe('validate: schema errors and rule problems in one report', () => {
  it('a typo in cluster.yaml does not hide that a node is outside the network', async () => {
    const errors = await errorsOf((f) => {
      f['cluster.yaml'] = f['cluster.yaml']!.replace('timezone:', 'timzone:');
      f['pi-cluster-3.yaml'] = f['pi-cluster-3.yaml']!.replace('ip: 10.0.0.13', 'ip: 192.168.1.13');
    });
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^nodes\/cluster.yaml timzone: unknown field; did you mean "timezone"\?/);
    expect(errors[1]).toMatch(/^nodes\/pi-cluster-3.yaml ip: 192.168.1.13 is outside network.cidr 10.0.0.0\/24/);
  });

  it('a node with a schema error still takes part in the uniqueness rules', async () => {
    const errors = await errorsOf((f) => {
      f['pi-cluster-2.yaml'] = f['pi-cluster-2.yaml']!.replace('board: pi4', 'board: pi3');
      f['pi-cluster-3.yaml'] = f['pi-cluster-3.yaml']!.replace('mac: dc:a6:32:00:00:13', 'mac: dc:a6:32:00:00:12');
    });
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^nodes\/pi-cluster-2.yaml board: /);
    expect(errors[1]).toMatch(/^nodes\/pi-cluster-3.yaml mac: dc:a6:32:00:00:12 is already used by pi-cluster-2/);
  });

  it('a refused field is reported once, not again by the rule that needs it', async () => {
    const errors = await errorsOf((f) => {
      f['cluster.yaml'] = f['cluster.yaml']!.replace('cidr: 10.0.0.0/24', 'cidr: 10.0.0.0/99');
      f['pi-cluster-4.yaml'] = f['pi-cluster-4.yaml']!.replace('ip: 10.0.0.14', 'ip: 10.0.0.300');
    });
    expect(errors.filter((e) => e.startsWith('nodes/cluster.yaml'))).toHaveLength(1);
    expect(errors.filter((e) => e.startsWith('nodes/pi-cluster-4.yaml'))).toHaveLength(1);
    expect(errors.join('\n')).not.toMatch(/is required/);
  });

  it('a missing required field still leaves the other files to the rules', async () => {
    const errors = await errorsOf((f) => {
      f['pi-cluster-2.yaml'] = f['pi-cluster-2.yaml']!.replace('role: agent\n', '');
      f['pi-cluster-4.yaml'] = f['pi-cluster-4.yaml']!.replace('ip: 10.0.0.14', 'ip: 10.0.0.13');
    });
    expect(errors.some((e) => e.startsWith('nodes/pi-cluster-2.yaml role: is required'))).toBe(true);
    expect(errors.some((e) => /^nodes\/pi-cluster-4.yaml ip: 10.0.0.13 is already used by pi-cluster-3/.test(e))).toBe(true);
  });
});
