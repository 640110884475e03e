/**
 * Runs every pi-image command against the sample inventory (with real secrets, a real base image and
 * a netboot node) and greps everything printed — and every file written outside the image — for
 * each secret value. None may appear anywhere, in success or failure output.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSecretsStore } from '../../src/app/secrets.js';
import { loadAllCommands } from '../../src/commands/index.js';
import { makePiOsImage, type PiOsImage } from '../helpers/pi-os-image.js';
import { cli, type CliResult } from '../helpers/run-cli.js';
import { sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

const commands = await loadAllCommands();

let base: PiOsImage;
let inv: ReturnType<typeof writeInventory>;
let env: NodeJS.ProcessEnv;
let secretValues: string[] = [];
const outputs: { argv: string[]; result: CliResult }[] = [];

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (!name.endsWith('.img') && !name.includes('.img.') && st.size < 10 * 1024 * 1024) out.push(p);
  }
  return out;
}

beforeAll(async () => {
  base = await makePiOsImage();
  const files = sampleFiles();
  // a Wi-Fi cluster, so the PSK is a secret too, and a netbooted node
  files['cluster.yaml'] = files['cluster.yaml']!.replace('timezone:', 'wifi:\n  ssid: homelab\n  country: DE\n\ntimezone:');
  files['pi-cluster-4.yaml'] = files['pi-cluster-4.yaml']!.replace('boot: sd', 'boot: netboot\ndataDisk:\n  device: /dev/disk/by-label/rancher');
  inv = writeInventory(files);
  env = { ...process.env, XDG_CONFIG_HOME: join(inv.root, 'config'), PI_IMAGE_CACHE: join(inv.root, 'cache') };
  const run = async (argv: string[], extra: { env?: NodeJS.ProcessEnv } = {}) => {
    const result = await cli(argv, { cwd: inv.root, env: extra.env ?? env });
    outputs.push({ argv, result });
    return result;
  };
  expect((await run(['secrets', 'init'])).code).toBe(0);
  const psk = 'correct horse battery staple';
  expect((await run(['secrets', 'set', 'wifi-psk', '--from-env', 'TEST_PSK'], { env: { ...env, TEST_PSK: psk } })).code).toBe(0);

  const every: string[][] = [
    ['--help'],
    ['--version'],
    ...commands.map((c) => [String(c.command).split(' ')[0]!, '--help']),
    ['validate'],
    ['validate', '-o', 'json'],
    ['secrets', 'show'],
    ['secrets', 'show', '-o', 'json'],
    ['secrets', 'rotate', 'agent-token'],
    ['render', '--all'],
    ['render', '--all', '-o', 'json'],
    ['images', 'list'],
    ['images', 'list', '-o', 'json'],
    ['build', '--all', '--base', base.path, '--dry-run'],
    ['build', '--all', '--base', base.path, '-o', 'json'],
    ['build', 'pi-cluster-2', '--base', base.path],
    // -v traces every program run (arguments included), API request, SSH command and file written
    ['build', 'pi-cluster-1', '--base', base.path, '-v'],
    ['render', '--all', '-v'],
    ['build', 'pi-cluster-2', '--base', '/nonexistent.img'],
    ['netboot', 'pi-cluster-4', '--root', join(inv.root, 'netboot'), '--server', '10.0.0.5'],
    ['netboot', 'pi-cluster-4', '--root', join(inv.root, 'netboot-v'), '--server', '10.0.0.5', '-v'],
    ['verify', '--kubeconfig', join(inv.root, 'missing-kubeconfig'), '-v'],
    ['flash', 'pi-cluster-2', '--device', join(inv.root, 'not-a-device'), '--yes'],
    ['verify', '--kubeconfig', join(inv.root, 'missing-kubeconfig')],
    ['kubeconfig', '--identity', join(inv.root, 'missing-key'), '--timeout', '2s'],
  ];
  const seen = new Set<string>();
  const collect = async () => {
    const store = (await readSecretsStore(inv.dir, 'pi-cluster', { env })).store;
    for (const s of Object.values(store.secrets)) if (s?.value) seen.add(s.value);
  };
  await collect();
  for (const argv of every) {
    await run(argv);
    await collect(); // old and new values of rotated secrets both count
  }
  // what reflashing would change after a rotation: diffs and review evidence mask old and new values
  for (const argv of [
    ['secrets', 'rotate', 'cluster-token'],
    ['diff', '--all'],
    ['diff', '--all', '-o', 'json'],
    ['diff', 'pi-cluster-1', '--evidence', join(inv.root, 'evidence')],
  ]) {
    await run(argv);
    await collect();
  }
  secretValues = [...seen];
}, 600_000);

afterAll(async () => {
  await base?.cleanup();
  inv?.cleanup();
});

describe('no secret value ever appears in output', () => {
  it('has the four secrets to look for', () => {
    expect(secretValues.length).toBeGreaterThanOrEqual(6); // 4 secrets + the rotated old values
    expect(outputs.length).toBeGreaterThan(25);
  });

  it('ran the commands for real (successes and failures)', () => {
    const diff = outputs.find((o) => o.argv.join(' ') === 'diff --all');
    expect(diff?.result.code, diff?.result.stderr).toBe(1); // the rotation changed what a reflash would write
    expect(diff?.result.stdout).toContain('cluster-token: changed');
    const codes = new Set(outputs.map((o) => o.result.code));
    expect(codes.has(0)).toBe(true);
    expect([...codes].some((c) => c !== 0)).toBe(true);
    const build = outputs.find((o) => o.argv.join(' ').startsWith('build pi-cluster-2 --base /') && !o.argv.includes('/nonexistent.img'));
    expect(build?.result.code, build?.result.stderr).toBe(0);
    const netboot = outputs.find((o) => o.argv[0] === 'netboot');
    expect(netboot?.result.code, netboot?.result.stderr).toBe(0);
  });

  it('-v really traced: the programs a build and a netboot export ran are on stderr', () => {
    const traced = (prefix: string) => outputs.find((o) => o.argv.join(' ').startsWith(prefix) && o.argv.includes('-v'))!.result;
    const build = traced('build pi-cluster-1');
    expect(build.code, build.stderr).toBe(0);
    expect(build.stderr).toMatch(/^\+ debugfs .*\(exit 0, [\d.]+ s\)$/m);
    expect(build.stderr).toMatch(/^\+ committed .*pi-cluster-1\.img/m);
    const netboot = traced('netboot');
    expect(netboot.code, netboot.stderr).toBe(0);
    expect(netboot.stderr).toMatch(/^\+ \S+ /m);
    expect(traced('render --all').stderr).toMatch(/^\+ read nodes\/cluster\.yaml/m);
    // without -v: no trace
    const quiet = outputs.find((o) => o.argv.join(' ') === `build pi-cluster-2 --base ${base.path}`)!.result;
    expect(quiet.stderr).not.toMatch(/^\+ /m);
  });

  it('stdout and stderr of every command are free of secrets', () => {
    for (const { argv, result } of outputs) {
      for (const value of secretValues) {
        expect(result.stdout.includes(value), `stdout of pi-image ${argv.join(' ')}`).toBe(false);
        expect(result.stderr.includes(value), `stderr of pi-image ${argv.join(' ')}`).toBe(false);
      }
    }
  });

  it('build records, render manifests and the inventory files are free of secrets', () => {
    const files = [...filesUnder(join(inv.root, 'build', 'images')), ...filesUnder(inv.dir), ...filesUnder(join(inv.root, 'evidence'))].filter(
      (f) => /\.(json|yaml|age|recipients|md|patch)$/.test(f),
    );
    files.push(...filesUnder(join(inv.root, 'build')).filter((f) => f.endsWith('render.json')));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const text = readFileSync(f, 'latin1');
      for (const value of secretValues) expect(text.includes(value), f).toBe(false);
    }
  });

  it('the values looked for are the real ones: the 0600 review copy of user-data holds one of them', () => {
    const reviewed = filesUnder(join(inv.root, 'build', 'pi-cluster-1'));
    const userData = reviewed.find((f) => f.endsWith(join('boot', 'user-data')))!;
    expect(statSync(userData).mode & 0o777).toBe(0o600);
    const text = readFileSync(userData, 'utf8');
    expect(secretValues.some((v) => text.includes(v))).toBe(true);
  });
});
