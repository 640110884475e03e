/** The one-module-per-concept foundations: build record, atomic write, evidence folders, node selection, operator, clock. */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { atomicWriteFile } from '../../src/adapters/atomic-write.js';
import { readBuildRecord, recordPath, writeBuildRecord } from '../../src/adapters/build-record.js';
import { writeEvidenceFolder } from '../../src/adapters/evidence.js';
import { BUILD_RECORD_VERSION, type BuildRecord, parseBuildRecord } from '../../src/core/build-record.js';
import { fakeClock } from '../../src/core/clock.js';
import { InputError, IoError } from '../../src/core/errors.js';
import { checkNodeChoice, findNode, selectNodes } from '../../src/core/node-selection.js';
import { operatorName } from '../../src/core/operator.js';
import { testTempDir } from '../helpers/temp-dir.js';

const tmp = () => testTempDir('pi-image-concepts-');
const SHA = 'a'.repeat(64);

function record(): BuildRecord {
  return {
    version: BUILD_RECORD_VERSION,
    node: 'pi-cluster-2',
    role: 'agent',
    instanceId: 'pi-cluster-2-0123456789ab',
    tool: { name: 'pi-image', version: '1.2.3' },
    builtAt: '2025-06-01T00:00:00.000Z',
    base: { name: 'raspios', path: '/cache/raspios.img', sha256: SHA, size: 10 },
    inputs: { inventorySha256: SHA, templatesSha256: SHA, secretsVersion: 3, secretsDigest: SHA },
    image: { path: '/out/pi-cluster-2.img', sha256: SHA, size: 10, compress: 'none', rawSha256: SHA },
    files: [
      { target: 'boot', path: 'meta-data', mode: '0644', bytes: 5, secret: false, sha256: SHA, digest: 'aaaaaaaaaaaa' },
      { target: 'boot', path: 'user-data', mode: '0600', bytes: 9, secret: true, digest: 'hmac' },
    ],
  };
}

describe('build record', () => {
  it('round-trips through the writer and the one reader', async () => {
    const dir = tmp();
    await writeBuildRecord(recordPath(dir, 'pi-cluster-2'), record());
    expect(await readBuildRecord(join(dir, 'pi-cluster-2.json'))).toEqual(record());
    expect(await readBuildRecord(join(dir, 'pi-cluster-9.json'))).toBeUndefined();
  });

  it('refuses another version, bad JSON and a malformed record, naming the file and the field', () => {
    expect(() => parseBuildRecord(JSON.stringify({ ...record(), version: 2 }), 'x.json')).toThrow(/x.json is not a pi-image build record \(version 1; found 2\)/);
    expect(() => parseBuildRecord('{', 'x.json')).toThrow(InputError);
    const bad = { ...record(), files: [{ ...record().files[0], mode: 'rw-r--r--' }] };
    try {
      parseBuildRecord(JSON.stringify(bad), 'x.json');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      expect((e as InputError).details.join('\n')).toContain('files.0.mode');
    }
  });
});

describe('atomic write', () => {
  it('writes with the mode asked for (0600 for secrets) and leaves no temp file', async () => {
    const dir = tmp();
    await atomicWriteFile(join(dir, 'sub', 'secret'), 'value', { mode: 0o600 });
    await atomicWriteFile(join(dir, 'sub', 'secret'), 'value 2', { mode: 0o600 });
    expect(readFileSync(join(dir, 'sub', 'secret'), 'utf8')).toBe('value 2');
    expect(statSync(join(dir, 'sub', 'secret')).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(dir, 'sub'))).toEqual(['secret']);
  });

  it('fails with an IoError naming the file and keeps the old contents', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'file'), 'old');
    await expect(atomicWriteFile(join(dir, 'file', 'below-a-file'), 'x')).rejects.toBeInstanceOf(IoError);
    expect(readFileSync(join(dir, 'file'), 'utf8')).toBe('old');
  });
});

describe('evidence folders', () => {
  it('takes the next free dated folder and masks every secret value', async () => {
    const root = tmp();
    const date = new Date('2025-06-02T10:00:00Z');
    const a = await writeEvidenceFolder({ root, name: 'diff-all', date, files: { 'a.txt': 'token s3cret here' }, secretValues: ['s3cret'] });
    const b = await writeEvidenceFolder({ root, name: 'diff-all', date, files: { 'a.txt': 'x' } });
    expect(a).toBe(join(root, '2025-06-02-diff-all'));
    expect(b).toBe(join(root, '2025-06-02-diff-all-2'));
    expect(readFileSync(join(a, 'a.txt'), 'utf8')).not.toContain('s3cret');
  });
});

describe('node selection', () => {
  const inv = { dir: '/inv', nodes: [{ hostname: 'pi-cluster-1' }, { hostname: 'pi-cluster-2' }] } as never;
  it('names or --all, with one message for unknown hostnames', () => {
    expect(selectNodes(inv, { names: [], all: true }, 'build')).toEqual(['pi-cluster-1', 'pi-cluster-2']);
    expect(selectNodes(inv, { names: ['pi-cluster-2', 'pi-cluster-2'], all: false }, 'build')).toEqual(['pi-cluster-2']);
    expect(() => checkNodeChoice({ names: [], all: false }, 'render')).toThrow('which node? give one or more hostnames, or --all');
    expect(() => checkNodeChoice({ names: ['a'], all: true }, 'render')).toThrow('give node names or --all, not both');
    expect(() => selectNodes(inv, { names: ['pi-cluster-7', 'pi-cluster-8'], all: false }, 'x')).toThrow('pi-cluster-7, pi-cluster-8 are not in the inventory /inv');
    expect(() => findNode(inv, 'pi-cluster-7')).toThrow('pi-cluster-7 is not in the inventory /inv');
  });
});

describe('operator identity', () => {
  it('one precedence rule: --operator, $PI_IMAGE_OPERATOR, $SUDO_USER, $USER, $LOGNAME, the system account', () => {
    const env = { PI_IMAGE_OPERATOR: 'op', SUDO_USER: 'sudoer', USER: 'root', LOGNAME: 'log' };
    expect(operatorName({ flag: 'flag', env })).toBe('flag');
    expect(operatorName({ env })).toBe('op');
    expect(operatorName({ env: { ...env, PI_IMAGE_OPERATOR: '' } })).toBe('sudoer');
    expect(operatorName({ env: { USER: 'root', LOGNAME: 'log' } })).toBe('root');
    expect(operatorName({ env: {}, systemUser: 'acct' })).toBe('acct');
    expect(operatorName({ env: {} })).toBe('unknown');
  });
});

describe('clock', () => {
  it('a fake clock moves only when slept on or advanced', async () => {
    const c = fakeClock(new Date('2025-01-01T00:00:00Z'));
    const t0 = c.now();
    await c.sleep(1500);
    c.advance(500);
    expect(c.now() - t0).toBe(2000);
  });
});
