#!/usr/bin/env node
/**
 * bench/flash — `pi-image flash` of an image that `pi-image build` made (with its block map),
 * against `dd` of the same raw image, on a loop device over a scratch file, in the same rounds:
 *
 *   (a) dd if=IMG of=/dev/loopN bs=4M oflag=direct conv=fsync      the baseline (no verify)
 *   (b) pi-image flash --image IMG --device /dev/loopN --allow-loop --yes
 *       (mapped ranges only, read back with O_DIRECT and checked: verify included)
 *
 * Target (issue 12): (b) ≤ 0.7 × (a) on an image that is about half empty. Also printed: the
 * whole-card write ratio of the image (mapped bytes / image size). The bench asserts no timing
 * and exits 0 once it has measured.
 *
 * The sample base (8 MiB gap, 512 MiB FAT with 64 MiB of files, 512 MiB ext4 with ≈420 MiB of
 * incompressible files) is made with sfdisk + mkfs.vfat + mcopy + mkfs.ext4 -d under the work
 * directory and removed afterwards, as is the loop device.
 *
 *   sudo npm run bench:flash                      # builds dist/ first (npm run build)
 *   sudo node bench/flash.mjs --runs 5 --no-build --dir /var/tmp/pi-image-bench [--keep] [--cached] [--card 30:90|none]
 *
 * The loop device runs with --direct-io=on, so its writes reach the disk under the scratch file
 * as a card's reach the card; `--cached` leaves it over the page cache, where writing is a memory
 * copy and the flash's hashing (sha256 of every mapped byte, written and read back) dominates.
 *
 * Needs root (losetup), coreutils (dd), fdisk (sfdisk), dosfstools, mtools, e2fsprogs, python3.
 */
import process from 'node:process';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { arg, CLI, ensureBuilt, fmtS, fmtX, median, printResult, REPO_ROOT, round, runBench, summary, table, timeCommand, writeRandomFile } from './lib.mjs';

const MiB = 1024 * 1024;
const RUNS = Number(arg('runs', 3));
const NODE = String(arg('node', 'pi-cluster-2'));
const DIR = String(arg('dir', process.env.PI_IMAGE_BENCH_CACHE ?? '/var/tmp/pi-image-bench'));
/**
 * `--card W:R` (MB/s, default 30:90, an A1-class microSD card's sequential write and read): the
 * loop device is throttled to a card's speed with the blkio cgroup (v1, root group: only this
 * loop device's rule, removed at the end); `--card none` leaves it as fast as the disk.
 */
const CARD = String(arg('card', '30:90'));
/** `--cached`: a loop device over the page cache (losetup without --direct-io): CPU-bound, not a card */
const DIRECT = !arg('cached', false);
const BLKIO = '/sys/fs/cgroup/blkio';
const LAYOUT = { gapMiB: 8, bootMiB: 512, rootMiB: 512, bootDataMiB: 64, rootDataMiB: 420 };

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * MiB, ...opts });
  if (r.error?.code === 'ENOENT') throw new Error(`${cmd} is not installed (apt-get install -y $(grep -v '^#' scripts/apt-packages.txt))`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stderr}`);
  return r.stdout;
}

/** Reproducible incompressible data for this bench. */
const writeRandom = (path, bytes, label) => writeRandomFile(path, bytes, `pi-image flash bench/${label}`);

/** A Pi-OS-layout base, about half of it data. */
function makeBase(work) {
  const img = join(work, 'base.img');
  const boot = join(work, 'boot');
  const root = join(work, 'root');
  mkdirSync(boot, { recursive: true });
  writeFileSync(join(boot, 'cmdline.txt'), 'console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait resize\n');
  writeFileSync(join(boot, 'config.txt'), 'arm_64bit=1\nauto_initramfs=1\n[all]\n');
  for (const name of ['meta-data', 'user-data', 'network-config']) writeFileSync(join(boot, name), '# placeholder\n');
  for (let i = 0; i < 4; i++) writeRandom(join(boot, `blob${i}.bin`), (LAYOUT.bootDataMiB / 4) * MiB, `boot/${i}`);
  mkdirSync(join(root, 'etc/cloud'), { recursive: true });
  mkdirSync(join(root, 'boot/firmware'), { recursive: true });
  writeFileSync(join(root, 'etc/os-release'), 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\n');
  writeFileSync(join(root, 'etc/hostname'), 'raspberrypi\n');
  writeFileSync(join(root, 'etc/cloud/cloud.cfg'), 'users:\n  - default\n');
  for (let i = 0, left = LAYOUT.rootDataMiB * MiB; left > 0; i++) {
    const size = Math.min(left, ((i % 7) + 1) * 3 * MiB + 12345);
    const d = join(root, 'usr/lib/bench', String(i % 16));
    mkdirSync(d, { recursive: true });
    writeRandom(join(d, `f${i}.bin`), size, `root/${i}`);
    left -= size;
  }
  const bootOff = LAYOUT.gapMiB * MiB;
  const rootOff = bootOff + LAYOUT.bootMiB * MiB;
  sh('truncate', ['-s', String(rootOff + LAYOUT.rootMiB * MiB), img]);
  const s = (b) => b / 512;
  sh('sfdisk', ['-q', img], { input: `label: dos\nlabel-id: 0x6c586e13\nstart=${s(bootOff)}, size=${s(LAYOUT.bootMiB * MiB)}, type=c\nstart=${s(rootOff)}, size=${s(LAYOUT.rootMiB * MiB)}, type=83\n` });
  sh('mkfs.vfat', ['-F', '32', '-n', 'bootfs', '--offset', String(s(bootOff)), img, String((LAYOUT.bootMiB * MiB) / 1024)]);
  sh('mcopy', ['-i', `${img}@@${bootOff}`, ...readdirSync(boot).sort().map((n) => join(boot, n)), '::/'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
  sh('mkfs.ext4', ['-F', '-q', '-b', '4096', '-L', 'rootfs', '-d', root, '-E', `offset=${rootOff},root_owner=0:0`, img, `${LAYOUT.rootMiB}M`]);
  rmSync(boot, { recursive: true, force: true });
  rmSync(root, { recursive: true, force: true });
  return img;
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('needs root (losetup): sudo npm run bench:flash');
  ensureBuilt();
  mkdirSync(DIR, { recursive: true });
  const work = mkdtempSync(join(DIR, `flash-${process.pid}-`));
  let loop;
  /** sets (or with 0 removes) the loop device's blkio throttle */
  let throttled;
  try {
    process.stderr.write('bench: making the sample base and building its image …\n');
    const base = makeBase(work);
    const inv = join(work, 'nodes');
    mkdirSync(inv, { recursive: true });
    for (const n of readdirSync(join(REPO_ROOT, 'nodes')).filter((f) => f.endsWith('.yaml'))) writeFileSync(join(inv, n), readFileSync(join(REPO_ROOT, 'nodes', n)));
    const env = { ...process.env, XDG_CONFIG_HOME: join(work, 'config'), PI_IMAGE_ALLOW_LOOP: '1' };
    delete env.PI_IMAGE_AGE_KEY;
    delete env.PI_IMAGE_AGE_KEY_FILE;
    const out = join(work, 'images');
    sh(process.execPath, [CLI, '--inventory', inv, 'secrets', 'init'], { cwd: work, env });
    sh(process.execPath, [CLI, '--inventory', inv, 'build', NODE, '--base', base, '--out', out], { cwd: work, env });
    rmSync(base, { force: true });
    const img = join(out, `${NODE}.img`);
    const record = JSON.parse(readFileSync(join(out, `${NODE}.json`), 'utf8'));
    const size = record.image.size;
    const mapped = record.image.bmap?.mappedBytes;
    if (mapped === undefined) throw new Error(`${NODE}.json names no block map: the build wrote none`);

    const card = join(work, 'card.raw');
    sh('truncate', ['-s', String(size + 16 * MiB), card]);
    // --direct-io on: the loop device writes through to the scratch file's disk, as a card's
    // writes reach the card (without it, both dd and flash only fill the page cache)
    loop = sh('losetup', ['-f', '--show', ...(DIRECT ? ['--direct-io=on'] : []), card]).trim();
    if (CARD !== 'none') {
      const [w, r] = CARD.split(':').map((x) => Math.round(Number(x) * 1e6));
      if (!(w > 0 && r > 0)) throw new Error(`--card ${CARD}: expected WRITE:READ in MB/s, e.g. 30:90, or none`);
      const mm = sh('lsblk', ['-dno', 'MAJ:MIN', loop]).trim();
      throttled = (value) => {
        for (const [file, v] of [['write', w], ['read', r]]) writeFileSync(`${BLKIO}/blkio.throttle.${file}_bps_device`, `${mm} ${value ?? v}\n`);
      };
      throttled();
    }

    const dd = [];
    const flash = [];
    /** the flash's own account of its write and read-back phases (the rest: start-up, device checks) */
    const phases = [];
    const load = [loadavg()[0]];
    for (let i = 0; i < RUNS; i++) {
      // alternate the order: neither always runs on a warmer cache
      const steps = [
        () => dd.push(timeCommand('dd', [`if=${img}`, `of=${loop}`, 'bs=4M', 'oflag=direct', 'conv=fsync', 'status=none'])),
        () => {
          const t0 = process.hrtime.bigint();
          const r = spawnSync(process.execPath, [CLI, 'flash', '--image', img, '--device', loop, '--allow-loop', '--yes', '-o', 'json'], { cwd: work, env, encoding: 'utf8', maxBuffer: 64 * MiB });
          flash.push(Number(process.hrtime.bigint() - t0) / 1e9);
          if (r.status !== 0) throw new Error(`pi-image flash exited ${r.status ?? r.signal}:\n${r.stderr}`);
          const report = JSON.parse(r.stdout);
          phases.push({ write: report.writeSeconds, verify: report.verifySeconds });
        },
      ];
      for (const step of i % 2 === 0 ? steps : steps.reverse()) step();
      load.push(loadavg()[0]);
      process.stderr.write(`bench: round ${i + 1}/${RUNS}: dd ${fmtS(dd.at(-1))}, flash ${fmtS(flash.at(-1))} (write ${phases.at(-1).write} s, verify ${phases.at(-1).verify} s)\n`);
    }
    const ratio = median(flash) / median(dd);
    const cardRatio = mapped / size;
    process.stdout.write(
      `${table(
        ['what', 'median', 'min', 'max', 'vs dd'],
        [
          ['dd bs=4M oflag=direct conv=fsync (no verify)', fmtS(median(dd)), fmtS(Math.min(...dd)), fmtS(Math.max(...dd)), fmtX(1)],
          ['pi-image flash (mapped, verify included)', fmtS(median(flash)), fmtS(Math.min(...flash)), fmtS(Math.max(...flash)), fmtX(ratio)],
        ],
      )}\n`,
    );
    process.stdout.write(`loop device: ${DIRECT ? '--direct-io=on (writes reach the disk under the scratch file)' : 'over the page cache (--cached)'}, ${CARD === 'none' ? 'not throttled (--card none)' : `throttled to a card's ${CARD.replace(':', ' MB/s write, ')} MB/s read (--card)`}\n`);
    process.stdout.write(`image ${(size / MiB).toFixed(0)} MiB, mapped ${(mapped / MiB).toFixed(0)} MiB: whole-card write ratio ${cardRatio.toFixed(3)}\n`);
    process.stdout.write(`flash / dd = ${fmtX(ratio)} (target ≤ 0.70×: ${ratio <= 0.7 ? 'PASS' : 'MISS'}); load average ${load.map((l) => l.toFixed(1)).join(' → ')}\n`);
    printResult({
      bench: 'flash',
      loop: DIRECT ? 'direct-io' : 'cached',
      card: CARD,
      imageBytes: size,
      mappedBytes: mapped,
      wholeCardRatio: round(cardRatio),
      dd: summary(dd),
      flash: summary(flash),
      ratio: round(ratio),
      target: 0.7,
    });
  } finally {
    if (throttled !== undefined) throttled(0);
    if (loop !== undefined) spawnSync('losetup', ['-d', loop]);
    if (arg('keep', false)) process.stderr.write(`bench: kept ${work}\n`);
    else rmSync(work, { recursive: true, force: true });
  }
}

runBench('flash', main);
