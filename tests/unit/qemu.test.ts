/** The pure parts of the QEMU adapter: the virt kernel command line and config.txt parsing. */
import { describe, expect, it } from 'vitest';
import { parseConfigTxt, virtCmdline } from '../../src/adapters/qemu.js';
import { transformCmdline } from '../../src/core/render/cmdline.js';

const PI_GEN = 'console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait resize';

describe('virtCmdline', () => {
  it('turns a baked Pi command line into one for the virt board, keeping the cgroup and ds= tokens', () => {
    const baked = transformCmdline(PI_GEN, 'pi-cluster-4-0123456789abcdef');
    expect(virtCmdline(baked)).toBe(
      'console=ttyAMA0 root=/dev/vda2 rootwait net.ifnames=0 rootfstype=ext4 fsck.repair=yes cgroup_enable=memory ds=nocloud;i=pi-cluster-4-0123456789abcdef',
    );
  });

  it('drops first-boot and splash tokens and appends extras', () => {
    const line = 'console=tty1 root=/dev/mmcblk0p2 quiet splash plymouth.ignore-serial-consoles init=/usr/lib/raspberrypi-sys-mods/firstboot net.ifnames=1';
    expect(virtCmdline(line, ['systemd.log_level=debug'])).toBe('console=ttyAMA0 root=/dev/vda2 rootwait net.ifnames=0 systemd.log_level=debug');
  });
});

describe('parseConfigTxt', () => {
  it('reads kernel= and initramfs, last one winning, comments ignored', () => {
    const text = ['# kernel=old.img', 'kernel=kernel8.img', '[pi5]', 'kernel=kernel_2712.img', 'initramfs initrd.img followkernel', 'arm_64bit=1'].join('\n');
    expect(parseConfigTxt(text)).toEqual({ kernel: 'kernel_2712.img', initramfs: 'initrd.img' });
  });

  it('returns nothing for a config.txt without them', () => {
    expect(parseConfigTxt('dtparam=audio=on\n')).toEqual({});
  });
});
