/**
 * `pi-image flash` without --device lists the removable drives (as rpi-imager's picker) from the
 * captured lsblk fixtures, with the same verdicts the write itself would give, and exits 2.
 */
import { readFileSync } from 'node:fs';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { flashCandidates, formatCandidates } from '../../src/core/device-list.js';
import { parseLsblk } from '../../src/core/devices.js';
import { cli } from '../helpers/run-cli.js';

const fixture = (name: string) => parseLsblk(readFileSync(new URL(`../fixtures/lsblk/${name}.json`, import.meta.url), 'utf8'));
const GB = 1_000_000_000;

const lsblk = vi.hoisted(() => ({ current: 'usb-stick' }));
vi.mock('../../src/adapters/blockdev.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/adapters/blockdev.js')>();
  const { readFileSync: read } = await import('node:fs');
  const { parseLsblk: parse } = await import('../../src/core/devices.js');
  return {
    ...real,
    listBlockDevices: async () => parse(read(new URL(`../fixtures/lsblk/${lsblk.current}.json`, import.meta.url), 'utf8')),
    devicesHoldingFile: async () => [],
  };
});

describe('flash candidates (pure)', () => {
  it.each([
    ['usb-stick', ['/dev/sdb ok', '/dev/sda no medium']],
    ['sd-reader-card', ['/dev/sdc ok']],
    ['sd-reader-empty', ['/dev/sdc no medium']],
    ['sd-card-mounted', ['/dev/mmcblk0 mounted']],
    ['sd-card-readonly', ['/dev/sdc read-only']],
    ['mmcblk-sd-slot', ['/dev/mmcblk1 ok']],
    ['mmcblk-internal', []],
    ['system-nvme', []],
    ['root-disk', []],
    ['zram', []],
    ['loop', []],
    ['big-usb-disk', ['/dev/sdb ok']],
    ['lvm-member', ['/dev/sdb an LVM physical volume']],
    ['old-lsblk-2.34', ['/dev/sdb ok']],
  ])('%s', (name, expected) => {
    const list = flashCandidates(fixture(name), { imageSize: 0 });
    const status = formatCandidates(list)
      .slice(1)
      .map((row) => row.split(/ {2,}/))
      .map((cells) => `${cells[0]} ${cells[cells.length - 1]}`);
    expect(status).toHaveLength(expected.length);
    expected.forEach((e, i) => expect(status[i]).toContain(e));
  });

  it('marks a card smaller than the image, and lists loop devices only with the test override', () => {
    const small = flashCandidates(fixture('too-small'), { imageSize: 5 * GB });
    expect(small).toHaveLength(1);
    expect(small[0]!.usable).toBe(false);
    expect(small[0]!.problems[0]).toMatch(/too small/);
    expect(flashCandidates(fixture('too-small'), { imageSize: 0 })[0]!.usable).toBe(true);
    expect(flashCandidates(fixture('loop'), { imageSize: 0, allowLoop: true }).map((c) => c.device)).toEqual(['/dev/loop0']);
  });

  it('prints a table with one row per drive, usable first', () => {
    const lines = formatCandidates(flashCandidates(fixture('usb-stick'), { imageSize: 0 }));
    expect(lines[0]).toMatch(/^DEVICE\s+SIZE\s+TRANSPORT\s+MODEL\s+STATUS$/);
    expect(lines[1]).toMatch(/^\/dev\/sdb\s+31\.9 GB\s+usb\s+SanDisk Ultra\s+ok$/);
    expect(lines[2]).toMatch(/^\/dev\/sda\s+0 B\s+usb\s+Generic- Ultra HS-SD\/MMC\s+no medium \(size 0\)$/);
  });
});

describe('pi-image flash without --device', () => {
  beforeEach(() => {
    lsblk.current = 'usb-stick';
  });

  it('lists the drives on stdout, says how to pick one on stderr, exits 2', async () => {
    const r = await cli(['flash', 'pi-cluster-2']);
    expect(r.code).toBe(2);
    expect(r.stdout.split('\n')[0]).toMatch(/^DEVICE/);
    expect(r.stdout).toMatch(/\/dev\/sdb .* ok\n/);
    expect(r.stdout).not.toContain('nvme0n1');
    expect(r.stderr).toContain('error: no --device given: pick the drive to write (1 of 2 usable now)');
    expect(r.stderr).toContain('hint: e.g. `pi-image flash pi-cluster-2 --device /dev/sdb`');
  });

  it('-o json: the drives and the error in one document', async () => {
    lsblk.current = 'sd-card-mounted';
    const r = await cli(['flash', '-o', 'json']);
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as { devices: { device: string; usable: boolean; problems: string[] }[]; error: { exitCode: number; message: string } };
    expect(doc.devices.map((d) => [d.device, d.usable])).toEqual([['/dev/mmcblk0', false]]);
    expect(doc.devices[0]!.problems.join(' ')).toMatch(/is mounted/);
    expect(doc.error.exitCode).toBe(2);
    expect(doc.error.message).toMatch(/^no --device given/);
  });

  it('no removable drive: says to insert one', async () => {
    lsblk.current = 'system-nvme';
    const r = await cli(['flash', '--image', 'x.img']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('no --device given, and no removable drive is attached');
  });

  it('with --device still needs a node or --image', async () => {
    const r = await cli(['flash', '--device', '/dev/sdb']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('give either a node name or --image PATH');
  });
});
