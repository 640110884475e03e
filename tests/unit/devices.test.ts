import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyDevice, describeDevice, findDevice, humanSize, parseLsblk, type DeviceVerdict } from '../../src/core/devices.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/lsblk/${name}.json`, import.meta.url), 'utf8');

const GB = 1_000_000_000;
const IMAGE = 5 * GB;

interface Case {
  fixture: string;
  target: string;
  imageSize?: number;
  sourceDevices?: string[];
  allowLoop?: boolean;
  ok: boolean;
  /** every refusal must match one of these (and each pattern must match a refusal) */
  refusals: RegExp[];
  warnings?: RegExp[];
  suggestion?: string;
}

const cases: Case[] = [
  {
    fixture: 'system-nvme',
    target: '/dev/nvme0n1',
    ok: false,
    refusals: [
      /not removable \(RM=0, HOTPLUG=0, transport nvme\)/,
      /holds the running system: \/dev\/nvme0n1p1 is mounted at \/boot\/efi; \/dev\/nvme0n1p2 is mounted at \/; \/dev\/nvme0n1p3 is active swap/,
    ],
    warnings: [/512\.1 GB — larger than 128 GiB/],
  },
  { fixture: 'usb-stick', target: '/dev/sdb', ok: true, refusals: [] },
  { fixture: 'sd-reader-card', target: '/dev/sdc', ok: true, refusals: [] },
  { fixture: 'sd-reader-empty', target: '/dev/sdc', ok: false, refusals: [/no medium \(size 0\): insert the card/] },
  {
    fixture: 'sd-card-mounted',
    target: '/dev/mmcblk0',
    ok: false,
    refusals: [/is mounted: \/dev\/mmcblk0p1 on \/media\/alice\/bootfs; \/dev\/mmcblk0p2 on \/media\/alice\/rootfs — unmount it first \(`umount \/dev\/mmcblk0p1 \/dev\/mmcblk0p2`/],
  },
  { fixture: 'sd-card-readonly', target: '/dev/sdc', ok: false, refusals: [/read-only — check the lock switch/] },
  {
    fixture: 'too-small',
    target: '/dev/sdc',
    ok: false,
    refusals: [/too small: 4\.0 GB \(3965190144 bytes\) < image 5\.0 GB \(5000000000 bytes\)/],
  },
  {
    fixture: 'raid-member',
    target: '/dev/sdb',
    ok: false,
    refusals: [/\/dev\/sdb1 is a Linux software RAID \(md\) member \(linux_raid_member\)/, /is mounted: \/dev\/md0 on \/srv\/backup/],
    warnings: [/2\.0 TB — larger than 128 GiB/],
  },
  {
    fixture: 'lvm-member',
    target: '/dev/sdb',
    ok: false,
    refusals: [/\/dev\/sdb1 is an LVM physical volume \(LVM2_member\)/],
    warnings: [/256\.1 GB — larger than 128 GiB/],
  },
  { fixture: 'loop', target: '/dev/loop0', imageSize: 32 * 1024 * 1024, ok: false, refusals: [/loop device .* only by the test override PI_IMAGE_ALLOW_LOOP=1/] },
  { fixture: 'loop', target: '/dev/loop0', allowLoop: true, imageSize: 32 * 1024 * 1024, ok: true, refusals: [], warnings: [/accepted because of the test override/] },
  {
    fixture: 'root-disk',
    target: '/dev/vda',
    ok: false,
    refusals: [/not removable/, /holds the running system: \/dev\/vda is mounted at \/$/],
    warnings: [/274\.9 GB/],
  },
  {
    fixture: 'partition-path',
    target: '/dev/sdb1',
    ok: false,
    refusals: [/\/dev\/sdb1 is a partition of \/dev\/sdb; .* use --device \/dev\/sdb/],
    suggestion: '/dev/sdb',
  },
  { fixture: 'big-usb-disk', target: '/dev/sdb', ok: true, refusals: [], warnings: [/500\.1 GB — larger than 128 GiB; make sure/] },
  { fixture: 'mmcblk-internal', target: '/dev/mmcblk0', ok: false, refusals: [/internal eMMC storage \(it has mmcblk0boot0\/boot1/] },
  { fixture: 'mmcblk-sd-slot', target: '/dev/mmcblk1', ok: true, refusals: [] },
  {
    fixture: 'source-image',
    target: '/dev/sdb',
    sourceDevices: ['sdb1'],
    ok: false,
    refusals: [/holds the source image \(it is on \/dev\/sdb1\)/, /is mounted: \/dev\/sdb1 on \/media\/alice\/IMAGES/],
  },
  { fixture: 'zram', target: '/dev/zram0', ok: false, refusals: [/zram device/, /holds the running system: \/dev\/zram0 is active swap/] },
  { fixture: 'old-lsblk-2.34', target: '/dev/sdb', ok: true, refusals: [] },
  { fixture: 'old-lsblk-2.34', target: '/dev/sda', ok: false, refusals: [/not removable \(RM=0, HOTPLUG=0, transport sata\)/, /holds the running system/], warnings: [/256\.1 GB/] },
  { fixture: 'usb-stick', target: '/dev/sdz', ok: false, refusals: [/\/dev\/sdz is not a block device lsblk knows about/] },
];

function check(v: DeviceVerdict, c: Case): void {
  expect(v.ok, `${c.fixture} ${c.target}: ${JSON.stringify(v)}`).toBe(c.ok);
  expect(v.refusals).toHaveLength(c.refusals.length);
  for (const re of c.refusals) expect(v.refusals.some((r) => re.test(r)), `refusal ${re} in ${JSON.stringify(v.refusals)}`).toBe(true);
  const warnings = c.warnings ?? [];
  expect(v.warnings).toHaveLength(warnings.length);
  for (const re of warnings) expect(v.warnings.some((w) => re.test(w)), `warning ${re} in ${JSON.stringify(v.warnings)}`).toBe(true);
  expect(v.suggestion).toBe(c.suggestion);
}

describe('classifyDevice', () => {
  it.each(cases.map((c) => [`${c.fixture} → ${c.target}${c.allowLoop ? ' (allow loop)' : ''}`, c] as const))('%s', (_name, c) => {
    const devices = parseLsblk(fixture(c.fixture));
    const v = classifyDevice({
      devices,
      target: c.target,
      imageSize: c.imageSize ?? IMAGE,
      ...(c.sourceDevices === undefined ? {} : { sourceDevices: c.sourceDevices }),
      ...(c.allowLoop === undefined ? {} : { allowLoop: c.allowLoop }),
    });
    check(v, c);
  });

  it('covers at least 12 fixtures', () => {
    expect(new Set(cases.map((c) => c.fixture)).size).toBeGreaterThanOrEqual(12);
  });

  it('is deterministic', () => {
    const devices = parseLsblk(fixture('raid-member'));
    const a = classifyDevice({ devices, target: '/dev/sdb', imageSize: IMAGE });
    const b = classifyDevice({ devices, target: 'sdb', imageSize: IMAGE });
    expect(b).toEqual(a);
  });
});

describe('parseLsblk', () => {
  it('normalises the pre-2.37 string dialect', () => {
    const [sda, sdb] = parseLsblk(fixture('old-lsblk-2.34'));
    expect(sdb?.size).toBe(15931539456);
    expect(sdb?.rm).toBe(true);
    expect(sda?.rm).toBe(false);
    expect(sda?.children.map((c) => c.mountpoints)).toEqual([['/boot/efi'], ['/']]);
    expect(sdb?.vendor).toBe('SanDisk');
  });

  it('drops null mount points and keeps children', () => {
    const devs = parseLsblk(fixture('sd-card-mounted'));
    const mm = findDevice(devs, '/dev/mmcblk0');
    expect(mm?.dev.mountpoints).toEqual([]);
    expect(mm?.dev.children.map((c) => c.mountpoints[0])).toEqual(['/media/alice/bootfs', '/media/alice/rootfs']);
  });

  it('rejects non-lsblk input', () => {
    expect(() => parseLsblk('not json')).toThrow(/not JSON/);
    expect(() => parseLsblk('{"devices": []}')).toThrow(/no "blockdevices"/);
  });
});

describe('describeDevice / humanSize', () => {
  it('describes a USB card reader', () => {
    const d = findDevice(parseLsblk(fixture('sd-reader-card')), 'sdc');
    expect(d && describeDevice(d.dev)).toBe('/dev/sdc: Generic STORAGE DEVICE, 31.9 GB, usb, removable');
  });
  it('hides PCI vendor ids', () => {
    const d = findDevice(parseLsblk(fixture('root-disk')), 'vda');
    expect(d && describeDevice(d.dev)).toBe('/dev/vda: unknown model, 274.9 GB, disk');
  });
  it('formats decimal sizes', () => {
    expect(humanSize(999)).toBe('999 B');
    expect(humanSize(31914983424)).toBe('31.9 GB');
    expect(humanSize(2000398934016)).toBe('2.0 TB');
  });
});
