import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { REDACTED, redact } from '../../src/core/redact.js';

describe('redact', () => {
  it('replaces every occurrence of every value with ***', () => {
    const a = randomBytes(32).toString('hex');
    const b = randomBytes(32).toString('hex');
    const text = `token=${a}\nagent ${b} and again ${a}.`;
    const out = redact(text, [a, b]);
    expect(out).not.toContain(a);
    expect(out).not.toContain(b);
    expect(out).toBe(`token=${REDACTED}\nagent ${REDACTED} and again ${REDACTED}.`);
  });

  it('hides a value whole when another value is part of it', () => {
    const inner = 'abcdef12';
    const outer = `xx${inner}yy`;
    expect(redact(`[${outer}] [${inner}]`, [inner, outer])).toBe(`[${REDACTED}] [${REDACTED}]`);
  });

  it('treats regex characters literally and catches the JSON-escaped form', () => {
    const psk = 'a.b*c"d\\e(f)$1';
    const json = JSON.stringify({ psk });
    expect(json).not.toContain(psk);
    expect(redact(json, [psk])).toBe(`{"psk":"${REDACTED}"}`);
    expect(redact(`raw ${psk} end`, [psk])).toBe(`raw ${REDACTED} end`);
    expect(redact('aXb', [psk])).toBe('aXb');
  });

  it('ignores empty and absent values and leaves text without secrets unchanged', () => {
    expect(redact('nothing here', ['', undefined, null])).toBe('nothing here');
    expect(redact('nothing here', ['zzz-not-present'])).toBe('nothing here');
  });
});
