/** The pure parts of the QEMU adapter: the virt kernel command line and config.txt parsing. */
import { describe, expect, it } from 'vitest';
import { parseConfigTxt, qemuArgs, virtCmdline } from '../../src/core/qemu-args.js';
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

describe('qemuArgs', () => {
  const spec = { kernel: '/k', initrd: '/i', cmdline: 'console=ttyAMA0', image: '/imgs/a,b.img', consoleLog: '/t/console.log', qmpSocket: '/t/qmp.sock' };

  it('user networking: the LAN shape and every forward on 127.0.0.1; the image opened with snapshot=on', () => {
    const args = qemuArgs({ ...spec, network: { cidr: '192.168.50.0/24', host: '192.168.50.1', guest: '192.168.50.12' }, forwards: new Map([[22, 40022], [6443, 46443]]) });
    expect(args[args.indexOf('-netdev') + 1]).toBe(
      'user,id=n0,net=192.168.50.0/24,host=192.168.50.1,dhcpstart=192.168.50.12,hostfwd=tcp:127.0.0.1:40022-192.168.50.12:22,hostfwd=tcp:127.0.0.1:46443-192.168.50.12:6443',
    );
    expect(args[args.indexOf('-drive') + 1]).toBe('if=virtio,format=raw,file=/imgs/a,,b.img,snapshot=on');
    expect(args.slice(args.indexOf('-initrd'), args.indexOf('-initrd') + 2)).toEqual(['-initrd', '/i']);
  });

  it('a tap NIC on the caller LAN: its own MAC, no helper scripts, no forwards allowed', () => {
    const tap = { kind: 'tap' as const, ifname: 'tap-pi2', mac: '52:54:00:00:00:12' };
    const args = qemuArgs({ ...spec, writable: true, network: tap });
    expect(args[args.indexOf('-netdev') + 1]).toBe('tap,id=n0,ifname=tap-pi2,script=no,downscript=no');
    expect(args[args.indexOf('-netdev') + 3]).toBe('virtio-net-pci,netdev=n0,mac=52:54:00:00:00:12,romfile=');
    expect(args[args.indexOf('-drive') + 1]).toBe('if=virtio,format=raw,file=/imgs/a,,b.img');
    expect(() => qemuArgs({ ...spec, network: tap, forwards: new Map([[22, 1]]) })).toThrow(/user networking/);
  });
});
