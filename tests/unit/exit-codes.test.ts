/** Exit codes come from one channel: the category of the error that ended the run. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ChecksFailedError,
  ClusterError,
  EnvironmentError,
  EXIT_CODES,
  InputError,
  InternalError,
  IoError,
  type PiImageError,
} from '../../src/core/errors.js';
import { cli } from '../helpers/run-cli.js';
import { testTempDir } from '../helpers/temp-dir.js';

describe('exit codes by category', () => {
  const cases: [PiImageError, keyof typeof EXIT_CODES, number][] = [
    [new ChecksFailedError('x'), 'checkFailed', 1],
    [new InputError('x'), 'input', 2],
    [new EnvironmentError('x'), 'environment', 3],
    [new IoError('x'), 'io', 4],
    [new ClusterError('x'), 'cluster', 5],
    [new InternalError('x'), 'internal', 70],
  ];
  for (const [error, category, code] of cases) {
    it(`${error.name}: category ${category}, exit ${code}`, () => {
      expect(error.category).toBe(category);
      expect(error.exitCode).toBe(EXIT_CODES[category]);
      expect(error.exitCode).toBe(code);
    });
  }

  it('a command that reported its failures ends with the category code and prints no extra error line', async () => {
    const dir = testTempDir('pi-image-exit-');
    writeFileSync(join(dir, 'cluster.yaml'), 'apiVersion: nope\n');
    const r = await cli(['validate', '-i', dir]);
    expect(r.code).toBe(EXIT_CODES.input);
    expect(r.stderr).toMatch(/error: /);
    expect(r.stderr).not.toContain('is not valid\n'); // the reported error itself is not printed again
  });

  it('usage errors exit 2, never 70', async () => {
    expect((await cli(['no-such-command'])).code).toBe(EXIT_CODES.input);
    expect((await cli(['build', '--jobs'])).code).not.toBe(EXIT_CODES.internal);
  });
});
