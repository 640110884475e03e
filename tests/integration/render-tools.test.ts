/**
 * The rendered files against the real tools: cloud-init's own schema check (the 25.x release that
 * Raspberry Pi OS Trixie runs, via scripts/cloud-init-schema.sh), PyYAML (cloud-init's parser),
 * shellcheck and bash for the join script, systemd-analyze for the unit.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadTemplates } from '../../src/adapters/templates.js';
import type { NodeFileSet } from '../../src/core/model.js';
import { renderNodeFiles } from '../../src/core/render/node.js';
import { NODE_PATHS } from '../../src/core/render/paths.js';
import { shq } from '../../src/core/render/shell.js';
import { BUILD_YEAR, FAKE_SECRETS, fixtureInventory, fixtureWithWifi } from '../helpers/render-fixture.js';
import { REPO_ROOT, SAMPLE_DIR } from '../helpers/sample-inventory.js';
import { loadInventory } from '../../src/app/inventory.js';

const SCHEMA = join(REPO_ROOT, 'scripts/cloud-init-schema.sh');
const PYTHON = process.env.PI_IMAGE_PYTHON ?? '/usr/bin/python3';

let work: string;
let plain: NodeFileSet[];
let wifi: NodeFileSet[];
let sample: NodeFileSet[];

function write(set: NodeFileSet, variant: string): Record<string, string> {
  const paths: Record<string, string> = {};
  for (const f of set.files) {
    const p = join(work, variant, set.node, f.target, f.path.replace(/^\/+/, ''));
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, f.contents);
    paths[`${f.target}:${f.path}`] = p;
  }
  return paths;
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...opts.env }, input: opts.input, timeout: 300_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pi-image-render-tools-'));
  const templates = await loadTemplates();
  plain = renderNodeFiles(fixtureInventory(), FAKE_SECRETS, templates, { buildYear: BUILD_YEAR });
  const w = fixtureWithWifi();
  wifi = renderNodeFiles(w.inventory, w.secrets, templates, { buildYear: BUILD_YEAR });
  // the sample inventory in nodes/ too, so the check follows whatever it grows into
  sample = renderNodeFiles(await loadInventory(SAMPLE_DIR), FAKE_SECRETS, templates, { buildYear: BUILD_YEAR });
  // set the checker up once (downloads trixie's cloud-init on first use, then cached)
  const v = run(SCHEMA, ['--version']);
  expect(v.code, v.out).toBe(0);
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

// each check starts cloud-init's Python (~1-2 s per file), so these tests get a generous timeout
describe('cloud-init schema (cloud-init 25.x from Debian trixie)', { timeout: 300_000 }, () => {
  it('the checker is the 25.x release', () => {
    expect(run(SCHEMA, ['--version']).out).toMatch(/\b25\.\d+/);
  });

  it('every rendered user-data is valid, without deprecation warnings', () => {
    const files = [
      ...plain.map((s) => write(s, 'plain')['boot:user-data']!),
      ...wifi.map((s) => write(s, 'wifi')['boot:user-data']!),
      ...sample.map((s) => write(s, 'sample')['boot:user-data']!),
    ];
    const r = run(SCHEMA, files);
    expect(r.code, r.out).toBe(0);
    expect(r.out).not.toMatch(/deprecat/i);
    expect(r.out.match(/Valid schema/g)).toHaveLength(files.length);
  });

  it('every rendered network-config is valid', () => {
    // (a sample inventory with Wi-Fi is covered by the wifis-stripped test below)
    const noWifi = sample.filter((s) => !s.files.some((f) => f.path === 'network-config' && /^\s+wifis:/m.test(f.contents)));
    const files = [...plain.map((s) => write(s, 'plain')), ...noWifi.map((s) => write(s, 'sample'))].map((p) => p['boot:network-config']!);
    const r = run(SCHEMA, ['--type', 'network-config', ...files]);
    expect(r.code, r.out).toBe(0);
    expect(r.out.match(/Valid schema/g)).toHaveLength(files.length);
  });

  it('Wi-Fi network-configs are valid apart from wifis (cloud-init’s v2 schema has no wifis; netplan checks it on the Pi)', () => {
    const files = wifi.map((s) => {
      const doc = parse(s.files.find((f) => f.path === 'network-config')!.contents) as { network: Record<string, unknown> };
      expect(doc.network.wifis).toBeDefined();
      delete doc.network.wifis;
      const p = join(work, `wifi-stripped-${s.node}.yaml`);
      writeFileSync(p, JSON.stringify(doc));
      return p;
    });
    const r = run(SCHEMA, ['--type', 'network-config', ...files]);
    expect(r.code, r.out).toBe(0);
  });

  it('the check is real: broken user-data and network-config fail', () => {
    const good = plain[1]!.files.find((f) => f.path === 'user-data')!.contents;
    const cases = {
      'bad-type.yaml': good.replace('lock_passwd: true', 'lock_passwd: maybe'),
      'bad-key.yaml': `${good}not_a_cloud_init_key: 1\n`,
      'bad-runcmd.yaml': good.replace(/^runcmd:/m, 'runcmd: 42\nunused:'),
    };
    for (const [name, text] of Object.entries(cases)) {
      expect(text, name).not.toBe(good);
      const p = join(work, name);
      writeFileSync(p, text);
      const r = run(SCHEMA, [p]);
      expect(r.code, `${name}: ${r.out}`).toBe(1);
      expect(r.out).toMatch(/Invalid|schema errors/i);
    }
    const badNet = join(work, 'bad-net.yaml');
    writeFileSync(badNet, 'network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: maybe\n');
    expect(run(SCHEMA, ['--type', 'network-config', badNet]).code).toBe(1);
  });

  it('PyYAML (cloud-init’s parser) reads every YAML file exactly as the renderer meant it', () => {
    for (const s of [...plain, ...wifi]) {
      for (const f of s.files.filter((x) => ['user-data', 'meta-data', 'network-config', NODE_PATHS.k3sConfig].includes(x.path))) {
        const py = execFileSync(PYTHON, ['-c', 'import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))'], {
          input: f.contents,
          encoding: 'utf8',
        });
        expect(JSON.parse(py), `${s.node} ${f.path}`).toEqual(parse(f.contents, { version: '1.1' }));
      }
    }
  });
});

describe('shell and systemd', { timeout: 120_000 }, () => {
  it('every join script passes shellcheck and bash -n', () => {
    const scripts = [...plain, ...sample].map((s, i) => write(s, i < plain.length ? 'plain' : 'sample')[`build:${NODE_PATHS.joinScript}`]!);
    const r = run('shellcheck', ['--shell=bash', '--severity=style', ...scripts]);
    expect(r.code, r.out).toBe(0);
    for (const p of scripts) expect(run('bash', ['-n', p]).code).toBe(0);
    const own = run('shellcheck', [SCHEMA]);
    expect(own.code, own.out).toBe(0);
  });

  it('shellcheck is a real check: an unquoted variable fails it', () => {
    const p = join(work, 'bad.sh');
    writeFileSync(p, '#!/bin/bash\nrm -rf $1/tmp\n');
    expect(run('shellcheck', [p]).code).not.toBe(0);
  });

  it('shq output survives bash unchanged', () => {
    for (const value of [`it's`, '$(touch /tmp/pwned) `x` "y" \\n', 'ümlaut ☃', '', "''"]) {
      const r = run('bash', ['-c', `printf %s ${shq(value)}`]);
      expect(r.out).toBe(value);
    }
  });

  it('the join unit passes systemd-analyze verify', () => {
    const which = run('sh', ['-c', 'command -v systemd-analyze']);
    if (which.code !== 0) return expect.soft(which.code, 'systemd-analyze not installed (apt-get install systemd)').toBe(0);
    const dir = join(work, 'units');
    mkdirSync(dir, { recursive: true });
    const unit = plain[3]!.files.find((f) => f.path === NODE_PATHS.joinUnit)!.contents;
    // point ExecStart at an existing executable: verify checks that it exists
    writeFileSync(join(dir, 'pi-image-join.service'), unit.replace(/^ExecStart=.*$/m, 'ExecStart=/bin/true'));
    const r = run('systemd-analyze', ['verify', '--man=no', join(dir, 'pi-image-join.service')]);
    expect(r.out).not.toMatch(/pi-image-join\.service:\d+:|Unknown|Failed to/);
    // the check is real: a broken copy is reported
    writeFileSync(join(dir, 'broken.service'), unit.replace('Type=oneshot', 'Type=bogus').replace(/^ExecStart=.*$/m, 'ExecStart=/bin/true'));
    expect(run('systemd-analyze', ['verify', '--man=no', join(dir, 'broken.service')]).out).toMatch(/broken\.service:\d+: Failed to parse service type/);
  });
});

/**
 * The rendered join script, run for real with its on-node paths moved into a temp dir and the
 * outside world (curl, systemctl, ip, sleep, k3s, install.sh) replaced by small stubs.
 */
describe('join script behaviour (stubbed node)', () => {
  function setup(node: NodeFileSet, opts: { serverUpAfter: number; airgap: boolean }) {
    const root = mkdtempSync(join(work, `node-${node.node}-`));
    const d = (p: string) => join(root, p);
    for (const p of ['bin', 'status', 'seed', 'data/agent', 'share', 'stub', 'airgap', 'manifests', 'cloud/instances/i-1', 'systemd']) mkdirSync(d(p), { recursive: true });
    let script = node.files.find((f) => f.path === NODE_PATHS.joinScript)!.contents;
    const set = (name: string, value: string) => {
      const re = new RegExp(`^readonly ${name}=.*$`, 'm');
      expect(script).toMatch(re);
      script = script.replace(re, `readonly ${name}=${shq(value)}`);
    };
    set('STATUS_DIR', d('status'));
    set('SEED_DIR', d('seed'));
    set('DATA_DIR', d('data'));
    set('BAKED_INSTALLER', d('share/install.sh'));
    set('K3S_BIN', d('bin/k3s'));
    set('AIRGAP_STAGE', d('airgap'));
    set('MANIFESTS_STAGE', d('manifests'));
    set('CLOUD_DIR', d('cloud'));
    set('ETC_SYSTEMD', d('systemd'));
    set('SSHD_CONFIG_D', d('sshd_config.d'));
    writeFileSync(d('join.sh'), script, { mode: 0o755 });
    const seed = node.files.find((f) => f.path === 'user-data')!.contents;
    writeFileSync(d('seed/user-data'), seed);
    // the copies cloud-init keeps of the raw user-data, root-only
    writeFileSync(d('cloud/instances/i-1/user-data.txt'), seed, { mode: 0o600 });
    writeFileSync(d('cloud/instances/i-1/user-data.txt.i'), `Content-Type: multipart/mixed\n${seed}`, { mode: 0o600 });
    // cloud-init's pickled datasource holds the raw user-data as well
    writeFileSync(d('cloud/instances/i-1/obj.pkl'), Buffer.concat([Buffer.from([0x80, 0x04]), Buffer.from(seed)]), { mode: 0o400 });
    // what the bake stages outside /var/lib/rancher
    if (opts.airgap) writeFileSync(d('airgap/k3s-airgap-images-arm64.tar.zst'), 'images');
    // userconf-pi's rename service, enabled again at first boot by `rename-user -f -s`
    mkdirSync(d('systemd/multi-user.target.wants'), { recursive: true });
    writeFileSync(d('systemd/multi-user.target.wants/userconfig.service'), '');
    mkdirSync(d('sshd_config.d'));
    writeFileSync(d('sshd_config.d/rename_user.conf'), 'Banner /usr/share/userconf-pi/sshd_banner\n');
    writeFileSync(d('manifests/00-namespaces.yaml'), 'kind: Namespace\n');
    writeFileSync(d('data/agent/kubelet.kubeconfig'), 'fake');
    const stub = (name: string, body: string) => writeFileSync(d(`stub/${name}`), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
    const S = d('stub');
    stub('ip', 'echo "default via 10.0.0.1 dev eth0"');
    stub('getent', 'echo "192.0.2.1 $2"');
    stub('sleep', `echo "$1" >>${shq(`${S}/sleeps`)}`);
    stub(
      'curl',
      `for a in "$@"; do url=$a; done
case "$url" in
  */cacerts) n=$(cat ${shq(`${S}/cacerts`)} 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >${shq(`${S}/cacerts`)}
    [ "$n" -gt ${opts.serverUpAfter} ] && exit 0; exit 7 ;;
  *) out=; prev=; for a in "$@"; do [ "$prev" = -o ] && out=$a; prev=$a; done; echo fake-download >"$out"; exit 0 ;;
esac`,
    );
    stub(
      'systemctl',
      `echo "$*" >>${shq(`${S}/systemctl.log`)}
case "$1" in
  start) touch ${shq(`${S}/active`)} ;;
  is-active) [ -f ${shq(`${S}/active`)} ] ;;
  *) exit 0 ;;
esac`,
    );
    writeFileSync(d('share/install.sh'), `env | grep -E '^(INSTALL_K3S|K3S_)' | sort >${shq(`${S}/install-env`)}\n`);
    if (opts.airgap) {
      writeFileSync(d('bin/k3s'), `#!/bin/bash\n[ "$1" = kubectl ] && [ "$*" = "kubectl --kubeconfig ${d('data/agent/kubelet.kubeconfig')} get node ${node.node}" ]\n`, {
        mode: 0o755,
      });
    }
    const env = { PATH: `${S}:${process.env.PATH}`, PI_IMAGE_PHASE_ATTEMPTS: '3', PI_IMAGE_BACKOFF_CAP: '8' };
    const exec = () => run('bash', [d('join.sh')], { env });
    const status = () => JSON.parse(readFileSync(d('status/status.json'), 'utf8')) as Record<string, unknown>;
    return { d, S, exec, status, sha: (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex') };
  }

  it('air-gapped agent: waits for the server with backoff, installs, registers, redacts the seed, exits 0', () => {
    const agent = plain[1]!; // pi-cluster-2
    const n = setup(agent, { serverUpAfter: 2, airgap: true });
    // the fixture pins a sha256; make the fake baked binary match it
    const script = readFileSync(n.d('join.sh'), 'utf8').replace(/^readonly K3S_SHA256=.*$/m, `readonly K3S_SHA256=${shq(n.sha(n.d('bin/k3s')))}`);
    writeFileSync(n.d('join.sh'), script);
    const r = n.exec();
    expect(r.code, r.out).toBe(0);
    const st = n.status();
    expect(st).toMatchObject({ node: agent.node, role: 'agent', phase: 'joined', run: 1, lastError: null });
    expect(typeof st.joinedAt).toBe('string');
    expect(existsSync(n.d('status/joined'))).toBe(true);
    expect(readFileSync(n.S + '/sleeps', 'utf8').trim().split('\n')).toEqual(['5', '8']);
    const installEnv = readFileSync(`${n.S}/install-env`, 'utf8');
    expect(installEnv).toContain('INSTALL_K3S_SKIP_DOWNLOAD=true');
    expect(installEnv).toContain('INSTALL_K3S_EXEC=agent');
    expect(installEnv).not.toMatch(/K3S_TOKEN|K3S_URL/);
    const seed = readFileSync(n.d('seed/user-data'), 'utf8');
    expect(seed.startsWith('#cloud-config\n')).toBe(true);
    expect(seed).not.toContain(FAKE_SECRETS.agentToken);
    for (const copy of ['user-data.txt', 'user-data.txt.i']) {
      const f = n.d(`cloud/instances/i-1/${copy}`);
      expect(readFileSync(f, 'utf8')).toMatch(/^# pi-image: redacted/m);
      expect(readFileSync(f, 'utf8')).not.toContain(FAKE_SECRETS.agentToken);
      expect(statSync(f).mode & 0o777).toBe(0o600);
    }
    expect(existsSync(n.d('cloud/instances/i-1/obj.pkl'))).toBe(false);
    // cloud-init's raspberry-pi-os distro re-runs rename-user: the join undoes it as cancel-rename does
    expect(readFileSync(`${n.S}/systemctl.log`, 'utf8')).toMatch(/disable userconfig\.service[\s\S]*enable getty@tty1\.service/);
    expect(existsSync(n.d('sshd_config.d/rename_user.conf'))).toBe(false);
    // the staged air-gap images were copied where k3s reads them; an agent gets no manifests
    expect(readFileSync(n.d('data/agent/images/k3s-airgap-images-arm64.tar.zst'), 'utf8')).toBe('images');
    expect(existsSync(n.d('data/server/manifests'))).toBe(false);
    expect(r.out).not.toContain(FAKE_SECRETS.agentToken);
    expect(readFileSync(n.d('status/status.json'), 'utf8')).not.toContain('FAKE-');
    // a second run (the unit's condition aside) is a no-op
    const again = n.exec();
    expect(again.code).toBe(0);
    expect(again.out).toContain('already joined');
  });

  it('air-gapped server: copies the staged images and manifests into its data dir before k3s starts', () => {
    const n = setup(plain[0]!, { serverUpAfter: 0, airgap: true });
    const script = readFileSync(n.d('join.sh'), 'utf8').replace(/^readonly K3S_SHA256=.*$/m, `readonly K3S_SHA256=${shq(n.sha(n.d('bin/k3s')))}`);
    writeFileSync(n.d('join.sh'), script);
    const r = n.exec();
    expect(r.code, r.out).toBe(0);
    expect(readFileSync(n.d('data/server/manifests/00-namespaces.yaml'), 'utf8')).toBe('kind: Namespace\n');
    expect(statSync(n.d('data/server/manifests/00-namespaces.yaml')).mode & 0o777).toBe(0o600);
    expect(readFileSync(n.d('data/agent/images/k3s-airgap-images-arm64.tar.zst'), 'utf8')).toBe('images');
    expect(r.out.indexOf('phase: staging-k3s-files')).toBeLessThan(r.out.indexOf('phase: starting-k3s'));
  });

  it('server never answers: gives up the run after the attempts, status says why', () => {
    const n = setup(plain[1]!, { serverUpAfter: 1000, airgap: true });
    const r = n.exec();
    expect(r.code).toBe(1);
    const st = n.status();
    expect(st).toMatchObject({ phase: 'waiting-for-server', attempts: 3 });
    expect(String(st.lastError)).toContain('does not answer');
    expect(readFileSync(n.d('seed/user-data'), 'utf8')).toContain(FAKE_SECRETS.agentToken);
    // systemd restarts the unit: the run counter goes up
    n.exec();
    expect(n.status().run).toBe(2);
  });

  it('pinned download with a wrong checksum is refused before anything is installed', () => {
    const n = setup(plain[0]!, { serverUpAfter: 0, airgap: false });
    const r = n.exec();
    expect(r.code).toBe(1);
    const st = n.status();
    expect(st.phase).toBe('installing');
    expect(String(st.lastError)).toMatch(/sha256 [0-9a-f]{64}, expected/);
    expect(existsSync(n.d('bin/k3s'))).toBe(false);
    expect(existsSync(`${n.S}/install-env`)).toBe(false);
  });
});
