/**
 * The sample inventory ships a placeholder SSH key: `validate` warns while any placeholder key is
 * present, `--strict` fails, and a real key silences it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { placeholderKeyReason, SAMPLE_PLACEHOLDER_KEY, checkSshPublicKey } from '../../src/core/inventory/sshkey.js';
import { cli } from '../helpers/run-cli.js';
import { sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

const REAL_LOOKING = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx3mJ3Fq9Dk0qQ4uXo1k8vE2m3WZb7yTt3lYc5s9f2a alice@laptop';
const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

describe('placeholder SSH keys', () => {
  it('the sample key is a structurally valid key that reads as a placeholder', () => {
    expect(checkSshPublicKey(SAMPLE_PLACEHOLDER_KEY).ok).toBe(true);
    expect(placeholderKeyReason(SAMPLE_PLACEHOLDER_KEY)).toMatch(/PLACEHOLDER/);
    expect(sampleFiles()['cluster.yaml']).toContain(SAMPLE_PLACEHOLDER_KEY);
  });

  it.each([
    ['the key of earlier samples', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGuIB3qOVWsjCA/gMZzv/hWWOpSkE5AJnttbHisIo+4x ops@pi-cluster-admin', /earlier pi-image sample/],
    ['a "replace me" comment', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx3mJ3Fq9Dk0qQ4uXo1k8vE2m3WZb7yTt3lYc5s9f2a replace-me', /comment says "replace-me"/],
    ['all-zero key data', `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${'A'.repeat(43)} me@host`, /all zeros/],
  ])('recognises %s', (_name, key, reason) => {
    expect(checkSshPublicKey(key).ok).toBe(true);
    expect(placeholderKeyReason(key)).toMatch(reason);
  });

  it('leaves an ordinary key alone', () => {
    expect(checkSshPublicKey(REAL_LOOKING).ok).toBe(true);
    expect(placeholderKeyReason(REAL_LOOKING)).toBeUndefined();
  });

  it('validate warns, --strict fails, -o json lists the warning; a real key passes --strict', async () => {
    const inv = writeInventory(sampleFiles());
    cleanups.push(inv.cleanup);
    const lax = await cli(['validate'], { cwd: inv.root });
    expect(lax.code).toBe(0);
    expect(lax.stderr).toContain('warning: nodes/cluster.yaml:21:7 admin.sshKeys[0]: is a placeholder, not your key');
    const strict = await cli(['validate', '--strict'], { cwd: inv.root });
    expect(strict.code).toBe(2);
    expect(strict.stderr).toContain('0 errors, 1 warning (--strict: warnings are fatal)');
    const json = await cli(['validate', '--strict', '-o', 'json'], { cwd: inv.root });
    const report = JSON.parse(json.stdout) as { valid: boolean; warnings: { field: string; message: string }[] };
    expect(report.valid).toBe(false);
    expect(report.warnings.map((w) => w.field)).toEqual(['admin.sshKeys[0]']);

    const files = sampleFiles();
    files['cluster.yaml'] = files['cluster.yaml']!.replace(SAMPLE_PLACEHOLDER_KEY, REAL_LOOKING);
    const mine = writeInventory(files);
    cleanups.push(mine.cleanup);
    const ok = await cli(['validate', '--strict'], { cwd: mine.root });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
  });
});
