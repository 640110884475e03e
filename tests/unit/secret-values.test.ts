import { describe, expect, it } from 'vitest';
import { allowToPrint, rememberSecretValues, SecretValues, withSecretValues } from '../../src/adapters/secret-values.js';

describe('secret values of a run', () => {
  it('two runs at once keep their own values; nothing is remembered outside a run', async () => {
    const a = new SecretValues();
    const b = new SecretValues();
    rememberSecretValues(['outside']);
    await Promise.all([
      withSecretValues(a, async () => {
        rememberSecretValues(['alpha-secret']);
        await new Promise((r) => setTimeout(r, 5));
        rememberSecretValues(['alpha-later']);
      }),
      withSecretValues(b, async () => {
        await new Promise((r) => setTimeout(r, 1));
        rememberSecretValues(['beta-secret', '']);
      }),
    ]);
    expect(a.values().sort()).toEqual(['alpha-later', 'alpha-secret']);
    expect(b.values()).toEqual(['beta-secret']);
  });

  it('a value allowed to print is let through, and stays so when seen again', () => {
    const run = new SecretValues();
    withSecretValues(run, () => {
      rememberSecretValues(['k1', 'k2']);
      allowToPrint('k1');
      rememberSecretValues(['k1']);
    });
    expect(run.values()).toEqual(['k2']);
  });
});
