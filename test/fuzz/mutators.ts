/**
 * Mutations of valid inputs, as fast-check arbitraries: value-level ones
 * (a field set to a value of the wrong type, deleted, added, wrapped in deep
 * nesting) applied to a decoded tree, and byte-level ones (bit flips,
 * truncation, insertion, deletion, a 32-bit length overwritten) applied to
 * its encoding. Positions are plain naturals taken modulo what exists, so
 * every generated mutation applies and shrinks toward the start.
 */
import fc from 'fast-check';

export type Path = ReadonlyArray<string | number>;

export type ValueMutation =
  | { kind: 'set'; at: number; value: unknown }
  | { kind: 'delete'; at: number }
  | { kind: 'add'; at: number; key: string; value: unknown }
  | { kind: 'nest'; at: number; depth: number; asMap: boolean }
  | { kind: 'setPath'; path: Path; value: unknown };

export type ByteMutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: number[] }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'u32'; at: number; value: number };

const isContainer = (v: unknown): v is Record<string, unknown> | unknown[] => typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && Object.getPrototypeOf(v) !== null && (Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype);

/** Children of a container as [key, value] pairs (array indexes as numbers). */
function childrenOf(v: Record<string, unknown> | unknown[]): Array<[string | number, unknown]> {
  if (!Array.isArray(v)) return Object.entries(v);
  // Not v.map: a mutation may have given the array an own `constructor`, which map consults.
  const out: Array<[number, unknown]> = [];
  for (let i = 0; i < v.length; i++) out.push([i, v[i]]);
  return out;
}

/**
 * The path of the `index % n`-th of the `n` nodes of `v` (the root included),
 * in depth-first pre-order. Iterative, and without building every path: a
 * tree nested 20,000 deep (which the mutators make) neither overflows the
 * stack nor costs more than two walks.
 */
export function pathAt(v: unknown, index: number): Path {
  let n = 0;
  const count: unknown[] = [v];
  while (count.length > 0) {
    const x = count.pop();
    n++;
    if (isContainer(x)) for (const [, c] of childrenOf(x)) count.push(c);
  }
  let left = index % n;
  // Pre-order with an explicit stack; each entry links to its parent, so a path is built only for the node chosen.
  interface Entry {
    x: unknown;
    key: string | number;
    parent: Entry | undefined;
  }
  const stack: Entry[] = [{ x: v, key: 0, parent: undefined }];
  for (;;) {
    const e = stack.pop()!;
    if (left-- === 0) {
      const path: Array<string | number> = [];
      for (let at: Entry | undefined = e; at?.parent !== undefined; at = at.parent) path.push(at.key);
      return path.reverse();
    }
    if (isContainer(e.x)) {
      const kids = childrenOf(e.x);
      for (let i = kids.length - 1; i >= 0; i--) stack.push({ x: kids[i]![1], key: kids[i]![0], parent: e });
    }
  }
}

/** Deep copy of a JSON-like tree (binary and other leaves are shared: mutations never write into them). */
export function clone<T>(v: T): T {
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    for (let i = 0; i < v.length; i++) out.push(clone(v[i]));
    return out as T;
  }
  if (isContainer(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clone(x)])) as T;
  return v;
}

/**
 * `inner` wrapped in `depth` one-element arrays (or `{ n: … }` maps). Kept as a
 * marker the encoders expand without recursion, so the harness itself never
 * overflows its stack building what the parsers must survive.
 */
export class Nested {
  constructor(
    readonly depth: number,
    readonly asMap: boolean,
    readonly inner: unknown,
  ) {}
}

const nest = (v: unknown, depth: number, asMap: boolean): unknown => new Nested(depth, asMap, v);

/** JSON text of a tree that may hold {@link Nested} markers (binary leaves become arrays of numbers). */
export function toJsonText(v: unknown): string {
  if (v instanceof Nested) return (v.asMap ? '{"n":' : '[').repeat(v.depth) + toJsonText(v.inner) + (v.asMap ? '}' : ']').repeat(v.depth);
  if (v instanceof Uint8Array) return `[${v.join(',')}]`;
  if (Array.isArray(v)) {
    // Not v.map: a mutation may have given the array an own `constructor`, which map consults.
    const items: string[] = [];
    for (let i = 0; i < v.length; i++) items.push(v[i] === undefined ? 'null' : toJsonText(v[i]));
    return `[${items.join(',')}]`;
  }
  if (typeof v === 'object' && v !== null) {
    return `{${Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => `${JSON.stringify(k)}:${toJsonText(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** Adds an own property, even one named `__proto__`, as a decoded map would hold it. */
const define = (o: object, key: string, value: unknown): void => void Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });

/** Applies `m` to `root` in place where it can; returns the (possibly new) root. */
export function applyValueMutation(root: unknown, m: ValueMutation): unknown {
  // Generated values are shared between inputs (constants): insert copies, never the values themselves.
  if (m.kind === 'set' || m.kind === 'add' || m.kind === 'setPath') m = { ...m, value: clone(m.value) };
  if (m.kind === 'setPath') {
    if (!isContainer(root)) return root;
    let parent = root as Record<string | number, unknown>;
    for (const k of m.path.slice(0, -1)) {
      if (!isContainer(parent[k])) return root;
      parent = parent[k] as Record<string | number, unknown>;
    }
    if (m.path.length > 0) parent[m.path[m.path.length - 1]!] = m.value;
    return root;
  }
  const path = pathAt(root, m.at);
  if (path.length === 0) {
    if (m.kind === 'set') return m.value;
    if (m.kind === 'nest') return nest(root, m.depth, m.asMap);
    if (m.kind === 'add' && isContainer(root)) define(root, m.key, m.value);
    return root;
  }
  let parent = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const key = path[path.length - 1]!;
  switch (m.kind) {
    case 'set':
      parent[key] = m.value;
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      break;
    case 'add': {
      const target = parent[key];
      if (Array.isArray(target)) target.push(m.value);
      else if (isContainer(target)) define(target, m.key, m.value);
      else parent[key] = m.value;
      break;
    }
    case 'nest':
      parent[key] = nest(parent[key], m.depth, m.asMap);
      break;
  }
  return root;
}

export function applyByteMutation(b: Buffer, m: ByteMutation): Buffer {
  if (b.length === 0) return m.kind === 'insert' ? Buffer.from(m.bytes) : b;
  const at = m.at % b.length;
  switch (m.kind) {
    case 'flip': {
      const c = Buffer.from(b);
      c[at]! ^= 1 << m.bit;
      return c;
    }
    case 'set': {
      const c = Buffer.from(b);
      c[at] = m.byte;
      return c;
    }
    case 'truncate':
      return b.subarray(0, at);
    case 'insert':
      return Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
    case 'delete':
      return Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
    case 'u32': {
      const c = Buffer.from(b);
      const n = Buffer.alloc(4);
      n.writeUInt32BE(m.value >>> 0);
      n.copy(c, at, 0, Math.min(4, c.length - at));
      return c;
    }
  }
}

const BIG_STRING = 'é'.repeat(33_000);

/**
 * Sets one of the named fields (the ones parsers branch on) to one of its
 * telling values, or to any odd value: random paths rarely hit them.
 */
export function setPath(fields: ReadonlyArray<readonly [Path, readonly unknown[]]>, odd: fc.Arbitrary<unknown>): fc.Arbitrary<ValueMutation> {
  return fc.constantFrom(...fields).chain(([path, telling]) =>
    fc.record({ kind: fc.constant('setPath' as const), path: fc.constant(path), value: telling.length > 0 ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...telling) }, { weight: 1, arbitrary: odd }) : odd }),
  );
}

/** Values of the wrong (or a surprising) type for any field, plus the caller's domain values. */
export function oddValue(extra: ReadonlyArray<unknown> = []): fc.Arbitrary<unknown> {
  const constants: unknown[] = [
    null, true, false, 0, -1, 1, 2, 1.5, -0, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 64, -(2 ** 63), 1e300,
    '', ' ', 'x', '\u0000', '\ud800', '../x', 'a/b', 'a'.repeat(300),
    [], {}, [1, 2], { a: 1 }, [null], new Uint8Array(0), new Uint8Array(300),
    ...extra,
  ];
  return fc.oneof(
    { weight: 16, arbitrary: fc.constantFrom(...constants) },
    { weight: 4, arbitrary: fc.string({ maxLength: 20 }) },
    { weight: 4, arbitrary: fc.integer() },
    { weight: 4, arbitrary: fc.double() },
    // Over 64 KiB of UTF-8: the widest string encodings.
    { weight: 1, arbitrary: fc.constant(BIG_STRING) },
  );
}

export function valueMutation(values: fc.Arbitrary<unknown>): fc.Arbitrary<ValueMutation> {
  const at = fc.nat();
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('set' as const), at, value: values }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('add' as const), at, key: fc.constantFrom('x', 'type', 'seq', '__proto__', 'constructor', ''), value: values }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('nest' as const), at, depth: fc.oneof({ weight: 30, arbitrary: fc.constantFrom(1, 2, 100, 509, 510, 511, 512, 2_000) }, { weight: 1, arbitrary: fc.constant(20_000) }), asMap: fc.boolean() }) },
  );
}

export function byteMutation(): fc.Arbitrary<ByteMutation> {
  const at = fc.nat();
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('set' as const), at, byte: fc.oneof(fc.constantFrom(0x00, 0x0a, 0x22, 0x7b, 0x7d, 0xc1, 0xc7, 0xd4, 0xd9, 0xdb, 0xdd, 0xdf, 0xff), fc.integer({ min: 0, max: 255 })) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at, bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at, len: fc.integer({ min: 1, max: 16 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('u32' as const), at, value: fc.constantFrom(0, 1, 0x7fffffff, 0xffffffff, 16 * 1024 * 1024, 16 * 1024 * 1024 - 4, 65_536) }) },
  );
}
