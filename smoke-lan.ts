import { execa } from 'execa';
import { startVm } from './src/adapters/qemu.js';
import { VirtualLan } from './tests/cluster/lan.js';
const inv = '/tmp/pi-image-inv-7UUq3H';
const lan = await VirtualLan.create({ name: 'piimg-smoke', cidr: '10.0.0.0/24', gateway: '10.0.0.1' });
try {
  await lan.addTap('tap-smoke');
  await execa('cp', ['--sparse=always', `${inv}/build/images/pi-cluster-2.img`, '/tmp/smoke/disk.img']);
  const vm = await startVm({ image: '/tmp/smoke/disk.img', writable: true, network: { kind: 'tap', ifname: 'tap-smoke', mac: 'dc:a6:32:00:00:12' }, netns: lan.name, kernel: `${inv}/qemu-kernel/vmlinuz`, initrd: `${inv}/qemu-kernel/initrd.img`, cpus: 1, memoryMiB: 1536, consoleLog: '/tmp/smoke/console.log' });
  const t0 = Date.now();
  for (;;) {
    const ssh = await lan.run('ssh', ['-i', `${inv}/admin-key`, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10', '-o', 'BatchMode=yes', 'pi-admin@10.0.0.12', 'ip -4 -br addr; ip route; cat /var/lib/pi-image/status.json; systemctl is-active ssh.service ssh.socket']);
    console.log(`${((Date.now() - t0) / 1000).toFixed(0)}s`, ssh.exitCode, ssh.stdout, ssh.stderr.trim());
    if (ssh.exitCode === 0 || Date.now() - t0 > 900_000) break;
    await new Promise((r) => setTimeout(r, 10000));
  }
  await vm.kill();
} finally { await lan.destroy(); }
