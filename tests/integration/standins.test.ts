/**
 * The e2e stand-ins for k3s and its install.sh (tests/e2e/fixtures/), run on the build machine:
 * they must refuse what the real ones refuse, or the e2e proves nothing. Also: every config.yaml
 * pi-image renders for the sample inventory is accepted by the stand-in for the node's role.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import { loadInventory } from '../../src/app/inventory.js';
import { renderNodeFiles } from '../../src/core/render/node.js';
import { NODE_PATHS } from '../../src/core/render/paths.js';
import { installStandin, k3sStandin } from '../e2e/fixtures/standins.js';
import { BUILD_YEAR, FAKE_SECRETS } from '../helpers/render-fixture.js';
import { SAMPLE_DIR } from '../helpers/sample-inventory.js';

let work = '';
let k3s = '';
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'pi-image-standins-'));
  k3s = join(work, 'k3s');
  writeFileSync(k3s, k3sStandin(), { mode: 0o755 });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
/** A node directory with a token, a data dir holding images/manifests, and a config file. */
function node(config: string, opts: { images?: boolean; manifests?: boolean; token?: string } = {}) {
  const d = join(work, `n${n++}`);
  mkdirSync(join(d, 'data/agent/images'), { recursive: true });
  mkdirSync(join(d, 'data/server/manifests'), { recursive: true });
  writeFileSync(join(d, 'token'), opts.token ?? 'K10secret\n');
  if (opts.images !== false) writeFileSync(join(d, 'data/agent/images/k3s-airgap-images-arm64.tar.zst'), 'x');
  if (opts.manifests !== false) writeFileSync(join(d, 'data/server/manifests/00-namespaces.yaml'), 'kind: Namespace\n');
  const cfg = join(d, 'config.yaml');
  writeFileSync(cfg, config.replaceAll('$D', d));
  const run = (role: string) => {
    const r = spawnSync(k3s, [role], { env: { PATH: process.env.PATH, K3S_CONFIG_FILE: cfg, K3S_STANDIN_REPORT: join(d, 'report'), K3S_STANDIN_ONESHOT: '1' }, encoding: 'utf8' });
    return { code: r.status, err: r.stderr, report: existsSync(join(d, 'report')) ? readFileSync(join(d, 'report'), 'utf8') : '' };
  };
  return { d, cfg, run };
}
const AGENT = 'server: https://10.0.0.11:6443\ntoken-file: $D/token\ndata-dir: $D/data\nnode-name: pi-cluster-2\n';
const SERVER = 'cluster-init: true\ntoken-file: $D/token\ndata-dir: $D/data\nnode-name: pi-cluster-1\n';

describe('k3s stand-in', () => {
  it('agent: refuses a server-only key like k3s agent ("flag provided but not defined")', () => {
    const r = node(`${AGENT}disable:\n  - traefik\n`).run('agent');
    expect(r.code).toBe(1);
    expect(r.err).toContain('flag provided but not defined: -disable');
  });

  it('agent: reads config.yaml.d drop-ins too, and refuses a typo there', () => {
    const x = node(AGENT);
    mkdirSync(`${x.cfg}.d`);
    writeFileSync(join(`${x.cfg}.d`, '10-labels.yaml'), 'node-lable+: [zone=a]\n');
    const r = x.run('agent');
    expect(r.code).toBe(1);
    expect(r.err).toContain('config files: ');
    expect(r.err).toContain('10-labels.yaml');
    expect(r.err).toContain('flag provided but not defined: -node-lable');
  });

  it('agent: honours data-dir and finds its air-gap images there', () => {
    const x = node(`${AGENT}node-label:\n  - a=b\nkubelet-arg+: [max-pods=50]\n`);
    const r = x.run('agent');
    expect(r.code, r.err).toBe(0);
    expect(r.report).toContain(`data_dir=${x.d}/data`);
    expect(r.report).toContain("images='k3s-airgap-images-arm64.tar.zst'");
    // the kubelet's credentials come from the server (tests/integration/k3s-cluster-standin.test.ts):
    // an agent stopped after its checks has none
    expect(existsSync(join(x.d, 'data/agent/kubelet.kubeconfig'))).toBe(false);
  });

  it('the script as baked (node stand-in included) passes shellcheck, and the node stand-in compiles', () => {
    const sc = spawnSync('shellcheck', ['--shell=bash', '--severity=style', k3s], { encoding: 'utf8' });
    expect(sc.status, sc.stdout + sc.stderr).toBe(0);
    expect(readFileSync(k3s, 'utf8')).toContain('def run_server(cfg):');
    const py = spawnSync('python3', ['-c', 'import ast, sys; ast.parse(sys.stdin.read())'], { input: readFileSync(join(import.meta.dirname, '../e2e/fixtures/k3s-server-standin.py'), 'utf8'), encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
  });

  it('kubectl asks the API: without a server it fails, as the join script\'s registration check needs', () => {
    const x = node(AGENT);
    const kc = join(x.d, 'kubelet.kubeconfig');
    writeFileSync(kc, 'apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority: /nonexistent/ca.crt\n    server: https://127.0.0.1:9\n  name: local\n');
    const r = spawnSync(k3s, ['kubectl', '--kubeconfig', kc, 'get', 'node', 'pi-cluster-2'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    const missing = spawnSync(k3s, ['kubectl', '--kubeconfig', join(x.d, 'nope'), 'get', 'node', 'x'], { encoding: 'utf8' });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('no such file or directory');
  });

  it('refuses an empty token file, a missing server (agent) and missing air-gap images', () => {
    expect(node(AGENT, { token: '\n' }).run('agent').err).toContain('is empty');
    expect(node(AGENT.replace(/^server: .*\n/, '')).run('agent').err).toContain('--server is required');
    const noImages = node(SERVER, { images: false }).run('server');
    expect(noImages.code).toBe(1);
    expect(noImages.err).toMatch(/air-gapped: no images in \S+\/data\/agent\/images/);
  });

  it('server: drops an unknown key with k3s\' warning and lists the manifests it finds', () => {
    const r = node(`${SERVER}disable: [servicelb]\nbogus-key: 1\n`).run('server');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain('Unknown flag --bogus-key found in config.yaml, skipping');
    expect(r.report).toContain("manifests='00-namespaces.yaml'");
    expect(r.report).toContain("dropped='bogus-key'");
  });

  it('accepts every config.yaml pi-image renders for the sample inventory, for the node\'s role', async () => {
    const inv = await loadInventory(SAMPLE_DIR);
    const templates = await loadTemplates();
    for (const set of renderNodeFiles(inv, FAKE_SECRETS, templates, { buildYear: BUILD_YEAR })) {
      const role = inv.nodes.find((m) => m.hostname === set.node)!.role;
      const config = set.files.find((f) => f.path === NODE_PATHS.k3sConfig)!.contents;
      const x = node(`${config.replaceAll(NODE_PATHS.tokenFile, '$D/token')}data-dir: $D/data\n`);
      const r = x.run(role);
      expect(r.code, `${set.node}: ${r.err}`).toBe(0);
      expect(r.err).not.toContain('Unknown flag');
    }
  });
});

describe('install.sh stand-in', () => {
  function install(env: Record<string, string>, args: string[] = []) {
    const d = mkdtempSync(join(work, 'inst-'));
    for (const p of ['bin', 'systemd', 'stub']) mkdirSync(join(d, p));
    writeFileSync(join(d, 'bin/k3s'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(join(d, 'stub/systemctl'), `#!/bin/sh\necho "$*" >>${d}/systemctl.log\n`, { mode: 0o755 });
    const script = join(d, 'install.sh');
    writeFileSync(script, installStandin());
    chmodSync(script, 0o755);
    const r = spawnSync('sh', [script, ...args], {
      env: { PATH: `${d}/stub:${process.env.PATH}`, INSTALL_K3S_BIN_DIR: `${d}/bin`, INSTALL_K3S_SYSTEMD_DIR: `${d}/systemd`, ...env },
      encoding: 'utf8',
    });
    const log = existsSync(join(d, 'systemctl.log')) ? readFileSync(join(d, 'systemctl.log'), 'utf8') : '';
    return { code: r.status, out: r.stdout + r.stderr, d, log };
  }

  it('INSTALL_K3S_EXEC=agent with SKIP_DOWNLOAD/SKIP_START: k3s-agent.service (Type=notify), enabled, not started', () => {
    const r = install({ INSTALL_K3S_SKIP_DOWNLOAD: 'true', INSTALL_K3S_SKIP_START: 'true', INSTALL_K3S_EXEC: 'agent' });
    expect(r.code, r.out).toBe(0);
    const unit = readFileSync(join(r.d, 'systemd/k3s-agent.service'), 'utf8');
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(new RegExp(`^ExecStart=${r.d}/bin/k3s agent$`, 'm'));
    expect(statSync(join(r.d, 'systemd/k3s-agent.service.env')).mode & 0o777).toBe(0o600);
    expect(r.log).toContain('enable');
    expect(r.log).not.toMatch(/^(restart|start) /m);
    expect(existsSync(join(r.d, 'bin/k3s-agent-uninstall.sh'))).toBe(true);
  });

  it('a server gets k3s.service; a start is requested without SKIP_START', () => {
    const r = install({ INSTALL_K3S_SKIP_DOWNLOAD: 'true', INSTALL_K3S_EXEC: 'server' });
    expect(r.code, r.out).toBe(0);
    expect(existsSync(join(r.d, 'systemd/k3s.service'))).toBe(true);
    expect(r.log).toMatch(/^restart k3s$/m);
  });

  it('refuses what install.sh refuses: K3S_URL without a token, a non-https URL, a download', () => {
    expect(install({ INSTALL_K3S_SKIP_DOWNLOAD: 'true', K3S_URL: 'https://10.0.0.11:6443' }).out).toContain("Defaulted k3s exec command to 'agent' because K3S_URL is defined, but K3S_TOKEN or K3S_TOKEN_FILE is not defined.");
    expect(install({ INSTALL_K3S_SKIP_DOWNLOAD: 'true', INSTALL_K3S_EXEC: 'agent', K3S_URL: 'http://x:6443' }).out).toContain('Only https:// URLs are supported');
    const dl = install({ INSTALL_K3S_EXEC: 'agent' });
    expect(dl.code).toBe(1);
    expect(dl.out).toContain('downloading k3s is not possible here');
  });
});

describe('raspi-config stand-in (the raspberry-pi-os distro variant of the test base)', () => {
  const standin = join(import.meta.dirname, '..', 'e2e', 'fixtures', 'raspi-config-standin.sh');
  const raspiConfig = (args: string[], env: Record<string, string> = {}) => {
    const log = join(work, `raspi-config-${n++}.log`);
    const r = spawnSync('sh', [standin, ...args], { env: { PATH: process.env.PATH, RASPI_CONFIG_STANDIN_LOG: log, ...env }, encoding: 'utf8' });
    return { code: r.status, out: `${r.stdout}${r.stderr}`, log: existsSync(log) ? readFileSync(log, 'utf8') : '' };
  };

  it('passes shellcheck (with the rename-user stand-in)', () => {
    const r = spawnSync('shellcheck', [standin, join(import.meta.dirname, '..', 'e2e', 'fixtures', 'rename-user-standin.sh')], { encoding: 'utf8' });
    expect(r.status, r.stdout).toBe(0);
  });

  it('refuses a name that is no raspi-config function as dash does (127, "not found"), and records the call', () => {
    const r = raspiConfig(['nonint', 'do_make_coffee', 'now'], { SUDO_USER: 'pi-admin' });
    expect(r.code).toBe(127);
    expect(r.out).toContain('do_make_coffee: not found');
    expect(r.log).toBe('raspi-config nonint do_make_coffee now (SUDO_USER=pi-admin)\n');
  });

  it('refuses a real function it does not model, and the menu', () => {
    const spi = raspiConfig(['nonint', 'do_spi', '0']);
    expect(spi.code).toBe(1);
    expect(spi.out).toContain("'do_spi' is a raspi-config function this stand-in does not model");
    expect(raspiConfig([]).code).toBe(1);
  });

  it('models what the distro and rename-user ask: is_pifive is false off a Pi 5, update_squeekboard does nothing on Lite', () => {
    expect(raspiConfig(['nonint', 'is_pifive']).code).toBe(1);
    const sq = raspiConfig(['nonint', 'update_squeekboard', 'restart']);
    expect(sq.code).toBe(0);
    expect(sq.log).toBe('raspi-config nonint update_squeekboard restart\n');
  });
});
