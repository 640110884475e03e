import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/core/errors.js';
import { netbootCmdline, netbootFstab, planNetboot } from '../../src/core/netboot.js';
import { DATA_DISK, netbootInventory, netbootNode } from '../helpers/netboot-inventory.js';

const ROOT = '/srv/netboot';
const SERVER = '10.0.0.2';

function inventory() {
  return netbootInventory([
    netbootNode('pi-cluster-1', '10.0.0.11', { role: 'server', clusterInit: true }),
    netbootNode('pi-cluster-2', '10.0.0.12', { serial: '4e1c0012' }),
    netbootNode('pi-cluster-3', '10.0.0.13', { boot: 'netboot', serial: '4E1C0013', mac: 'dc:a6:32:00:00:13', dataDisk: DATA_DISK }),
    netbootNode('pi-cluster-4', '10.0.0.14', { board: 'pi5', serial: '4e1c0014', dataDisk: { ...DATA_DISK, device: '/dev/nvme0n1p1' }, address: { mode: 'dhcp' } }),
  ]);
}

describe('planNetboot', () => {
  it('exporting one node keeps every netboot node in the shared files (exports, dnsmasq, EEPROM guide)', () => {
    const all = planNetboot(inventory(), { root: ROOT, server: SERVER });
    const one = planNetboot(inventory(), { root: ROOT, server: SERVER, only: ['pi-cluster-3'] });
    expect(one.nodes.map((n) => n.node)).toEqual(['pi-cluster-3']);
    expect(one.files).toEqual(all.files);
    expect(one.files.exports).toContain('/srv/netboot/nfs/pi-cluster-4');
  });

  it('exports nodes with a serial and a data disk, skips the others with a reason', () => {
    const plan = planNetboot(inventory(), { root: `${ROOT}/`, server: SERVER });
    expect(plan.root).toBe(ROOT);
    expect(plan.nodes.map((n) => [n.node, n.serial, n.client, n.tftpDir, n.nfsDir, n.nfsroot])).toEqual([
      ['pi-cluster-3', '4e1c0013', '10.0.0.13', '/srv/netboot/tftp/4e1c0013', '/srv/netboot/nfs/pi-cluster-3', '10.0.0.2:/srv/netboot/nfs/pi-cluster-3'],
      ['pi-cluster-4', '4e1c0014', '10.0.0.0/24', '/srv/netboot/tftp/4e1c0014', '/srv/netboot/nfs/pi-cluster-4', '10.0.0.2:/srv/netboot/nfs/pi-cluster-4'],
    ]);
    expect(plan.skipped).toEqual([
      { node: 'pi-cluster-1', reason: 'no Pi serial in nodes/pi-cluster-1.yaml (boot: sd); add `serial:` to netboot it' },
      { node: 'pi-cluster-2', reason: 'boot: sd and no dataDisk in nodes/pi-cluster-2.yaml; a netboot node needs a local disk for /var/lib/rancher' },
    ]);
  });

  it('renders the dnsmasq proxy-DHCP/TFTP snippet, exports lines and EEPROM guide', () => {
    const plan = planNetboot(inventory(), { root: ROOT, server: SERVER });
    const conf = plan.files.dnsmasq.split('\n');
    expect(conf).toContain('dhcp-range=10.0.0.0,proxy,255.255.255.0');
    expect(conf).toContain('pxe-service=0,"Raspberry Pi Boot"');
    expect(conf).toContain('enable-tftp');
    expect(conf).toContain('tftp-root=/srv/netboot/tftp');
    expect(conf.filter((l) => l.startsWith('port='))).toEqual([]);
    expect(plan.files.exports.split('\n').filter((l) => !l.startsWith('#') && l !== '')).toEqual([
      '/srv/netboot/nfs/pi-cluster-3 10.0.0.13(rw,sync,no_subtree_check,no_root_squash)',
      '/srv/netboot/nfs/pi-cluster-4 10.0.0.0/24(rw,sync,no_subtree_check,no_root_squash)',
    ]);
    expect(plan.files.eeprom).toMatch(/BOOT_ORDER=0xf21/);
    expect(plan.files.eeprom).toMatch(/BOOT_ORDER=0xf241/);
    expect(plan.files.eeprom).toMatch(/TFTP_PREFIX=0/);
    expect(plan.files.eeprom).toMatch(/rpi-eeprom-config --edit/);
    expect(plan.files.eeprom).toMatch(/\| pi-cluster-3 \| 4e1c0013 \| \/srv\/netboot\/tftp\/4e1c0013\/ \| 10\.0\.0\.2:\/srv\/netboot\/nfs\/pi-cluster-3 \|/);
  });

  it('limits the plan to one node', () => {
    const plan = planNetboot(inventory(), { root: ROOT, server: SERVER, only: ['pi-cluster-4'] });
    expect(plan.nodes.map((n) => n.node)).toEqual(['pi-cluster-4']);
    expect(plan.skipped).toEqual([]);
  });

  it('names the node file and field when a netboot node lacks serial or dataDisk', () => {
    const inv = netbootInventory([
      netbootNode('pi-cluster-3', '10.0.0.13', { boot: 'netboot', mac: 'dc:a6:32:00:00:13' }),
      netbootNode('pi-cluster-5', '10.0.0.15', { boot: 'netboot', serial: '4e1c0015' }),
    ]);
    let err: unknown;
    try {
      planNetboot(inv, { root: ROOT, server: SERVER });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    const e = err as InputError;
    expect(e.message).toBe('2 netboot nodes are incomplete');
    expect(e.details).toEqual([
      'nodes/pi-cluster-3.yaml: serial: required for boot: netboot (8 hex digits from `cat /proc/cpuinfo`; it names the TFTP folder)',
      'nodes/pi-cluster-3.yaml: dataDisk: required for boot: netboot (a local disk for /var/lib/rancher; containerd cannot run on NFS)',
      'nodes/pi-cluster-5.yaml: dataDisk: required for boot: netboot (a local disk for /var/lib/rancher; containerd cannot run on NFS)',
    ]);
  });

  it('rejects unknown nodes, a relative or odd root and a non-IPv4 server', () => {
    expect(() => planNetboot(inventory(), { root: ROOT, server: SERVER, only: ['pi-cluster-9'] })).toThrow(/pi-cluster-9 is not in the inventory/);
    expect(() => planNetboot(inventory(), { root: 'srv/netboot', server: SERVER })).toThrow(/must be an absolute path/);
    expect(() => planNetboot(inventory(), { root: '/srv/net boot', server: SERVER })).toThrow(/whitespace/);
    expect(() => planNetboot(inventory(), { root: ROOT, server: 'boot.local' })).toThrow(/not an IPv4 address/);
  });

  it('notes a server outside the cluster network', () => {
    const plan = planNetboot(inventory(), { root: ROOT, server: '192.168.1.5' });
    expect(plan.skipped.at(-1)?.reason).toMatch(/192\.168\.1\.5 is outside the cluster network 10\.0\.0\.0\/24/);
  });

  it('is deterministic', () => {
    expect(planNetboot(inventory(), { root: ROOT, server: SERVER })).toEqual(planNetboot(inventory(), { root: ROOT, server: SERVER }));
  });
});

describe('netbootCmdline', () => {
  const node = { nfsroot: '10.0.0.2:/srv/netboot/nfs/pi-cluster-3' };
  it('turns the Pi OS SD command line into an NFS-root one, keeping console, cgroup and ds tokens', () => {
    const pios =
      'console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait resize init=/usr/lib/raspberrypi-sys-mods/firstboot cgroup_memory=1 cgroup_enable=memory ds=nocloud;i=pi-cluster-3-1a2b3c\n';
    expect(netbootCmdline(pios, node)).toBe(
      'console=serial0,115200 console=tty1 cgroup_memory=1 cgroup_enable=memory ds=nocloud;i=pi-cluster-3-1a2b3c root=/dev/nfs nfsroot=10.0.0.2:/srv/netboot/nfs/pi-cluster-3,vers=3 rw ip=dhcp rootwait\n',
    );
  });
  it('is idempotent on an already converted line and stays one line', () => {
    const once = netbootCmdline('console=tty1 root=PARTUUID=x-02 rootwait quiet\n', node);
    expect(netbootCmdline(once, node)).toBe(once);
    expect(once.trimEnd().includes('\n')).toBe(false);
    expect(once).toMatch(/ quiet /);
  });
});

describe('netbootFstab', () => {
  it('drops the SD card root and boot lines, keeps the rest, mounts the data disk', () => {
    const fstab = [
      'proc            /proc           proc    defaults          0       0',
      'PARTUUID=6c586e13-01  /boot/firmware  vfat    defaults          0       2',
      'PARTUUID=6c586e13-02  /               ext4    defaults,noatime  0       1',
      '# a comment',
      'tmpfs /tmp tmpfs defaults 0 0',
      '',
    ].join('\n');
    const out = netbootFstab(fstab, { node: 'pi-cluster-3', dataDisk: DATA_DISK });
    expect(out).not.toMatch(/PARTUUID/);
    const lines = out.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(lines).toEqual([
      'proc            /proc           proc    defaults          0       0',
      'tmpfs /tmp tmpfs defaults 0 0',
      '/dev/disk/by-label/rancher /var/lib/rancher ext4 defaults,noatime,x-systemd.device-timeout=10min 0 2',
    ]);
    // rewriting twice does not duplicate the data disk line
    expect(netbootFstab(out, { node: 'pi-cluster-3', dataDisk: DATA_DISK }).split('\n').filter((l) => l.includes('/var/lib/rancher ext4'))).toHaveLength(1);
  });
});
