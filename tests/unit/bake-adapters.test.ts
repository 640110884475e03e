import { describe, expect, it } from 'vitest';
import { parseExt4Superblock, parseFatBootSector, parseMbr, partuuid } from '../../src/adapters/partitions.js';
import { buildDebugfsScript, ext4Path, parents, parseStats } from '../../src/adapters/ext4.js';
import { fatPath } from '../../src/adapters/fat.js';
import { installHint, run, trimStderr } from '../../src/adapters/process.js';
import { cacheDir } from '../../src/adapters/image-cache.js';
import { EnvironmentError, InputError, IoError } from '../../src/core/errors.js';

function mbr(entries: { type: number; start: number; sectors: number }[], diskId = 0x6c586e13): Buffer {
  const b = Buffer.alloc(512);
  b.writeUInt32LE(diskId, 440);
  entries.forEach((e, i) => {
    const o = 446 + i * 16;
    b[o + 4] = e.type;
    b.writeUInt32LE(e.start, o + 8);
    b.writeUInt32LE(e.sectors, o + 12);
  });
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

describe('MBR / FAT / ext4 parsers', () => {
  it('parses an MBR with the disk id', () => {
    const t = parseMbr(mbr([{ type: 0x0c, start: 16384, sectors: 1048576 }, { type: 0x83, start: 1064960, sectors: 4000000 }]));
    expect(t?.diskId).toBe('6c586e13');
    expect(t?.protectiveGpt).toBe(false);
    expect(t?.partitions).toEqual([
      { number: 1, type: 0x0c, bootable: false, startBytes: 8 * 1024 * 1024, sizeBytes: 512 * 1024 * 1024 },
      { number: 2, type: 0x83, bootable: false, startBytes: 1064960 * 512, sizeBytes: 4000000 * 512 },
    ]);
    expect(partuuid('0000abcd', 2)).toBe('0000abcd-02');
  });

  it('detects a protective MBR and a missing signature', () => {
    expect(parseMbr(mbr([{ type: 0xee, start: 1, sectors: 100 }]))?.protectiveGpt).toBe(true);
    expect(parseMbr(Buffer.alloc(512))).toBeUndefined();
  });

  it('parses a FAT32 boot sector label', () => {
    const b = Buffer.alloc(512);
    b.writeUInt16LE(512, 11);
    b[13] = 8;
    b.writeUInt16LE(32, 14);
    b[16] = 2;
    b.writeUInt32LE(1048576, 32);
    b.writeUInt32LE(1024, 36);
    b[66] = 0x29;
    b.write('bootfs     ', 71, 'latin1');
    b[510] = 0x55;
    b[511] = 0xaa;
    expect(parseFatBootSector(b)).toEqual({ fatType: 'FAT32', label: 'bootfs', bytesPerSector: 512, totalSectors: 1048576 });
    expect(parseFatBootSector(Buffer.alloc(512))).toBeUndefined();
  });

  it('parses an ext4 superblock', () => {
    const sb = Buffer.alloc(1024);
    sb.writeUInt32LE(16384, 4);
    sb.writeUInt32LE(2, 24);
    sb.writeUInt16LE(0xef53, 56);
    sb.writeUInt32LE(0x40 | 0x2, 96);
    Buffer.from('00112233445566778899aabbccddeeff', 'hex').copy(sb, 104);
    sb.write('rootfs', 120);
    expect(parseExt4Superblock(sb)).toEqual({
      label: 'rootfs',
      uuid: '00112233-4455-6677-8899-aabbccddeeff',
      blockSize: 4096,
      blocksCount: 16384,
      extents: true,
    });
    expect(parseExt4Superblock(Buffer.alloc(1024))).toBeUndefined();
  });
});

describe('debugfs script', () => {
  it('creates parents once, replaces files, sets mode/owner and stats at the end', () => {
    const { script, expect: checks } = buildDebugfsScript(
      [
        { kind: 'file', path: '/etc/rancher/k3s/token', contents: 'abc', mode: 0o600 },
        { kind: 'file', path: '/etc/rancher/k3s/config.yaml', contents: 'x', mode: 0o644, uid: 1, gid: 2 },
        { kind: 'symlink', path: '/etc/l', target: '/etc/rancher' },
        { kind: 'dir', path: '/home/a/.ssh', mode: 0o700, uid: 1000, gid: 1000 },
      ],
      ['/s/0', '/s/1', undefined, undefined],
    );
    expect(script.split('\n')).toEqual([
      'mkdir "/etc"', 'mkdir "/etc/rancher"', 'mkdir "/etc/rancher/k3s"',
      'rm "/etc/rancher/k3s/token"', 'write "/s/0" "/etc/rancher/k3s/token"', 'sif "/etc/rancher/k3s/token" mode 0100600',
      'sif "/etc/rancher/k3s/token" uid 0', 'sif "/etc/rancher/k3s/token" gid 0',
      'rm "/etc/rancher/k3s/config.yaml"', 'write "/s/1" "/etc/rancher/k3s/config.yaml"', 'sif "/etc/rancher/k3s/config.yaml" mode 0100644',
      'sif "/etc/rancher/k3s/config.yaml" uid 1', 'sif "/etc/rancher/k3s/config.yaml" gid 2',
      'rm "/etc/l"', 'symlink "/etc/l" "/etc/rancher"', 'sif "/etc/l" uid 0', 'sif "/etc/l" gid 0',
      'mkdir "/home"', 'mkdir "/home/a"', 'mkdir "/home/a/.ssh"', 'sif "/home/a/.ssh" mode 040700',
      'sif "/home/a/.ssh" uid 1000', 'sif "/home/a/.ssh" gid 1000',
      'stat "/etc/rancher/k3s/token"', 'stat "/etc/rancher/k3s/config.yaml"', 'stat "/etc/l"', 'stat "/home/a/.ssh"',
      '',
    ]);
    expect(checks.map((c) => c.size)).toEqual([3, 1, 12, undefined]);
  });

  it('rejects paths debugfs cannot address', () => {
    expect(() => ext4Path('etc/x')).toThrow(InputError);
    expect(() => ext4Path('/etc/"x')).toThrow(InputError);
    expect(() => ext4Path('/etc/../x')).not.toThrow(); // normalised to /x
    expect(ext4Path('/etc//x/')).toBe('/etc/x');
    expect(parents('/a/b/c')).toEqual(['/a', '/a/b']);
    expect(fatPath('/overlays//x.dtbo')).toBe('/overlays/x.dtbo');
    expect(() => fatPath('/a:b')).toThrow(InputError);
  });

  it('parses stat output', () => {
    const out = `Inode: 14   Type: regular    Mode:  0600   Flags: 0x80000
Generation: 0    Version: 0x00000000:00000000
User:  1000   Group:     0   Project:     0   Size: 5
File ACL: 0
Inode: 15   Type: symlink    Mode:  0777   Flags: 0x0
User:     0   Group:     0   Project:     0   Size: 8
Fast link dest: "/etc/a/x"
`;
    expect(parseStats(out)).toEqual([
      { inode: 14, type: 'regular', mode: 0o600, uid: 1000, gid: 0, size: 5 },
      { inode: 15, type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 8, linkTarget: '/etc/a/x' },
    ]);
  });
});

describe('process wrapper', () => {
  it('turns a missing program into EnvironmentError with an install hint', async () => {
    const err = await run('mcopy-definitely-missing', []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EnvironmentError);
    expect(installHint('mcopy')).toBe('apt-get install mtools');
    expect(installHint('debugfs')).toBe('apt-get install e2fsprogs');
  });

  it('turns a non-zero exit into IoError with trimmed, redacted stderr and no arguments', async () => {
    const err = await run('sh', ['-c', 'echo "token=hunter2 bad" >&2; exit 3', 'secret-arg'], { redact: ['hunter2'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as Error).message).toBe('`sh` failed with exit code 3: token=*** bad');
    expect((err as Error).message).not.toContain('secret-arg');
    expect((await run('sh', ['-c', 'exit 1'], { okExitCodes: [0, 1] })).exitCode).toBe(1);
    expect(trimStderr('\n\na\n\nb\n')).toBe('a\nb');
  });
});

describe('cacheDir', () => {
  it('prefers PI_IMAGE_CACHE, then XDG_CACHE_HOME, then ~/.cache', () => {
    expect(cacheDir({ PI_IMAGE_CACHE: '/c', XDG_CACHE_HOME: '/x' }, '/h')).toBe('/c');
    expect(cacheDir({ XDG_CACHE_HOME: '/x' }, '/h')).toBe('/x/pi-image');
    expect(cacheDir({}, '/h')).toBe('/h/.cache/pi-image');
  });
});
