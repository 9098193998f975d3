import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, canonicalNumber, canonicalString, compareUtf16 } from '../../src/scheduler/canonical-json.js';

describe('RFC 8785 canonical JSON', () => {
  it('formats numbers as ECMAScript does (RFC 8785 §3.2.2.3 and its appendix B samples)', () => {
    const cases: [number, string][] = [
      [0, '0'], [-0, '0'], [1, '1'], [-1, '-1'], [4.5, '4.5'], [0.002, '0.002'], [1e-6, '0.000001'], [1e-7, '1e-7'],
      [1e21, '1e+21'], [1e20, '100000000000000000000'], [1e30, '1e+30'], [333333333.33333329, '333333333.3333333'],
      [9007199254740992, '9007199254740992'], [295147905179352830000, '295147905179352830000'],
      [5e-324, '5e-324'], [1.7976931348623157e308, '1.7976931348623157e+308'], [-1.5e-9, '-1.5e-9'], [123456789012345680000, '123456789012345680000'],
      [0.1 + 0.2, '0.30000000000000004'],
    ];
    for (const [n, s] of cases) expect(canonicalNumber(n)).toBe(s);
    expect(canonicalJson({ a: 1.0, b: 1e3 })).toBe('{"a":1,"b":1000}');
  });

  it('refuses NaN and infinities, naming where they sit', () => {
    expect(() => canonicalJson({ a: [1, Number.NaN] })).toThrow('params are not canonical JSON at $.a[1]: NaN is not a JSON number');
    expect(() => canonicalJson(Number.POSITIVE_INFINITY)).toThrow(/Infinity/);
  });

  it('sorts object members by UTF-16 code units, recursively (RFC 8785 §3.2.3 example)', () => {
    const obj = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' };
    // Compared in the text: JSON.parse would put the integer-like key "1" first again.
    const text = canonicalJson(obj);
    const order = ['\\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'].map((k) => text.indexOf(`"${k}"`));
    expect(order.every((p, i) => p >= 0 && (i === 0 || p > order[i - 1]!))).toBe(true);
    // U+1F600 (a surrogate pair starting 0xD83D) sorts before U+FB33 by code units, after it by code points.
    expect(compareUtf16('\ud83d\ude00', '\ufb33')).toBeLessThan(0);
    expect(canonicalJson({ b: { d: 1, c: 2 }, a: [{ z: 0, y: 1 }] })).toBe('{"a":[{"y":1,"z":0}],"b":{"c":2,"d":1}}');
  });

  it('escapes strings minimally (RFC 8785 §3.2.2.2)', () => {
    expect(canonicalString('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(canonicalString('\b\t\n\f\r')).toBe('"\\b\\t\\n\\f\\r"');
    expect(canonicalString('\u0000\u001f\u000b')).toBe('"\\u0000\\u001f\\u000b"');
    expect(canonicalString('/ é € \ud83d\ude00 \u007f \u2028')).toBe('"/ é € \ud83d\ude00 \u007f \u2028"');
    expect(() => canonicalString('x\ud800y')).toThrow('lone surrogate U+D800 at index 1');
    expect(() => canonicalString('\udc00')).toThrow(/lone surrogate U\+DC00/);
  });

  it('refuses values JSON cannot carry, naming the path', () => {
    expect(() => canonicalJson({ a: undefined })).toThrow('at $.a: a undefined is not a JSON value');
    expect(() => canonicalJson({ d: new Date(0) })).toThrow('at $.d: a Date is not a JSON value');
    expect(() => canonicalJson([1n])).toThrow('at $[0]: a bigint');
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    expect(() => canonicalJson(cyc)).toThrow(/cycle/);
    expect(canonicalJson({ shared: [1], again: [1] })).toBe('{"again":[1],"shared":[1]}');
  });

  it('agrees with JSON.parse on every JSON value, and is the same whatever the key order', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => {
      const text = canonicalJson(v);
      expect(canonicalJson(JSON.parse(text))).toBe(text);
      expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(v)));
      const reversed = JSON.parse(JSON.stringify(v), (_k, x: unknown) =>
        x !== null && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).reverse()) : x);
      expect(canonicalJson(reversed)).toBe(text);
    }), { numRuns: 300 });
  });
});
