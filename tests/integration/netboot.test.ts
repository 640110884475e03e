/**
 * `pi-image netboot` end to end: a Pi-OS-layout image (FAT boot + ext4 root holding files with
 * special modes/owners) is exported; dnsmasq — started with the generated snippet, in a private
 * network namespace so its fixed TFTP port 69 binds only that namespace's 127.0.0.1 — serves the
 * boot folder, and the tftp-hpa client fetches files byte-equal to what the image holds.
 * Needs root (chown, ip netns), dnsmasq, tftp-hpa, iproute2, mtools, e2fsprogs, fdisk, dosfstools.
 */
import { cp, lstat, mkdtemp, readdir, readFile, readlink, rm, writeFile, mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ext4Apply, ext4Stat } from '../../src/adapters/ext4.js';
import { listExt4Tree } from '../../src/adapters/netboot.js';
import { cli } from '../helpers/run-cli.js';
import { canUseLoop, makeFlashTestImage, type FlashTestImage } from '../helpers/flash-image.js';

const NODE = 'pi-cluster-3';
const SERIAL = '4e1c0013';
const SERVER = '10.0.0.2';
const NS = `pi-image-netboot-${process.pid}`;
const PIOS_CMDLINE = 'console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait resize cgroup_memory=1 cgroup_enable=memory ds=nocloud;i=pi-cluster-3-0f1e2d3c';

/** secret values as a baked seed holds them: join token and node password in user-data, Wi-Fi PSK in network-config */
const SECRETS = ['K10e3f5a9c1d2b4e6f708192a3b4c5d6e::server:7f3c9a1e5b2d4c6a', 'np-3b9f1c7e5a2d4b6c8e0f', 'wifi-psk-Zq8Lr2Vx6Tn4'];
const SECRET_SEED = {
  'user-data': `#cloud-config\nhostname: ${NODE}\nwrite_files:\n  - path: /etc/rancher/k3s/token\n    content: ${SECRETS[0]}\n  - path: /etc/rancher/node/password\n    content: ${SECRETS[1]}\n`,
  'network-config': `network:\n  version: 2\n  wifis:\n    wlan0:\n      access-points:\n        homelab:\n          password: ${SECRETS[2]}\n`,
};

/** paths in the test rootfs whose metadata the export must keep */
const SPECIAL = ['/etc/secret-600', '/home/pi-admin/notes', '/home/pi-admin', '/etc/motd-link', '/srv/private', '/usr/bin/sudo-like', '/tmp', '/etc/secret-hardlink', '/dev/null', '/run/fifo'];

describe.skipIf(!canUseLoop)('pi-image netboot', () => {
  let dir: string;
  let root: string;
  let img: FlashTestImage;
  let dnsmasq: ResultPromise | undefined;
  let dnsmasqLog = '';
  let nsCreated = false;
  let report: { nodes: { node: string; tftpDir: string; nfsDir: string; bootFiles: number; rootfs: { entries: number; ms: number } }[]; skipped: { node: string; reason: string }[]; files: string[] };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pi-image-netboot-'));
    root = join(dir, 'srv');
    // inventory: the sample one, with pi-cluster-3 switched to netboot
    await cp(new URL('../../nodes', import.meta.url).pathname, join(dir, 'nodes'), { recursive: true });
    const p3 = join(dir, 'nodes', `${NODE}.yaml`);
    const y = (await readFile(p3, 'utf8')).replace(/^boot: .*$/m, 'boot: netboot');
    await writeFile(p3, `${y}dataDisk:\n  device: /dev/disk/by-label/rancher\n`);

    const build = join(dir, 'build', 'images');
    await mkdir(build, { recursive: true });
    img = await makeFlashTestImage(build, NODE, { bootFiles: { 'cmdline.txt': `${PIOS_CMDLINE}\n`, 'start4.elf': 'fake firmware\u0000\u0001\u0002', ...SECRET_SEED } });
    img.seed = { ...img.seed, ...SECRET_SEED };
    // a sub-folder on the FAT, as overlays/ on a real image
    await execa('mmd', ['-i', `${img.path}@@${img.bootOffset}`, '::/overlays'], { env: { MTOOLS_SKIP_CHECK: '1' } });
    await execa('mcopy', ['-i', `${img.path}@@${img.bootOffset}`, '-', '::/overlays/vc4-kms-v3d.dtbo'], { input: Buffer.from([0xd0, 0x0d, 0xfe, 0xed, 1, 2, 3]), env: { MTOOLS_SKIP_CHECK: '1' } });
    // root filesystem entries with modes and owners that must survive the export
    const v = { image: img.path, offset: img.rootOffset };
    await ext4Apply(v, [
      { kind: 'file', path: '/etc/secret-600', contents: 'root only\n', mode: 0o600, uid: 0, gid: 0 },
      { kind: 'dir', path: '/home/pi-admin', mode: 0o750, uid: 1000, gid: 1000 },
      { kind: 'file', path: '/home/pi-admin/notes', contents: 'user file\n', mode: 0o644, uid: 1000, gid: 1000 },
      { kind: 'symlink', path: '/etc/motd-link', target: '../home/pi-admin/notes', uid: 0, gid: 0 },
      { kind: 'dir', path: '/srv/private', mode: 0o750, uid: 0, gid: 4 },
      { kind: 'file', path: '/usr/bin/sudo-like', contents: '#!/bin/sh\n', mode: 0o4755, uid: 0, gid: 0 },
      { kind: 'dir', path: '/tmp', mode: 0o1777, uid: 0, gid: 0 },
      { kind: 'dir', path: '/dev', mode: 0o755 },
      { kind: 'dir', path: '/run', mode: 0o755 },
    ]);
    await execa('debugfs', ['-w', '-f', '-', `${img.path}?offset=${img.rootOffset}`], {
      input: [
        'ln /etc/secret-600 /etc/secret-hardlink',
        'sif /etc/secret-600 links_count 2',
        'cd /dev',
        'mknod null c 1 3',
        'sif /dev/null mode 020666',
        'cd /run',
        'mknod fifo p',
        'sif /run/fifo mode 010600',
        '',
      ].join('\n'),
    });
    const fsck = await execa('e2fsck', ['-fn', `${img.path}?offset=${img.rootOffset}`], { reject: false, all: true });
    expect(fsck.exitCode, String(fsck.all)).toBe(0);

    const t0 = performance.now();
    const r = await cli(['netboot', '--all', '--root', root, '--server', SERVER, '-o', 'json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    report = JSON.parse(r.stdout) as typeof report;
    console.log(`netboot export of ${NODE}: ${Math.round(performance.now() - t0)} ms (rootfs ${report.nodes[0]?.rootfs.entries} entries in ${report.nodes[0]?.rootfs.ms} ms); stderr: ${r.stderr.trim()}`);

    // dnsmasq with the generated snippet, TFTP only on the namespace's loopback
    await execa('ip', ['netns', 'add', NS]);
    nsCreated = true;
    await execa('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
    dnsmasq = execa('ip', ['netns', 'exec', NS, 'dnsmasq', '--no-daemon', `--conf-file=${join(root, 'dnsmasq.d', 'pi-image.conf')}`,
      '--port=0', '--listen-address=127.0.0.1', '--bind-interfaces', '--user=root', '--group=root', '--pid-file', '--log-facility=-'], { reject: false, all: true, buffer: false });
    dnsmasq.all?.on('data', (d: Buffer) => { dnsmasqLog += d.toString(); });
    for (let i = 0; i < 50 && !/TFTP root is/.test(dnsmasqLog); i++) await new Promise((res) => setTimeout(res, 100));
    expect(dnsmasqLog).toMatch(/TFTP root is/);
  });

  afterAll(async () => {
    if (dnsmasq !== undefined) {
      dnsmasq.kill('SIGTERM');
      await dnsmasq.catch(() => undefined);
    }
    if (nsCreated) await execa('ip', ['netns', 'del', NS], { reject: false });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function tftpGet(path: string): Promise<Buffer> {
    const local = join(dir, `fetched-${path.replace(/\//g, '_')}`);
    await rm(local, { force: true });
    // tftp-hpa exits 0 even when the server answers with an error: look at its output
    const r = await execa('ip', ['netns', 'exec', NS, 'tftp', '-m', 'binary', '127.0.0.1', '69', '-c', 'get', path, local], { timeout: 20_000, all: true });
    if (/Error code|Transfer timed out/.test(String(r.all))) throw new Error(`tftp get ${path}: ${String(r.all).trim()}`);
    return readFile(local);
  }

  async function fatRead(path: string): Promise<Buffer> {
    const r = await execa('mcopy', ['-n', '-i', `${img.path}@@${img.bootOffset}`, `::${path}`, '-'], { encoding: 'buffer', stripFinalNewline: false, env: { MTOOLS_SKIP_CHECK: '1' } });
    return Buffer.from(r.stdout);
  }

  it('reports what it exported and what it skipped', () => {
    expect(report.nodes.map((n) => [n.node, n.tftpDir, n.nfsDir])).toEqual([[NODE, join(root, 'tftp', SERIAL), join(root, 'nfs', NODE)]]);
    expect(report.skipped.find((s) => s.node === 'pi-cluster-4')?.reason).toMatch(/no dataDisk in .*pi-cluster-4\.yaml/);
    expect(report.files.sort()).toEqual([join(root, 'EEPROM.md'), join(root, 'dnsmasq.d', 'pi-image.conf'), join(root, 'exports')].sort());
    expect(report.nodes[0]?.bootFiles).toBe(4); // cmdline, config, start4.elf, overlay: no seed file
  });

  it('serves the boot files over TFTP byte-equal to the image (dnsmasq + tftp-hpa), but never the seed', async () => {
    for (const f of ['config.txt', 'start4.elf', 'overlays/vc4-kms-v3d.dtbo']) {
      const got = await tftpGet(`${SERIAL}/${f}`);
      expect(got.equals(await fatRead(`/${f}`)), `${f}: ${got.length} bytes; dnsmasq: ${dnsmasqLog}`).toBe(true);
    }
    for (const f of Object.keys(img.seed)) await expect(tftpGet(`${SERIAL}/${f}`)).rejects.toThrow(/Error code/);
  });

  it('puts no secret value in any file under tftp/ (the seed is only in the NFS root, 0600)', async () => {
    const files: string[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(join(d, e.name));
        else files.push(join(d, e.name));
      }
    };
    await walk(join(root, 'tftp'));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const f of files) {
      const text = (await readFile(f)).toString('latin1');
      for (const v of SECRETS) expect(text.includes(v), `${f} holds a secret value`).toBe(false);
      expect(((await stat(f)).mode & 0o777).toString(8)).toBe('644');
    }
    // every secret value is in the node's NFS root, in a file only root can read
    const fw = join(root, 'nfs', NODE, 'boot/firmware');
    const seedText = (await Promise.all(['user-data', 'network-config'].map((n) => readFile(join(fw, n), 'utf8')))).join('\n');
    for (const v of SECRETS) expect(seedText).toContain(v);
    for (const n of ['user-data', 'network-config', 'meta-data']) expect(((await stat(join(fw, n))).mode & 0o777).toString(8)).toBe('600');
    expect(dnsmasqLog).toMatch(new RegExp(`sent ${join(root, 'tftp', SERIAL, 'config.txt').replace(/\//g, '\\/')} to 127\\.0\\.0\\.1`));
  });

  it('serves a node-specific cmdline.txt for an NFS root', async () => {
    const got = (await tftpGet(`${SERIAL}/cmdline.txt`)).toString('utf8');
    expect(got).toBe(await readFile(join(root, 'tftp', SERIAL, 'cmdline.txt'), 'utf8'));
    expect(got.endsWith('\n') && got.trimEnd().split('\n').length === 1).toBe(true);
    const tokens = got.trim().split(' ');
    expect(tokens).toEqual(expect.arrayContaining(['root=/dev/nfs', `nfsroot=${SERVER}:${join(root, 'nfs', NODE)},vers=3`, 'rw', 'ip=dhcp', 'rootwait',
      'console=serial0,115200', 'cgroup_enable=memory', 'cgroup_memory=1', 'ds=nocloud;i=pi-cluster-3-0f1e2d3c']));
    expect(tokens.filter((t) => /^(root=PARTUUID|rootfstype=|resize$|init=)/.test(t))).toEqual([]);
  });

  it('refuses paths outside the TFTP root', async () => {
    await expect(tftpGet('../exports')).rejects.toThrow(/Error code 2: cannot access/);
  });

  it('exports the root filesystem with modes, owners, symlinks, hard links and devices as in the image', async () => {
    const nfs = join(root, 'nfs', NODE);
    const v = { image: img.path, offset: img.rootOffset };
    for (const p of SPECIAL.filter((x) => !['/dev/null', '/run/fifo'].includes(x))) {
      const want = await ext4Stat(v, p);
      const got = await lstat(join(nfs, p));
      expect(want, p).toBeDefined();
      expect([p, got.mode & 0o7777, got.uid, got.gid]).toEqual([p, want!.mode, want!.uid, want!.gid]);
    }
    // the cases the test image was built for, spelled out
    const st = async (p: string) => lstat(join(nfs, p));
    expect(((await st('/etc/secret-600')).mode & 0o7777).toString(8)).toBe('600');
    expect([(await st('/home/pi-admin/notes')).uid, (await st('/home/pi-admin/notes')).gid]).toEqual([1000, 1000]);
    expect(((await st('/home/pi-admin')).mode & 0o7777).toString(8)).toBe('750');
    expect(((await st('/srv/private')).mode & 0o7777).toString(8)).toBe('750');
    expect((await st('/etc/motd-link')).isSymbolicLink()).toBe(true);
    expect(await readlink(join(nfs, '/etc/motd-link'))).toBe('../home/pi-admin/notes');
    expect(await readFile(join(nfs, '/etc/motd-link'), 'utf8')).toBe('user file\n');
    expect(((await st('/usr/bin/sudo-like')).mode & 0o7777).toString(8)).toBe('4755');
    expect(((await st('/tmp')).mode & 0o7777).toString(8)).toBe('1777');
    expect((await st('/etc/secret-hardlink')).ino).toBe((await st('/etc/secret-600')).ino);
    const dev = await st('/dev/null');
    expect(dev.isCharacterDevice()).toBe(true);
    expect([Math.floor(dev.rdev / 256), dev.rdev % 256]).toEqual([1, 3]);
    expect((await st('/run/fifo')).isFIFO()).toBe(true);
    // every inode of the image is there
    const entries = await listExt4Tree({ image: img.path, offset: img.rootOffset });
    for (const e of entries) {
      const got = await lstat(join(nfs, e.path));
      expect([e.path, got.mode & 0o170000, got.uid, got.gid], e.path).toEqual([e.path, e.mode & 0o170000, e.uid, e.gid]);
      if (!got.isSymbolicLink() && e.path !== '/etc/fstab') expect([e.path, got.mode & 0o7777]).toEqual([e.path, e.mode & 0o7777]);
    }
    const count = async (d: string): Promise<number> => {
      let n = 0;
      for (const e of await readdir(d, { withFileTypes: true })) {
        n++;
        if (e.isDirectory()) n += await count(join(d, e.name));
      }
      return n;
    };
    // the export adds nothing but /boot/firmware's seed copies
    expect(await count(nfs)).toBe(entries.length + Object.keys(img.seed).length + 1);
  });

  it('rewrites /etc/fstab for NFS boot and puts the seed where cloud-init looks', async () => {
    const nfs = join(root, 'nfs', NODE);
    const fstab = await readFile(join(nfs, 'etc/fstab'), 'utf8');
    expect(fstab).not.toMatch(/PARTUUID/);
    expect(fstab).toMatch(/^proc \/proc proc defaults 0 0$/m);
    expect(fstab).toMatch(/^\/dev\/disk\/by-label\/rancher \/var\/lib\/rancher ext4 defaults,noatime,x-systemd\.device-timeout=10min 0 2$/m);
    for (const [name, contents] of Object.entries(img.seed)) {
      const p = join(nfs, 'boot/firmware', name);
      expect(await readFile(p, 'utf8')).toBe(contents);
      expect(((await stat(p)).mode & 0o777).toString(8)).toBe('600');
    }
  });

  it('writes exports lines and a dnsmasq snippet dnsmasq accepts', async () => {
    const exportsText = await readFile(join(root, 'exports'), 'utf8');
    expect(exportsText).toContain(`${join(root, 'nfs', NODE)} 10.0.0.13(rw,sync,no_subtree_check,no_root_squash)`);
    const t = await execa('dnsmasq', ['--test', `--conf-file=${join(root, 'dnsmasq.d', 'pi-image.conf')}`], { all: true, reject: false });
    expect(t.exitCode, String(t.all)).toBe(0);
    expect(String(t.all)).toMatch(/syntax check OK/);
  });

  it('a killed `netboot --all` leaves no TFTP folder without its NFS root, and the rerun removes its staging folders (saying so)', async () => {
    const killRoot = join(dir, 'srv-kill');
    const tsx = pathToFileURL(join(process.cwd(), 'node_modules/tsx/dist/loader.mjs')).href;
    const child = spawn(process.execPath, ['--import', tsx, join(process.cwd(), 'src/cli.ts'), 'netboot', '--all', '--root', killRoot, '--server', SERVER], { cwd: dir, stdio: 'ignore' });
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    // kill it while the NFS root is being staged (the TFTP folder is staged already by then)
    const staging = (): string[] => {
      try {
        return readdirSync(join(killRoot, 'nfs')).filter((f) => f.includes('.tmp-'));
      } catch {
        return [];
      }
    };
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && staging().length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(staging().length).toBe(1);
    child.kill('SIGKILL');
    await exited;
    expect(existsSync(join(killRoot, 'tftp', SERIAL)), 'a TFTP folder without its NFS root').toBe(existsSync(join(killRoot, 'nfs', NODE)));
    const left = [...readdirSync(join(killRoot, 'tftp')), ...readdirSync(join(killRoot, 'nfs'))].filter((f) => f.startsWith('.'));
    expect(left.length).toBeGreaterThanOrEqual(1);
    // a staged TFTP folder holds no seed file either
    for (const f of readdirSync(join(killRoot, 'tftp')).filter((x) => x.startsWith('.'))) {
      expect(readdirSync(join(killRoot, 'tftp', f)).filter((x) => Object.keys(img.seed).includes(x))).toEqual([]);
    }

    const again = await cli(['netboot', '--all', '--root', killRoot, '--server', SERVER], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    for (const f of left) expect(again.stderr).toContain(`removed ${join(killRoot, f.includes(SERIAL) ? 'tftp' : 'nfs', f)}: a staging folder left by an export that was stopped`);
    expect(readdirSync(join(killRoot, 'tftp'))).toEqual([SERIAL]);
    expect(readdirSync(join(killRoot, 'nfs'))).toEqual([NODE]);
  });

  it('replaces an earlier export atomically (no leftovers) and rejects an incomplete netboot node', async () => {
    const r = await cli(['netboot', NODE, '--root', root, '--server', SERVER], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${NODE}: tftp .*${SERIAL}/ \\(\\d+ files\\), nfs .*${NODE}/`));
    expect((await readdir(join(root, 'tftp'))).sort()).toEqual([SERIAL]);
    expect((await readdir(join(root, 'nfs'))).sort()).toEqual([NODE]);
    const p3 = join(dir, 'nodes', `${NODE}.yaml`);
    const y = await readFile(p3, 'utf8');
    await writeFile(p3, y.replace(/^dataDisk:\n.*\n/m, ''));
    try {
      const bad = await cli(['netboot', NODE, '--root', root, '--server', SERVER], { cwd: dir });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/pi-cluster-3\.yaml/);
      expect(bad.stderr).toMatch(/dataDisk|data disk/);
    } finally {
      await writeFile(p3, y);
    }
  });
});
