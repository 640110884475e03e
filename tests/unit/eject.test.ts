/**
 * `flash --eject`: the decision (src/core/eject.ts), the power-off with its fallback
 * (src/adapters/blockdev.ts powerOffDrive, with a fake runner and sysfs) and the use case calling
 * it after the write (src/app/flash.ts, fake ports). No root, no devices: nothing is powered off.
 */
import { describe, expect, it } from 'vitest';
import { type FlashPorts, runFlash } from '../../src/app/flash.js';
import { powerOffDrive, type PowerOffDeps } from '../../src/adapters/blockdev.js';
import type { FlashResult } from '../../src/adapters/flash.js';
import type { DeviceVerdict } from '../../src/core/devices.js';
import { ejectDecision } from '../../src/core/eject.js';
import { EnvironmentError, IoError } from '../../src/core/errors.js';

describe('ejectDecision', () => {
  it('ejects a card after a verified write, and after one whose verification was skipped', () => {
    expect(ejectDecision({ device: '/dev/sdb', deviceType: 'disk', verify: 'ok' })).toEqual({ eject: true });
    expect(ejectDecision({ device: '/dev/mmcblk0', deviceType: 'disk', verify: 'skipped' })).toEqual({ eject: true });
  });

  it('keeps a card whose read-back failed attached, saying why', () => {
    const d = ejectDecision({ device: '/dev/sdb', deviceType: 'disk', verify: 'failed' });
    expect(d.eject).toBe(false);
    expect(!d.eject && d.note).toMatch(/not ejecting \/dev\/sdb: its read-back check failed/);
  });

  it('does nothing for a loop device (by its lsblk type, or its name), with a note', () => {
    for (const d of [ejectDecision({ device: '/dev/loop3', deviceType: 'loop', verify: 'ok' }), ejectDecision({ device: '/dev/loop3', verify: 'ok' })]) {
      expect(d.eject).toBe(false);
      expect(!d.eject && d.note).toMatch(/loop device .* no drive to power off; --eject does nothing here/);
    }
  });
});

describe('powerOffDrive', () => {
  function deps(o: { udisks: 'ok' | 'missing' | 'fails'; sysfs: 'ok' | 'missing' }) {
    const calls: string[] = [];
    const d: PowerOffDeps = {
      run: async (cmd, args) => {
        calls.push(`${cmd} ${args.join(' ')}`);
        if (o.udisks === 'missing') throw new EnvironmentError('`udisksctl` is not installed');
        if (o.udisks === 'fails') throw new IoError('`udisksctl` failed with exit code 1:\nError powering off drive: not a USB device');
      },
      writeFile: async (path, data) => {
        calls.push(`write ${path} ${JSON.stringify(data)}`);
        if (o.sysfs === 'missing') throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
      },
    };
    return { d, calls };
  }

  it('uses udisksctl power-off when it works', async () => {
    const f = deps({ udisks: 'ok', sysfs: 'ok' });
    expect(await powerOffDrive('/dev/sdb', f.d)).toEqual({ method: 'udisksctl power-off' });
    expect(f.calls).toEqual(['udisksctl power-off --no-user-interaction -b /dev/sdb']);
  });

  it('falls back to the kernel removing the SCSI disk (sysfs delete) without udisks, or when udisks refuses', async () => {
    for (const udisks of ['missing', 'fails'] as const) {
      const f = deps({ udisks, sysfs: 'ok' });
      expect(await powerOffDrive('/dev/sdc', f.d)).toEqual({ method: 'sysfs delete' });
      expect(f.calls.at(-1)).toBe('write /sys/block/sdc/device/delete "1\\n"');
    }
  });

  it('says why it cannot eject a built-in SD slot without udisks, and that the card can be removed', async () => {
    const f = deps({ udisks: 'missing', sysfs: 'missing' });
    const err = (await powerOffDrive('/dev/mmcblk0', f.d).then(
      () => undefined,
      (e: unknown) => e,
    )) as IoError;
    expect(err).toBeInstanceOf(IoError);
    expect(err.message).toMatch(/cannot eject \/dev\/mmcblk0: udisksctl is not installed, and \/sys\/block\/mmcblk0\/device\/delete does not exist/);
    expect(err.hint).toMatch(/written and synced: it can be removed/);
  });
});

describe('flash --eject in the use case', () => {
  function fakes(o: { type: string; verify: FlashResult['verify']['result']; eject?: 'ok' | 'fails' }) {
    const events: string[] = [];
    const log: string[] = [];
    const ports: FlashPorts = {
      blockDevices: {
        resolve: async (d) => d,
        inspect: async (x) => ({ ok: true, device: x.device, description: `${x.device} 32 GB`, size: 32e9, warnings: [], refusals: [], type: o.type }) satisfies DeviceVerdict,
        rereadPartitionTable: async () => {
          events.push('reread');
          return true;
        },
        list: async () => [],
        holding: async () => [],
        eject: async (device) => {
          events.push(`eject ${device}`);
          if (o.eject === 'fails') throw new IoError(`cannot eject ${device}: udisksctl is not installed, and /sys/block/mmcblk0/device/delete does not exist`, { hint: 'the card is written and synced: it can be removed now' });
          return { method: 'udisksctl power-off' };
        },
      },
      images: { size: async () => 40, uncompressedSize: async () => 40, readRecord: async () => undefined },
      write: async (w) => {
        events.push('write');
        return { device: w.device, image: w.image, bytes: 40, imageSha256: 'c'.repeat(64), writeMs: 1, verifyMs: 1, writeBytesPerSecond: 1, verify: { result: o.verify, files: [] } };
      },
    };
    return { ports, events, log };
  }
  const run = (f: ReturnType<typeof fakes>, device: string, eject = true) =>
    runFlash({ image: '/x/n.img', buildDir: '/x', device, verify: true, allowLoop: true, yes: true, prompt: undefined, log: (l) => f.log.push(l), eject }, f.ports);

  it('powers the card off after the verified write (after the partition table is re-read)', async () => {
    const f = fakes({ type: 'disk', verify: 'ok' });
    const o = await run(f, '/dev/sdb');
    expect(f.events).toEqual(['write', 'reread', 'eject /dev/sdb']);
    expect(o.eject).toEqual({ ejected: true, method: 'udisksctl power-off' });
    expect(f.log).toContain('ejected /dev/sdb (udisksctl power-off): the card can be removed');
  });

  it('without --eject nothing is powered off', async () => {
    const f = fakes({ type: 'disk', verify: 'ok' });
    const o = await run(f, '/dev/sdb', false);
    expect(f.events).toEqual(['write', 'reread']);
    expect(o.eject).toBeUndefined();
  });

  it('not after a failed read-back, and not a loop device: a note each, no power-off', async () => {
    const bad = fakes({ type: 'disk', verify: 'failed' });
    expect((await run(bad, '/dev/sdb')).eject).toMatchObject({ ejected: false, note: expect.stringMatching(/read-back check failed/) });
    const loop = fakes({ type: 'loop', verify: 'ok' });
    expect((await run(loop, '/dev/loop0')).eject).toMatchObject({ ejected: false, note: expect.stringMatching(/loop device/) });
    for (const f of [bad, loop]) expect(f.events).not.toContain(expect.stringMatching(/^eject/));
    expect(loop.log.some((l) => l.startsWith('note: not ejecting /dev/loop0'))).toBe(true);
  });

  it('a drive that cannot be powered off is a warning with the hint, not a failed flash', async () => {
    const f = fakes({ type: 'disk', verify: 'ok', eject: 'fails' });
    const o = await run(f, '/dev/mmcblk0');
    expect(o.eject).toMatchObject({ ejected: false, note: expect.stringMatching(/cannot eject \/dev\/mmcblk0/) });
    expect(f.log).toContain('hint: the card is written and synced: it can be removed now');
  });
});
