/**
 * Nodes are sorted by hostname in natural order (core/inventory/normalise.ts compareHostnames),
 * computed without ICU: it must agree with `localeCompare(…, 'en', { numeric: true })`.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareHostnames } from '../../src/core/inventory/normalise.js';

const icu = (a: string, b: string) => Math.sign(a.localeCompare(b, 'en', { numeric: true }));
const order = (a: string, b: string) => Math.sign(compareHostnames(a, b));

describe('compareHostnames', () => {
  it('orders pi-2 before pi-10, servers named like agents by number', () => {
    expect(['pi-10', 'pi-2', 'pi-1', 'pi-a', 'pi', 'pi1'].sort(compareHostnames)).toEqual(['pi', 'pi-1', 'pi-2', 'pi-10', 'pi-a', 'pi1']);
  });

  it('agrees with localeCompare(…, "en", { numeric: true }) on hostname characters, leading zeros included', () => {
    const name = fc.stringMatching(/^[a-z0-9-]{0,12}$/);
    const digitsHeavy = fc.array(fc.constantFrom('0', '1', '9', '-', 'a', 'z', '00', '10'), { maxLength: 8 }).map((parts) => parts.join(''));
    fc.assert(fc.property(fc.oneof(name, digitsHeavy), fc.oneof(name, digitsHeavy), (a, b) => order(a, b) === icu(a, b)), { numRuns: 20000 });
  });

  it('falls back to localeCompare for anything else', () => {
    expect(order('Pi-B', 'pi-a')).toBe(icu('Pi-B', 'pi-a'));
    expect(order('é1', 'e2')).toBe(icu('é1', 'e2'));
  });
});
