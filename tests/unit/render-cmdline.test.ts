import { describe, expect, it } from 'vitest';
import { netbootCmdline, transformCmdline } from '../../src/core/render/cmdline.js';

// cmdline.txt as pi-gen writes it (design.md)
const PI_OS = 'console=serial0,115200 console=tty1 root=PARTUUID=1a2b3c4d-02 rootfstype=ext4 fsck.repair=yes rootwait resize';

function toks(line: string): string[] {
  return line.trim().split(' ');
}

describe('transformCmdline', () => {
  it('keeps every original token in order and appends cgroup and ds tokens, as one line', () => {
    const out = transformCmdline(`${PI_OS}\n`, 'node-a-1234');
    expect(out.endsWith('\n')).toBe(true);
    expect(out.slice(0, -1)).not.toMatch(/[\r\n]/);
    const t = toks(out);
    expect(t.slice(0, toks(PI_OS).length)).toEqual(toks(PI_OS));
    expect(t).toContain('cgroup_enable=memory');
    expect(t).not.toContain('cgroup_memory=1'); // obsolete on Pi kernels (issue 9)
    expect(t.at(-1)).toBe('ds=nocloud;i=node-a-1234');
  });

  it('is idempotent', () => {
    const once = transformCmdline(PI_OS, 'id-1');
    expect(transformCmdline(once, 'id-1')).toBe(once);
  });

  it('replaces an older ds= token instead of adding a second one', () => {
    const old = transformCmdline(PI_OS, 'old-id');
    const t = toks(transformCmdline(old, 'new-id'));
    expect(t.filter((x) => x.startsWith('ds='))).toEqual(['ds=nocloud;i=new-id']);
    expect(t.filter((x) => x === 'cgroup_enable=memory')).toHaveLength(1);
  });

  it('does not duplicate cgroup tokens the base already has, and copes with extra whitespace', () => {
    const t = toks(transformCmdline('  console=tty1   cgroup_enable=memory  rootwait\n\n', 'x'));
    expect(t).toEqual(['console=tty1', 'cgroup_enable=memory', 'rootwait', 'ds=nocloud;i=x']);
  });

  it('drops the obsolete cgroup_memory=1 an earlier build appended, keeping cgroup_enable=memory', () => {
    const t = toks(transformCmdline('console=tty1 rootwait cgroup_enable=memory cgroup_memory=1 ds=nocloud;i=old', 'x'));
    expect(t).toEqual(['console=tty1', 'rootwait', 'cgroup_enable=memory', 'ds=nocloud;i=x']);
    expect(toks(netbootCmdline('console=tty1 cgroup_memory=1 cgroup_enable=memory', { server: '10.0.0.2', path: '/srv/n' }, 'x'))).not.toContain('cgroup_memory=1');
  });
});

describe('netbootCmdline', () => {
  const nfs = { server: '10.0.0.2', path: '/srv/nfs/pi-cluster-4' };

  it('drops local-root tokens and adds the NFS root', () => {
    const t = toks(netbootCmdline(PI_OS, nfs, 'n4'));
    for (const gone of ['root=PARTUUID=1a2b3c4d-02', 'rootfstype=ext4', 'fsck.repair=yes', 'resize']) expect(t).not.toContain(gone);
    expect(t).toEqual(
      expect.arrayContaining(['root=/dev/nfs', 'nfsroot=10.0.0.2:/srv/nfs/pi-cluster-4,vers=3', 'rw', 'ip=dhcp', 'rootwait']),
    );
    expect(t.filter((x) => x.startsWith('root='))).toEqual(['root=/dev/nfs']);
    expect(t.slice(0, 2)).toEqual(['console=serial0,115200', 'console=tty1']);
    expect(t.at(-1)).toBe('ds=nocloud;i=n4');
  });

  it('drops init= too and is idempotent, also over a transformCmdline result', () => {
    const base = `${PI_OS} init=/usr/lib/raspberrypi-sys-mods/firstboot`;
    const once = netbootCmdline(base, nfs, 'n4');
    expect(once).not.toContain('init=');
    expect(netbootCmdline(once, nfs, 'n4')).toBe(once);
    expect(netbootCmdline(transformCmdline(base, 'n4'), nfs, 'n4')).toBe(once);
  });

  it('keeps an existing ds= token when no instance id is given', () => {
    const t = toks(netbootCmdline(transformCmdline(PI_OS, 'keep-me'), nfs));
    expect(t.filter((x) => x.startsWith('ds='))).toEqual(['ds=nocloud;i=keep-me']);
  });
});
