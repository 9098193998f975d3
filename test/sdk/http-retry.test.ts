import { describe, expect, it } from 'vitest';
import { backoffDelay, isRetryableStatus, parseRetryAfter } from '../../src/sdk/index.js';

describe('ctx.http retry rules', () => {
  const now = Date.parse('2026-11-23T12:00:00Z');

  it('reads Retry-After as delta-seconds or an HTTP-date, a past date as 0, and ignores junk', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Mon, 23 Nov 2026 12:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Sun, 22 Nov 2026 12:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
    expect(parseRetryAfter('1.5', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });

  it('backs off exponentially between half and all of the ceiling, capped', () => {
    expect([1, 2, 3].map((n) => backoffDelay(n, 500, 30_000, 0))).toEqual([250, 500, 1000]);
    expect([1, 2, 3].map((n) => backoffDelay(n, 500, 30_000, 0.999_999))).toEqual([500, 1000, 2000]);
    expect(backoffDelay(20, 500, 30_000, 0.999_999)).toBe(30_000);
  });

  it('retries 408, 429 and 5xx except 501', () => {
    expect([408, 429, 500, 502, 503, 504, 599].every(isRetryableStatus)).toBe(true);
    expect([200, 301, 400, 401, 403, 404, 501].some(isRetryableStatus)).toBe(false);
  });
});
