/** `pi-image render` end to end (in-process CLI, real inventory loader and files; secrets stubbed). */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FAKE_SECRETS } from '../helpers/render-fixture.js';
import { cli } from '../helpers/run-cli.js';
import { sampleFiles, writeInventory } from '../helpers/sample-inventory.js';

const loadSecrets = vi.hoisted(() => vi.fn());
vi.mock('../../src/app/secrets.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/app/secrets.js')>()),
  loadSecrets,
}));

const SECRET_VALUES = [FAKE_SECRETS.clusterToken, FAKE_SECRETS.agentToken, FAKE_SECRETS.nodePasswordSeed];
const env = { ...process.env, SOURCE_DATE_EPOCH: '1764000000' }; // 2025-11-24

let inv: ReturnType<typeof writeInventory>;
beforeEach(() => {
  inv = writeInventory(sampleFiles());
  loadSecrets.mockReset();
  loadSecrets.mockResolvedValue({ secrets: FAKE_SECRETS, version: 1, digest: 'x', warnings: [] });
});
afterEach(() => inv.cleanup());

const mode = (p: string) => statSync(p).mode & 0o777;

describe('pi-image render', () => {
  it('--all writes boot/ and rootfs/ per node with safe modes, and prints no secret', async () => {
    const r = await cli(['render', '--all', '--out', 'out'], { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(0);
    expect(loadSecrets).toHaveBeenCalledWith(inv.dir, 'pi-cluster', expect.objectContaining({ wifiRequired: false }));
    const nodes = ['pi-cluster-1', 'pi-cluster-2', 'pi-cluster-3', 'pi-cluster-4'];
    for (const n of nodes) {
      const dir = join(inv.root, 'out', n);
      expect(mode(dir)).toBe(0o700);
      expect(readFileSync(join(dir, 'boot/user-data'), 'utf8').startsWith('#cloud-config\n')).toBe(true);
      expect(mode(join(dir, 'boot/user-data'))).toBe(0o600);
      expect(mode(join(dir, 'boot/meta-data'))).toBe(0o644);
      expect(mode(join(dir, 'rootfs/etc/rancher/k3s/pi-image-token'))).toBe(0o600);
      expect(mode(join(dir, 'rootfs/etc/rancher/node/password'))).toBe(0o600);
      expect(mode(join(dir, 'rootfs/usr/local/sbin/pi-image-join'))).toBe(0o755);
      const manifest = JSON.parse(readFileSync(join(dir, 'render.json'), 'utf8')) as { instanceId: string; files: { file: string }[] };
      expect(readFileSync(join(dir, 'boot/meta-data'), 'utf8')).toContain(`instance-id: ${manifest.instanceId}`);
      for (const f of manifest.files) expect(existsSync(join(dir, f.file)), f.file).toBe(true);
      expect(r.stdout).toContain(manifest.instanceId);
    }
    expect(existsSync(join(inv.root, 'out/pi-cluster-1/rootfs/etc/rancher/k3s/pi-image-agent-token'))).toBe(true);
    expect(existsSync(join(inv.root, 'out/pi-cluster-2/rootfs/etc/rancher/k3s/pi-image-agent-token'))).toBe(false);
    for (const v of SECRET_VALUES) expect(`${r.stdout}${r.stderr}`).not.toContain(v);
    expect(r.stdout).toMatch(/boot\/user-data\s+0600\s+[0-9a-f]{12}\s+\(secret\)/);
    expect(r.stdout).toContain('rendered 4 nodes');
  });

  it('-o json: one node, file list with digests and secret flags; re-rendering is byte-identical', async () => {
    const a = await cli(['render', 'pi-cluster-2', '-o', 'json'], { cwd: inv.root, env });
    expect(a.code, a.stderr).toBe(0);
    const report = JSON.parse(a.stdout) as { out: string; nodes: { node: string; dir: string; files: { file: string; secret: boolean; digest: string }[] }[] };
    expect(report.out).toBe('build');
    expect(report.nodes.map((n) => n.node)).toEqual(['pi-cluster-2']);
    expect(report.nodes[0]!.dir).toBe(join('build', 'pi-cluster-2'));
    const files = report.nodes[0]!.files;
    expect(files.find((f) => f.file === 'boot/user-data')?.secret).toBe(true);
    expect(files.find((f) => f.file === 'rootfs/etc/rancher/k3s/config.yaml')?.secret).toBe(false);
    for (const v of SECRET_VALUES) expect(a.stdout).not.toContain(v);
    const before = readFileSync(join(inv.root, 'build/pi-cluster-2/boot/user-data'));
    const b = await cli(['render', 'pi-cluster-2', '-o', 'json'], { cwd: inv.root, env });
    expect(b.stdout).toBe(a.stdout);
    expect(readFileSync(join(inv.root, 'build/pi-cluster-2/boot/user-data')).equals(before)).toBe(true);
  });

  it('removes files an earlier render wrote and no longer renders; leaves other files alone', async () => {
    const dir = join(inv.root, 'build/pi-cluster-3');
    mkdirSync(join(dir, 'rootfs'), { recursive: true });
    writeFileSync(join(dir, 'rootfs/old-file'), 'stale');
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    writeFileSync(join(dir, 'render.json'), JSON.stringify({ files: [{ file: 'rootfs/old-file' }, { file: '../escape' }] }));
    const r = await cli(['render', 'pi-cluster-3'], { cwd: inv.root, env });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(dir, 'rootfs/old-file'))).toBe(false);
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine');
  });

  it('usage errors exit 2 with a hint', async () => {
    const none = await cli(['render'], { cwd: inv.root, env });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--all');
    const both = await cli(['render', 'pi-cluster-1', '--all'], { cwd: inv.root, env });
    expect(both.code).toBe(2);
    const unknown = await cli(['render', 'pi-cluster-9'], { cwd: inv.root, env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/pi-cluster-9 is not in the inventory[\s\S]*pi-cluster-1/);
    expect(existsSync(join(inv.root, 'build'))).toBe(false);
  });
});
