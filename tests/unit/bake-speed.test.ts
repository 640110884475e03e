/**
 * The debugfs script of a `copy` op (a rootfs file read by debugfs straight from the build
 * machine, used for the air-gap payload so it never passes through memory).
 */
import { describe, expect, it } from 'vitest';
import { buildDebugfsScript } from '../../src/adapters/ext4.js';
import { InputError } from '../../src/core/errors.js';

describe('debugfs script: copy ops', () => {
  it('writes from the source path with mode and owner, and checks the size given for it', () => {
    const { script, expect: checks } = buildDebugfsScript(
      [
        { kind: 'copy', path: '/usr/local/bin/k3s', source: '/srv/airgap/k3s-arm64', mode: 0o755 },
        { kind: 'file', path: '/etc/x', contents: 'abc', mode: 0o644 },
      ],
      ['/srv/airgap/k3s-arm64', '/s/1'],
      [73400320, undefined],
    );
    const lines = script.split('\n');
    expect(lines.slice(0, 8)).toEqual([
      'mkdir "/usr"', 'mkdir "/usr/local"', 'mkdir "/usr/local/bin"',
      'rm "/usr/local/bin/k3s"', 'write "/srv/airgap/k3s-arm64" "/usr/local/bin/k3s"', 'sif "/usr/local/bin/k3s" mode 0100755',
      'sif "/usr/local/bin/k3s" uid 0', 'sif "/usr/local/bin/k3s" gid 0',
    ]);
    expect(checks).toEqual([
      { path: '/usr/local/bin/k3s', type: 'regular', mode: 0o755, uid: 0, gid: 0, size: 73400320 },
      { path: '/etc/x', type: 'regular', mode: 0o644, uid: 0, gid: 0, size: 3 },
    ]);
  });

  it('leaves the size unchecked when it is not known', () => {
    const { expect: checks } = buildDebugfsScript([{ kind: 'copy', path: '/a', source: '/b', mode: 0o600, uid: 7 }], ['/b']);
    expect(checks).toEqual([{ path: '/a', type: 'regular', mode: 0o600, uid: 7, gid: 0 }]);
  });

  it('refuses a source path debugfs would misread, naming it', () => {
    const run = () => buildDebugfsScript([{ kind: 'copy', path: '/a', source: '/tmp/we"ird', mode: 0o644 }], ['/tmp/we"ird'], [1]);
    expect(run).toThrow(InputError);
    expect(run).toThrow(/we"ird/);
  });
});
