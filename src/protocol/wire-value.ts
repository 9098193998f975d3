/**
 * The wire form of a payload (SPEC §1.3, §2): a deep copy made when the script
 * calls an emit method, holding only what msgpack carries without extension
 * types. Taking it at call time is what makes an emit capture the value the
 * script passed, even when the script mutates its object before the frame is
 * written (an emit it did not await). Pure; no I/O.
 */

/** Nesting deeper than this is refused (a cycle, or data no consumer can read back). */
export const MAX_WIRE_DEPTH = 512;

/** A payload that cannot go on the wire; the message says where and why. */
export class WireValueError extends Error {
  override readonly name = 'WireValueError';
}

/**
 * Copies `value` into its wire form, following JSON's rules where msgpack
 * would otherwise need an extension type:
 * - a `Date` becomes its ISO-8601 UTC string (`toJSON`), an invalid one `null`;
 * - any other object with a `toJSON` method is replaced by its result;
 * - `Uint8Array` (Buffer included) is copied as bytes (msgpack bin);
 * - plain objects and arrays are copied; properties whose value is
 *   `undefined`, a function or a symbol are omitted, such array slots become `null`;
 * - `Map` becomes a map of its entries; `Set` an array;
 * - strings, numbers, booleans, `null` and bigints are kept as they are.
 * @throws WireValueError on nesting past {@link MAX_WIRE_DEPTH} (a cycle included).
 */
export function toWireValue(value: unknown): unknown {
  return copy(value, 0, '$');
}

function copy(v: unknown, depth: number, path: string): unknown {
  switch (typeof v) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'bigint':
      return v;
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (v === null) return null;
  if (depth >= MAX_WIRE_DEPTH) throw new WireValueError(`${path}: nested deeper than ${MAX_WIRE_DEPTH} levels (a cyclic object?)`);
  const o = v as object;
  if (o instanceof Date) return Number.isNaN(o.getTime()) ? null : o.toISOString();
  if (o instanceof Uint8Array) return new Uint8Array(o);
  if (Array.isArray(o)) {
    const out = new Array<unknown>(o.length);
    for (let i = 0; i < o.length; i++) {
      const x = copy(o[i], depth + 1, `${path}[${i}]`);
      out[i] = x === undefined ? null : x;
    }
    return out;
  }
  if (typeof (o as { toJSON?: unknown }).toJSON === 'function') return copy((o as { toJSON(): unknown }).toJSON(), depth + 1, path);
  if (o instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of o) put(out, String(k), copy(x, depth + 1, `${path}.${String(k)}`));
    return out;
  }
  if (o instanceof Set) return copy([...o], depth, path);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) put(out, k, copy((o as Record<string, unknown>)[k], depth + 1, `${path}.${k}`));
  return out;
}

function put(out: Record<string, unknown>, key: string, x: unknown): void {
  if (x === undefined) return;
  // defineProperty, not assignment: a "__proto__" key is data, not the prototype.
  if (key === '__proto__') Object.defineProperty(out, key, { value: x, enumerable: true, writable: true, configurable: true });
  else out[key] = x;
}
