/**
 * Reliability: bad flags and arguments for each command, on a valid inventory with secrets. Each
 * case asserts the exit code (never 70), a message naming the culprit, no stack trace, and that no
 * output appeared under --out / --root.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/run-cli.js';
import { sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

interface CommandCase {
  name: string;
  argv: (root: string) => string[];
  exit: number;
  culprit: string[];
}

export const commandCases: CommandCase[] = [
  { name: 'build --jobs abc', argv: () => ['build', 'pi-cluster-4', '--jobs', 'abc', '--build-dir', 'out'], exit: 2, culprit: ['--jobs "abc": must be a whole number'] },
  { name: 'kubeconfig --ssh-port abc', argv: () => ['kubeconfig', '--ssh-port', 'abc'], exit: 2, culprit: ['--ssh-port "abc": must be a whole number from 1 to 65535'] },
  { name: 'status --ssh-port 70000', argv: () => ['status', '--ssh-port', '70000'], exit: 2, culprit: ['--ssh-port "70000"'] },
  { name: 'build --jobs 0', argv: () => ['build', 'pi-cluster-4', '--jobs', '0', '--build-dir', 'out'], exit: 2, culprit: ['--jobs "0"'] },
  { name: 'build --jobs -3', argv: () => ['build', 'pi-cluster-4', '--jobs=-3', '--build-dir', 'out'], exit: 2, culprit: ['--jobs "-3"'] },
  { name: 'build --compress gzip', argv: () => ['build', 'pi-cluster-4', '--compress', 'gzip', '--build-dir', 'out'], exit: 2, culprit: ['gzip'] },
  { name: 'build of a node not in the inventory', argv: () => ['build', 'pi-cluster-9', '--build-dir', 'out'], exit: 2, culprit: ['pi-cluster-9'] },
  { name: 'build with node names and --all', argv: () => ['build', 'pi-cluster-4', '--all', '--build-dir', 'out'], exit: 2, culprit: ['--all'] },
  { name: 'build without a node', argv: () => ['build', '--build-dir', 'out'], exit: 2, culprit: ['--all'] },
  { name: 'build --base that does not exist', argv: () => ['build', 'pi-cluster-4', '--base', './missing.img', '--build-dir', 'out'], exit: 2, culprit: ['missing.img'] },
  { name: 'build --base naming a directory', argv: (root) => ['build', 'pi-cluster-4', '--base', join(root, 'adir') + '/', '--build-dir', 'out'], exit: 2, culprit: ['adir'] },
  { name: 'render of a node not in the inventory', argv: () => ['render', 'pi-cluster-9', '--out', 'out'], exit: 2, culprit: ['pi-cluster-9'] },
  { name: 'render with a newline in the node name', argv: () => ['render', 'pi-cluster-4\ntouch x', '--out', 'out'], exit: 2, culprit: ['pi-cluster-4'] },
  { name: 'netboot --root naming a regular file', argv: (root) => ['netboot', '--all', '--root', join(root, 'afile'), '--server', '10.0.0.2'], exit: 2, culprit: ['is a file, not a directory'] },
  { name: 'netboot --root below a regular file', argv: (root) => ['netboot', '--all', '--root', join(root, 'afile', 'x'), '--server', '10.0.0.2'], exit: 2, culprit: ['is a file, not a directory'] },
  { name: 'netboot with a node and --all', argv: () => ['netboot', 'pi-cluster-4', '--all', '--root', 'tftp'], exit: 2, culprit: ['--all'] },
  { name: 'unknown command', argv: () => ['bake', 'pi-cluster-4'], exit: 2, culprit: ['bake'] },
  { name: 'unknown flag', argv: () => ['build', 'pi-cluster-4', '--fast'], exit: 2, culprit: ['fast'] },
  { name: '-o yaml (not a format)', argv: () => ['validate', '-o', 'yaml'], exit: 2, culprit: ['yaml'] },
  { name: 'validate --inventory that does not exist', argv: () => ['validate', '-i', 'nowhere'], exit: 2, culprit: ['nowhere'] },
  { name: 'diff of a node not in the inventory', argv: () => ['diff', 'pi-cluster-9'], exit: 2, culprit: ['pi-cluster-9'] },
  { name: 'secrets set of an unknown name', argv: () => ['secrets', 'set', 'no-such-secret', 'x'], exit: 2, culprit: ['no-such-secret'] },
];

let inv: ReturnType<typeof writeInventory>;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  inv = writeInventory(sampleFiles());
  env = { PATH: process.env.PATH, HOME: join(inv.root, 'home'), XDG_CONFIG_HOME: join(inv.root, 'config'), PI_IMAGE_CACHE: join(inv.root, 'cache') };
  const init = await cli(['secrets', 'init'], { cwd: inv.root, env });
  expect(init.code, init.stderr).toBe(0);
  mkdirSync(join(inv.root, 'adir'));
  writeFileSync(join(inv.root, 'afile'), 'x\n');
});
afterAll(() => inv?.cleanup());

describe('reliability: bad command lines', () => {
  for (const c of commandCases) {
    it(c.name, async () => {
      const r = await cli(c.argv(inv.root), { cwd: inv.root, env });
      expect(r.code, r.stderr).toBe(c.exit);
      expect(r.code).not.toBe(70);
      for (const frag of c.culprit) expect(r.stderr).toContain(frag);
      expect(r.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
      expect(r.stderr).not.toContain('internal error');
      for (const out of ['out', 'tftp']) {
        const p = join(inv.root, out);
        expect(existsSync(p) ? readdirSync(p) : [], out).toEqual([]);
      }
    });
  }
});
