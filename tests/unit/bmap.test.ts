import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bmapPathFor, complementRanges, intersectRanges, mappedBlocks, mappedBytes, mergeRanges, parseBmap, renderBmap } from '../../src/core/bmap.js';

const sum = (s: string) => createHash('sha256').update(s).digest('hex');

describe('block maps (bmaptool format 2.0)', () => {
  it('maps every block except those that are both a hole and unneeded, whole blocks only', () => {
    const size = 10 * 4096 + 512; // the last block is short
    // data in block 0 and in bytes 5000..6000 (block 1); holes elsewhere
    const data = [{ start: 0, end: 4096 }, { start: 5000, end: 6000 }];
    // blocks 3..end are unneeded except that the unneeded stretch starts mid-block 2
    const unneeded = [{ start: 2 * 4096 + 100, end: size }];
    expect(mappedBlocks({ size, data, unneeded })).toEqual([{ first: 0, last: 2 }]);
    // a hole that something needs (a file's zeros, a FAT stretch) stays mapped
    expect(mappedBlocks({ size, data, unneeded: [] })).toEqual([{ first: 0, last: 10 }]);
    // data inside an unneeded stretch stays mapped
    expect(mappedBlocks({ size, data: [{ start: 8 * 4096, end: 8 * 4096 + 1 }], unneeded: [{ start: 0, end: size }] })).toEqual([{ first: 8, last: 8 }]);
  });

  it('range helpers', () => {
    expect(mergeRanges([{ start: 5, end: 9 }, { start: 0, end: 5 }, { start: 20, end: 20 }])).toEqual([{ start: 0, end: 9 }]);
    expect(complementRanges([{ start: 2, end: 4 }], 6)).toEqual([{ start: 0, end: 2 }, { start: 4, end: 6 }]);
    expect(intersectRanges([{ start: 0, end: 10 }], [{ start: 5, end: 15 }, { start: 20, end: 30 }])).toEqual([{ start: 5, end: 10 }]);
    expect(bmapPathFor('/b/x.img.zst')).toBe('/b/x.img.bmap');
    expect(bmapPathFor('/b/x.img')).toBe('/b/x.img.bmap');
  });

  it('renders what it parses, with bmaptool\'s file checksum rule, and refuses damaged maps', () => {
    const ranges = [{ first: 0, last: 1, sha256: sum('a') }, { first: 5, last: 5, sha256: sum('b') }];
    const { text, checksum } = renderBmap({ imageSize: 6 * 4096 + 512, ranges });
    expect(text).toMatch(/<bmap version="2.0">/);
    expect(text).toMatch(/<Range chksum="[0-9a-f]{64}"> 0-1 <\/Range>/);
    expect(text).toMatch(/<Range chksum="[0-9a-f]{64}"> 5 <\/Range>/);
    expect(createHash('sha256').update(text.replace(checksum, '0'.repeat(64))).digest('hex')).toBe(checksum);
    const parsed = parseBmap(text);
    expect(parsed).toEqual({ bmap: { version: '2.0', imageSize: 6 * 4096 + 512, blockSize: 4096, blocksCount: 7, mappedBlocksCount: 3, checksum, ranges } });
    if ('bmap' in parsed) expect(mappedBytes(parsed.bmap)).toBe(3 * 4096);
    expect(parseBmap(text.replace('> 5 <', '> 6 <'))).toEqual({ problem: expect.stringMatching(/BmapFileChecksum does not match/) as string });
    expect(parseBmap('<nope')).toHaveProperty('problem');
    expect(parseBmap(text.replace('version="2.0"', 'version="1.3"'))).toEqual({ problem: expect.stringMatching(/version 1.3/) as string });
  });
});
