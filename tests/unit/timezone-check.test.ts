/**
 * The inventory's time zone check (core/inventory/text.ts): ICU's canonical zone names pass without
 * a date formatter; aliases, wrong case and unknown names take the formatter's answer.
 */
import { describe, expect, it } from 'vitest';
import { checkTimezone } from '../../src/core/inventory/text.js';

/** What Intl.DateTimeFormat says of a name: the zone it resolves to, or undefined if it refuses it. */
function resolved(name: string): string | undefined {
  try {
    return new Intl.DateTimeFormat('en', { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

describe('checkTimezone', () => {
  it('accepts every canonical zone, each of which Intl.DateTimeFormat takes under its own name', () => {
    const zones = ['UTC', ...Intl.supportedValuesOf('timeZone')];
    expect(zones.length).toBeGreaterThan(300);
    for (const zone of zones) {
      expect(checkTimezone(zone), zone).toEqual({ ok: true });
      const r = resolved(zone);
      expect(r === zone || r?.toLowerCase() !== zone.toLowerCase(), zone).toBe(true);
    }
  });

  it('accepts an alias of the IANA database (US/Pacific, Etc/UTC)', () => {
    expect(checkTimezone('US/Pacific')).toEqual({ ok: true });
    expect(checkTimezone('Etc/UTC')).toEqual({ ok: true });
  });

  it('refuses a zone in the wrong case, naming the right spelling', () => {
    expect(checkTimezone('europe/berlin')).toEqual({ ok: false, message: expect.stringContaining('is spelled Europe/Berlin in the IANA database') });
  });

  it('refuses a name the database does not have', () => {
    expect(checkTimezone('Europe/Nowhere')).toEqual({ ok: false, message: expect.stringContaining('is not a time zone of the IANA database') });
  });
});
