/**
 * `pi-image build` on real Pi-OS-layout images (sfdisk + mkfs.vfat + mkfs.ext4): the output
 * filesystems are fsck-clean, every injected file reads back byte-equal with its mode, the base is
 * untouched, bad input fails clearly without leaving output, and a killed build leaves nothing.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ext4ReadFile, ext4Stat } from '../../src/adapters/ext4.js';
import { fatReadFile } from '../../src/adapters/fat.js';
import { transformCmdline } from '../../src/core/render/cmdline.js';
import { fsckExt4, fsckFat, makePiOsImage, type PiOsImage } from '../helpers/pi-os-image.js';
import { cli } from '../helpers/run-cli.js';
import { REPO_ROOT, sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let base: PiOsImage;
let gpt: PiOsImage;
let noCloud: PiOsImage;
let inv: ReturnType<typeof writeInventory>;
let env: NodeJS.ProcessEnv;
let baseSha: string;

beforeAll(async () => {
  base = await makePiOsImage();
  gpt = await makePiOsImage({ table: 'gpt' });
  noCloud = await makePiOsImage({ cloudInit: false });
  baseSha = sha(readFileSync(base.path));
  inv = writeInventory(sampleFiles());
  env = { ...process.env, XDG_CONFIG_HOME: join(inv.root, 'config'), PI_IMAGE_CACHE: join(inv.root, 'cache') };
  const init = await cli(['secrets', 'init'], { cwd: inv.root, env });
  expect(init.code, init.stderr).toBe(0);
});

afterAll(async () => {
  await Promise.all([base, gpt, noCloud].map((i) => i?.cleanup()));
  inv?.cleanup();
});

const build = (args: string[]) => cli(['build', ...args], { cwd: inv.root, env });

describe('pi-image build', () => {
  it('bakes a server and an agent image whose seed, cmdline and payload read back exactly', async () => {
    const out = join(inv.root, 'out1');
    const r = await build(['pi-cluster-1', 'pi-cluster-4', '--base', base.path, '--build-dir', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('built 2 image(s)');
    expect(sha(readFileSync(base.path))).toBe(baseSha); // the base is never modified

    const rendered = join(inv.root, 'rendered');
    expect((await cli(['render', '--all', '--out', rendered], { cwd: inv.root, env })).code).toBe(0);

    for (const node of ['pi-cluster-1', 'pi-cluster-4']) {
      const img = join(out, `${node}.img`);
      const record = JSON.parse(readFileSync(join(out, `${node}.json`), 'utf8'));
      expect(record.image.sha256).toBe(sha(readFileSync(img)));
      expect(record.base.sha256).toBe(baseSha);

      const fat = await fsckFat(img, base.bootOffset, base.bootSize);
      expect(fat.ok, fat.output).toBe(true);
      const ext = await fsckExt4(img, base.rootOffset);
      expect(ext.ok, ext.output).toBe(true);

      const boot = { image: img, offset: base.bootOffset };
      for (const f of ['user-data', 'meta-data', 'network-config']) {
        const onCard = await fatReadFile(boot, `/${f}`);
        expect(onCard.equals(readFileSync(join(rendered, node, 'boot', f))), `${node} ${f}`).toBe(true);
      }
      const cmdline = (await fatReadFile(boot, '/cmdline.txt')).toString();
      expect(cmdline).toBe(transformCmdline(base.cmdline, record.instanceId));
      expect(cmdline).toContain(`ds=nocloud;i=${record.instanceId}`);
      expect(cmdline).toContain('cgroup_enable=memory');
      expect(cmdline.trim().split('\n')).toHaveLength(1);

      // every non-secret file in the record matches what is in the image
      for (const f of record.files as { target: string; path: string; sha256?: string; mode: string }[]) {
        if (!f.sha256) continue;
        const data =
          f.target === 'boot'
            ? await fatReadFile(boot, `/${f.path}`)
            : await ext4ReadFile({ image: img, offset: base.rootOffset }, f.path);
        expect(sha(data), `${node} ${f.path}`).toBe(f.sha256);
        if (f.target === 'root') {
          const st = await ext4Stat({ image: img, offset: base.rootOffset }, f.path);
          expect(`0${st!.mode.toString(8)}`).toBe(f.mode);
          expect(st!.uid).toBe(0);
        }
      }
    }

    // manifests go onto the server only, mode 0600, byte-equal to manifests/
    const manifests = readdirSync(join(REPO_ROOT, 'manifests')).filter((n) => n.endsWith('.yaml'));
    expect(manifests.length).toBeGreaterThan(0);
    const serverRoot = { image: join(out, 'pi-cluster-1.img'), offset: base.rootOffset };
    for (const m of manifests) {
      const p = `/var/lib/pi-image/manifests/${m}`;
      expect((await ext4ReadFile(serverRoot, p)).equals(readFileSync(join(REPO_ROOT, 'manifests', m)))).toBe(true);
      expect((await ext4Stat(serverRoot, p))!.mode).toBe(0o600);
    }
    const agentRoot = { image: join(out, 'pi-cluster-4.img'), offset: base.rootOffset };
    expect(await ext4Stat(agentRoot, `/var/lib/pi-image/manifests/${manifests[0]}`)).toBeUndefined();
    // cloud-init-local waits for the seed's mount (baked: it runs before cloud-init could write it)
    const dropIn = (await ext4ReadFile(agentRoot, '/etc/systemd/system/cloud-init-local.service.d/10-pi-image-seed-mount.conf')).toString();
    expect(dropIn).toMatch(/^\[Unit\]\nRequiresMountsFor=\/boot\/firmware$/m);
    // the sample base has no userconf-pi: nothing of the guard is added
    expect(await ext4Stat(agentRoot, '/etc/systemd/system/getty.target.wants/getty@tty1.service')).toBeUndefined();
  });

  it('bakes the air-gap payload with its modes, and refuses an incomplete air-gap directory', async () => {
    const files = sampleFiles();
    files['cluster.yaml'] = files['cluster.yaml']!.replace('# airgapDir: airgap ', 'airgapDir: airgap   ');
    const agInv = writeInventory(files);
    try {
      const agEnv = { ...env };
      // reuse the first inventory's secrets and key
      writeFileSync(join(agInv.dir, 'secrets.age'), readFileSync(join(inv.dir, 'secrets.age')));
      writeFileSync(join(agInv.dir, 'secrets.recipients'), readFileSync(join(inv.dir, 'secrets.recipients')));
      const airgap = join(agInv.dir, 'airgap');
      mkdirSync(airgap);
      const binary = randomBytes(3 * 1024 * 1024);
      writeFileSync(join(airgap, 'k3s-arm64'), binary);
      writeFileSync(join(airgap, 'install.sh'), '#!/bin/sh\necho install\n');
      const out = join(agInv.root, 'out');

      const incomplete = await cli(['build', 'pi-cluster-3', '--base', base.path, '--build-dir', out], { cwd: agInv.root, env: agEnv });
      expect(incomplete.code).toBe(2);
      expect(incomplete.stderr).toContain('lacks k3s-airgap-images-arm64.tar.zst');
      expect(existsSync(join(out, 'pi-cluster-3.img'))).toBe(false);

      const images = randomBytes(2 * 1024 * 1024);
      writeFileSync(join(airgap, 'k3s-airgap-images-arm64.tar.zst'), images);
      const ok = await cli(['build', 'pi-cluster-3', '--base', base.path, '--build-dir', out], { cwd: agInv.root, env: agEnv });
      expect(ok.code, ok.stderr).toBe(0);
      const root = { image: join(out, 'pi-cluster-3.img'), offset: base.rootOffset };
      expect((await ext4ReadFile(root, '/usr/local/bin/k3s')).equals(binary)).toBe(true);
      expect((await ext4Stat(root, '/usr/local/bin/k3s'))!.mode).toBe(0o755);
      // staged outside /var/lib/rancher (a data disk mounted there would hide it); the join script copies it
      expect((await ext4ReadFile(root, '/var/lib/pi-image/airgap/k3s-airgap-images-arm64.tar.zst')).equals(images)).toBe(true);
      expect(await ext4Stat(root, '/var/lib/rancher/k3s/agent/images/k3s-airgap-images-arm64.tar.zst')).toBeUndefined();
      expect((await ext4Stat(root, '/usr/local/share/pi-image/install.sh'))!.mode).toBe(0o755);
      const ext = await fsckExt4(root.image, base.rootOffset);
      expect(ext.ok, ext.output).toBe(true);
    } finally {
      agInv.cleanup();
    }
  });

  it('compresses with zstd into <node>.img.zst that decompresses to the recorded raw image', async () => {
    const out = join(inv.root, 'out-zst');
    const r = await build(['pi-cluster-2', '--base', base.path, '--build-dir', out, '--compress', 'zstd', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const record = JSON.parse(r.stdout).images[0];
    expect(record.image.path).toBe(join(out, 'pi-cluster-2.img.zst'));
    expect(existsSync(join(out, 'pi-cluster-2.img'))).toBe(false);
    const raw = await execa('zstd', ['-dc', record.image.path], { encoding: 'buffer', maxBuffer: 2 ** 31 });
    expect(sha(Buffer.from(raw.stdout))).toBe(record.image.rawSha256);
  }, 240_000);

  it('builds from the cache by name, and refuses a cached base whose contents changed since it was fetched', async () => {
    // a test base under its own name: a catalogue name would keep the catalogue's sha256 check
    const imported = await cli(['images', 'import', base.path, '--name', 'test-base'], { cwd: inv.root, env });
    expect(imported.code, imported.stderr).toBe(0);
    const out = join(inv.root, 'out-cache');
    const ok = await build(['pi-cluster-2', '--base', 'test-base', '--build-dir', out]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'pi-cluster-2.json'), 'utf8')).base.sha256).toBe(baseSha);

    // flip one byte in the cached copy (same size, so only a re-hash can tell)
    const cached = join(env.PI_IMAGE_CACHE!, 'images', 'test-base.img');
    const fd = openSync(cached, 'r+');
    writeSync(fd, Buffer.from([0x42]), 0, 1, base.rootOffset + 4096 * 3 + 17);
    closeSync(fd);
    const out2 = join(inv.root, 'out-cache-changed');
    const bad = await build(['pi-cluster-2', '--base', 'test-base', '--build-dir', out2]);
    expect(bad.code).toBe(4);
    expect(bad.stderr).toContain('has changed since it was fetched');
    expect(bad.stderr).toContain('pi-image images fetch test-base --force');
    expect(existsSync(out2) ? readdirSync(out2) : []).toEqual([]);

    // with the recorded size, mtime and inode restored, the recorded sha256 is trusted (no re-hash);
    // --verify-base re-hashes all the same and refuses it
    const record = JSON.parse(readFileSync(join(env.PI_IMAGE_CACHE!, 'images', 'test-base.json'), 'utf8')) as { file: { mtimeNs: string } };
    const ns = BigInt(record.file.mtimeNs);
    await execa('touch', ['-m', '-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, cached]);
    const trusted = await build(['pi-cluster-2', '--base', 'test-base', '--build-dir', join(inv.root, 'out-cache-trusted')]);
    expect(trusted.code, trusted.stderr).toBe(0);
    const verified = await build(['pi-cluster-2', '--base', 'test-base', '--verify-base', '--build-dir', join(inv.root, 'out-cache-verified')]);
    expect(verified.code).toBe(4);
    expect(verified.stderr).toContain('has changed since it was fetched');
   }, 300_000); // four builds of a node

  it('--dry-run prints the plan and writes nothing', async () => {
    const out = join(inv.root, 'out-dry');
    const r = await build(['--all', '--base', base.path, '--build-dir', out, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('pi-cluster-1 (server');
    expect(r.stdout).toContain('/var/lib/pi-image/manifests/');
    expect(existsSync(out)).toBe(false);
  });

  it('on a base with userconf-pi, bakes what cancel-rename does on a console system', async () => {
    const userconf = await makePiOsImage({
      rootFiles: {
        '/usr/bin/cancel-rename': '#!/bin/bash\n',
        '/usr/lib/systemd/system/userconfig.service': '[Unit]\nDescription=User configuration dialog\n[Service]\nType=oneshot\nExecStart=/usr/lib/userconf-pi/userconf-service\n[Install]\nWantedBy=multi-user.target\n',
        '/etc/systemd/system/multi-user.target.wants/userconfig.service': '(enabled by rename-user)\n',
        '/etc/ssh/sshd_config.d/rename_user.conf': 'Banner /usr/share/userconf-pi/sshd_banner\n',
      },
    });
    try {
      const out = join(inv.root, 'out-userconf');
      const r = await build(['pi-cluster-2', '--base', userconf.path, '--build-dir', out]);
      expect(r.code, r.stderr).toBe(0);
      const root = { image: join(out, 'pi-cluster-2.img'), offset: userconf.rootOffset };
      expect(await ext4Stat(root, '/etc/systemd/system/multi-user.target.wants/userconfig.service')).toBeUndefined();
      expect(await ext4Stat(root, '/etc/ssh/sshd_config.d/rename_user.conf')).toBeUndefined();
      const getty = await ext4Stat(root, '/etc/systemd/system/getty.target.wants/getty@tty1.service');
      expect(getty?.type).toBe('symlink');
      expect(getty?.linkTarget).toBe('/usr/lib/systemd/system/getty@.service');
      expect(await ext4Stat(root, '/usr/lib/systemd/system/userconfig.service')).toBeDefined(); // the package stays
      const ext = await fsckExt4(root.image, userconf.rootOffset);
      expect(ext.ok, ext.output).toBe(true);
      const dry = await build(['pi-cluster-2', '--base', userconf.path, '--build-dir', join(inv.root, 'out-userconf-dry'), '--dry-run']);
      expect(dry.stdout).toContain('userconf-pi guard');
    } finally {
      await userconf.cleanup();
    }
  });

  const bad: [string, () => string[], number, string][] = [
    ['a GPT base', () => ['pi-cluster-2', '--base', gpt.path], 2, 'GPT'],
    ['a base without cloud-init', () => ['pi-cluster-2', '--base', noCloud.path], 2, 'has no cloud-init'],
    ['a node not in the inventory', () => ['pi-cluster-9', '--base', base.path], 2, 'pi-cluster-9 is not in the inventory'],
    ['a missing base file', () => ['pi-cluster-2', '--base', '/nonexistent/base.img'], 2, 'base image /nonexistent/base.img does not exist'],
    ['a base name not in the cache', () => ['pi-cluster-2', '--base', 'raspios-lite-arm64-bookworm'], 3, 'is not in the cache'],
    ['neither nodes nor --all', () => [], 2, 'which node?'],
  ];
  for (const [name, args, code, message] of bad) {
    it(`refuses ${name} and leaves no output`, async () => {
      const out = join(inv.root, `out-bad-${name.replace(/\W+/g, '-')}`);
      const r = await build([...args(), '--build-dir', out]);
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr).toContain(message);
      expect(r.stderr).toMatch(/hint: /);
      expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
      expect(sha(readFileSync(base.path))).toBe(baseSha);
    });
  }

  it('a build killed mid-way leaves no output file', async () => {
    const out = join(inv.root, 'out-kill');
    const tsx = pathToFileURL(join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
    const child = spawn(process.execPath, ['--import', tsx, join(REPO_ROOT, 'src/cli.ts'), 'build', 'pi-cluster-2', '--base', base.path, '--build-dir', out], {
      cwd: inv.root,
      env,
      stdio: 'ignore',
    });
    // wait until the temporary image exists, then kill the build
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !(existsSync(out) && readdirSync(out).some((f) => f.includes('.tmp-')))) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(existsSync(out) && readdirSync(out).some((f) => f.includes('.tmp-'))).toBe(true);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('exit', (c, sig) => r(c ?? (sig ? 143 : null))));
    expect(code).not.toBe(0);
    expect(readdirSync(out)).toEqual([]);
    expect(sha(readFileSync(base.path))).toBe(baseSha);
  });
});
