/**
 * A throw-away inventory + key home for secrets tests: <tmp>/nodes/cluster.yaml (the sample's, or
 * with a wifi section) and an environment whose HOME / XDG_CONFIG_HOME point into <tmp>, so no test
 * ever reads or writes the real ~/.config/pi-image.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli.js';
import type { Io } from '../../src/app/io.js';
import { REPO_ROOT } from './sample-inventory.js';

export const CLUSTER = 'pi-cluster';

export interface SecretsFixture {
  root: string;
  /** <root>/nodes */
  dir: string;
  /** HOME and XDG_CONFIG_HOME inside root; no PI_IMAGE_AGE_KEY* */
  env: NodeJS.ProcessEnv;
  /** where `secrets init` puts the key for this env */
  keyPath: string;
  cleanup: () => void;
}

/** Sample cluster.yaml; with `wifi`, a wifi section is appended (the PSK is then required). */
export function clusterYaml(opts: { wifi?: boolean; name?: string } = {}): string {
  let text = readFileSync(join(REPO_ROOT, 'nodes', 'cluster.yaml'), 'utf8');
  if (opts.name) text = text.replace(/^name: .*$/m, `name: ${opts.name}`);
  if (opts.wifi) text += '\nwifi:\n  ssid: pi-lab\n  country: DE\n';
  return text;
}

export function makeSecretsFixture(opts: { wifi?: boolean; name?: string } = {}): SecretsFixture {
  const root = mkdtempSync(join(tmpdir(), 'pi-image-secrets-'));
  const dir = join(root, 'nodes');
  mkdirSync(dir);
  writeFileSync(join(dir, 'cluster.yaml'), clusterYaml(opts));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: join(root, 'home'),
    XDG_CONFIG_HOME: join(root, 'xdg'),
  };
  return {
    root,
    dir,
    env,
    keyPath: join(root, 'xdg', 'pi-image', `${opts.name ?? CLUSTER}.agekey`),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

export interface CapturedRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** runCli in-process with captured output, the fixture's env, and optional stdin text. */
export async function runSecretsCli(
  fx: SecretsFixture,
  argv: string[],
  opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {},
): Promise<CapturedRun> {
  let stdout = '';
  let stderr = '';
  const io: Io & { readStdin?: () => Promise<string> } = {
    out: (t) => {
      stdout += t;
    },
    err: (t) => {
      stderr += t;
    },
    isTTY: false,
    env: opts.env ?? fx.env,
    cwd: fx.root,
  };
  if (opts.stdin !== undefined) {
    const text = opts.stdin;
    io.readStdin = async () => text;
  }
  const code = await runCli(['-i', fx.dir, ...argv], io);
  return { code, stdout, stderr };
}
