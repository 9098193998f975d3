/**
 * Canonical JSON per RFC 8785 (JCS), the params half of a work item's dedup
 * key (SPEC §10): two enqueues whose params differ only in key order, number
 * spelling or string escaping must meet in one key, on every machine.
 *
 * Written here rather than taken from a package so its three rules stay in
 * view: numbers as ECMAScript prints a double (RFC 8785 §3.2.2.3), object
 * members sorted by their names' UTF-16 code units (§3.2.3), strings with the
 * minimal escapes of §3.2.2.2. Input must be I-JSON (RFC 7493): no NaN or
 * Infinity, no lone surrogates, no value JSON cannot carry.
 */

/** A value JSON can carry. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/**
 * A value that has no canonical JSON form: names where it sits (`$.a[2]`) and
 * why, so the script author can fix the params they enqueued.
 */
export class CanonicalJsonError extends Error {
  override readonly name = 'CanonicalJsonError';
  constructor(readonly path: string, readonly problem: string) {
    super(`params are not canonical JSON at ${path}: ${problem}`);
  }
}

// The two-character escapes RFC 8785 §3.2.2.2 keeps; other controls become \u00xx.
const SHORT_ESCAPES: Readonly<Record<number, string>> = {
  0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r', 0x22: '\\"', 0x5c: '\\\\',
};

/**
 * Serializes a string per RFC 8785 §3.2.2.2. Throws {@link CanonicalJsonError}
 * on a lone surrogate, which I-JSON forbids and UTF-8 cannot encode.
 */
export function canonicalString(s: string, path = '$'): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const short = SHORT_ESCAPES[c];
    if (short !== undefined) out += short;
    else if (c < 0x20) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) throw new CanonicalJsonError(path, `lone surrogate U+${c.toString(16).toUpperCase()} at index ${i}`);
      out += s[i]! + s[i + 1]!;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) throw new CanonicalJsonError(path, `lone surrogate U+${c.toString(16).toUpperCase()} at index ${i}`);
    else out += s[i]!;
  }
  return out + '"';
}

/**
 * Serializes a number per RFC 8785 §3.2.2.3, which adopts ECMAScript's
 * Number-to-String (shortest round-trip digits; exponent from 1e21 and below
 * 1e-6; -0 as `0`). Throws {@link CanonicalJsonError} on NaN or ±Infinity.
 */
export function canonicalNumber(n: number, path = '$'): string {
  if (!Number.isFinite(n)) throw new CanonicalJsonError(path, `${String(n)} is not a JSON number`);
  // ECMAScript's Number::toString is exactly the algorithm RFC 8785 cites; -0 prints as "0".
  return String(n);
}

/** Orders two strings by UTF-16 code units (RFC 8785 §3.2.3), not by code points or locale. */
export function compareUtf16(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/**
 * The canonical JSON text of `value` (RFC 8785). Accepts plain objects,
 * arrays, strings, finite numbers, booleans and null; throws
 * {@link CanonicalJsonError} naming the path of anything else (undefined,
 * bigint, a function, a Date, bytes, a class instance) and on cycles.
 */
export function canonicalJson(value: unknown): string {
  return serialize(value, '$', new Set());
}

function serialize(v: unknown, path: string, open: Set<object>): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean': return v ? 'true' : 'false';
    case 'number': return canonicalNumber(v, path);
    case 'string': return canonicalString(v, path);
    case 'object': break;
    default: throw new CanonicalJsonError(path, `a ${typeof v} is not a JSON value`);
  }
  const obj = v as object;
  if (open.has(obj)) throw new CanonicalJsonError(path, 'the value contains itself (a cycle)');
  open.add(obj);
  try {
    if (Array.isArray(obj)) return `[${obj.map((e, i) => serialize(e, `${path}[${i}]`, open)).join(',')}]`;
    const proto = Object.getPrototypeOf(obj) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      throw new CanonicalJsonError(path, `a ${obj.constructor?.name ?? 'non-plain object'} is not a JSON value`);
    }
    const rec = obj as Record<string, unknown>;
    const keys = Object.keys(rec).sort(compareUtf16);
    return `{${keys.map((k) => `${canonicalString(k, path)}:${serialize(rec[k], `${path}.${k}`, open)}`).join(',')}}`;
  } finally {
    open.delete(obj);
  }
}
