import { describe, expect, it } from 'vitest';
import { KILL_POINTS, parseKillPoint } from '../../src/runtime/kill-point.js';

describe('test-only kill point specs', () => {
  it('a point alone dies the first time it is reached; <point>:<n> the n-th time', () => {
    expect(parseKillPoint('after_claim')).toEqual({ name: 'after_claim', count: 1 });
    expect(parseKillPoint('mid_segment:3')).toEqual({ name: 'mid_segment', count: 3 });
    for (const name of KILL_POINTS) expect(parseKillPoint(name).name).toBe(name);
  });

  it('refuses an unknown point or a count below 1, quoting the value and listing the points', () => {
    for (const bad of ['nowhere', 'mid_segment:0', 'mid_segment:x', 'after_claim:', '']) {
      expect(() => parseKillPoint(bad)).toThrow(`QUARRY_TEST_KILL_POINT=${JSON.stringify(bad)} must be <point> or <point>:<n> (n from 1), point one of after_claim|`);
    }
  });
});
