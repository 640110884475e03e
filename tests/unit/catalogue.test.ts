import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { compressionFromMagic, compressionFromName, downloadName, parseCatalogue } from '../../src/core/catalogue.js';
import { InputError } from '../../src/core/errors.js';

const GOOD = `name: test-image
url: https://example.org/x/2025-11-24-test.img.xz
arch: arm64
sha256: ${'a'.repeat(64)}
`;

describe('parseCatalogue', () => {
  it('parses the shipped Raspberry Pi OS entry', async () => {
    const text = await readFile(new URL('../../images/raspios-lite-arm64-trixie.yaml', import.meta.url), 'utf8');
    const e = parseCatalogue(text, 'images/raspios-lite-arm64-trixie.yaml', 'raspios-lite-arm64-trixie');
    expect(e).toMatchObject({
      name: 'raspios-lite-arm64-trixie',
      release: '2025-11-24',
      arch: 'arm64',
      compression: 'xz',
      sha256: '1d448a6e665e1ae8100bc28b35408619ec626a2fddfd6579ec99e7996fa09a56',
      layout: { bootLabel: 'bootfs', rootLabel: 'rootfs' },
      cloudInit: true,
    });
    expect(e.url).toMatch(/^https:\/\/downloads\.raspberrypi\.com\/raspios_lite_arm64\/images\//);
  });

  it('fills defaults and infers compression from the url', () => {
    const e = parseCatalogue(GOOD, 'images/test-image.yaml');
    expect(e).toMatchObject({
      compression: 'xz',
      description: 'test-image',
      size: undefined,
      image: { sha256: undefined, size: undefined },
      layout: { bootLabel: 'bootfs', rootLabel: 'rootfs' },
      cloudInit: true,
      source: 'images/test-image.yaml',
    });
  });

  it('reports every problem with file:line:col', () => {
    const text = `name: Bad Name
arch: armhf
url: ftp://x
sha256: abcd
image:
  sha256: nothex
  extra: 1
`;
    let err: unknown;
    try {
      parseCatalogue(text, 'images/bad.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    const d = (err as InputError).details;
    expect(d).toContain('images/bad.yaml:1:7 name: must be lower-case letters, digits, ".", "-" or "_"');
    expect(d.some((l) => l.startsWith('images/bad.yaml:2:7 arch:'))).toBe(true);
    expect(d).toContain('images/bad.yaml:3:6 url: must be an http(s) URL');
    expect(d).toContain('images/bad.yaml:4:9 sha256: must be 64 lower-case hex digits (a sha256)');
    expect(d).toContain('images/bad.yaml:6:11 image.sha256: must be 64 lower-case hex digits (a sha256)');
    expect(d.some((l) => l.startsWith('images/bad.yaml:6:3 image:') && /extra/.test(l))).toBe(true);
  });

  it('reports YAML syntax errors with line numbers', () => {
    expect(() => parseCatalogue('name: [x\nurl: y\n', 'images/x.yaml')).toThrow(InputError);
    try {
      parseCatalogue('name: a\nname: b\n', 'images/x.yaml');
    } catch (e) {
      expect((e as InputError).details[0]).toMatch(/^images\/x\.yaml:2:1 /);
    }
  });

  it('checks the name against the file name', () => {
    expect(() => parseCatalogue(GOOD, 'images/other.yaml', 'other')).toThrow(/images\/other\.yaml:1:7 name: "test-image" must match the file name "other"/);
  });
});

describe('compression helpers', () => {
  it('detects by name and by magic', () => {
    expect(compressionFromName('a.img.xz')).toBe('xz');
    expect(compressionFromName('a.img.zst?x=1')).toBe('zstd');
    expect(compressionFromName('a.img.gz')).toBe('gzip');
    expect(compressionFromName('a.img')).toBe('none');
    expect(compressionFromMagic(Uint8Array.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))).toBe('xz');
    expect(compressionFromMagic(Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(compressionFromMagic(Uint8Array.from([0x1f, 0x8b, 8]))).toBe('gzip');
    expect(compressionFromMagic(Uint8Array.from([0, 0, 0, 0]))).toBeUndefined();
    expect(downloadName('https://h/p/2025-11-24-raspios-trixie-arm64-lite.img.xz?sig=1')).toBe('2025-11-24-raspios-trixie-arm64-lite.img.xz');
  });
});
