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
    const r = await lan.run('ping', ['-c1', '-W2', '10.0.0.12']);
    if (r.exitCode === 0) { console.log(`ping ok after ${(Date.now() - t0) / 1000}s`); break; }
    if (Date.now() - t0 > 900_000) { console.log('no ping'); break; }
    await new Promise((r) => setTimeout(r, 5000));
  }
  const ssh = await lan.run('ssh', ['-i', `${inv}/admin-key`, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10', 'pi-admin@10.0.0.12', 'ip -4 addr show eth0; ip route']);
  console.log(ssh.exitCode, ssh.stdout, ssh.stderr);
  console.log('interfaces', await lan.interfaces(), await lan.routes());
  await vm.kill();
} finally { await lan.destroy(); }
