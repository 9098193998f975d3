/**
 * A msgpack writer that picks, for every value, one of the encodings the
 * format allows for it (fixmap/map16/map32, fixstr/str8/str16/str32,
 * bin8/16/32, fixarray/array16/32, every integer width, float32/64), driven by
 * a tape of choices so fast-check can generate and shrink them. Raw bytes can
 * be spliced in anywhere ({@link raw}) to plant extension types, bad UTF-8 or
 * lengths that promise more bytes than follow.
 */

import { Nested } from './mutators.js';

/** A value the writer copies verbatim into the output (a class, so mutators treat it as a leaf). */
export class Raw {
  constructor(readonly bytes: Uint8Array) {}
}

export const raw = (bytes: Uint8Array | number[]): Raw => new Raw(Uint8Array.from(bytes));

/** Writes `value` as msgpack; `tape` (non-empty) chooses among the valid encodings of each value. */
export function writeVariant(value: unknown, tape: readonly number[]): Buffer {
  const w = new VariantWriter(tape);
  w.write(value);
  return w.finish();
}

type Form = readonly [max: number, head: number, lenBytes: number];
const STR_FORMS: readonly Form[] = [[31, 0xa0, 0], [0xff, 0xd9, 1], [0xffff, 0xda, 2], [0xffffffff, 0xdb, 4]];
const BIN_FORMS: readonly Form[] = [[0xff, 0xc4, 1], [0xffff, 0xc5, 2], [0xffffffff, 0xc6, 4]];
const ARRAY_FORMS: readonly Form[] = [[15, 0x90, 0], [0xffff, 0xdc, 2], [0xffffffff, 0xdd, 4]];
const MAP_FORMS: readonly Form[] = [[15, 0x80, 0], [0xffff, 0xde, 2], [0xffffffff, 0xdf, 4]];
const NESTED_ARRAY = [0x91];
const NESTED_MAP = [0x81, 0xa1, 0x6e];

class VariantWriter {
  #parts: Uint8Array[] = [];
  #buf = Buffer.allocUnsafe(256);
  #n = 0;
  #t = 0;
  constructor(readonly tape: readonly number[]) {}

  #pick(n: number): number {
    return this.tape.length === 0 ? 0 : this.tape[this.#t++ % this.tape.length]! % n;
  }

  #byte(b: number): void {
    if (this.#n === this.#buf.length) this.#flush();
    this.#buf[this.#n++] = b & 0xff;
  }

  #flush(): void {
    if (this.#n > 0) this.#parts.push(Buffer.from(this.#buf.subarray(0, this.#n)));
    this.#n = 0;
  }

  #put(b: Uint8Array): void {
    this.#flush();
    this.#parts.push(b);
  }

  /** `n` as `bytes` big-endian bytes (two's complement for negatives). */
  #be(n: number, bytes: number): void {
    if (bytes === 8) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(n)));
      this.#put(b);
      return;
    }
    for (let i = bytes - 1; i >= 0; i--) this.#byte(Math.floor(n / 2 ** (8 * i)) & 0xff);
  }

  #head(len: number, forms: readonly Form[]): void {
    let ok = 0;
    while (ok < forms.length && forms[ok]![0] < len) ok++;
    const [, head, lenBytes] = forms[ok + this.#pick(forms.length - ok)]!;
    if (lenBytes === 0) this.#byte(head | len);
    else {
      this.#byte(head);
      this.#be(len, lenBytes);
    }
  }

  #float(v: number, single: boolean): void {
    const b = Buffer.alloc(single ? 4 : 8);
    if (single) b.writeFloatBE(v);
    else b.writeDoubleBE(v);
    this.#byte(single ? 0xca : 0xcb);
    this.#put(b);
  }

  #int(v: number): void {
    if (!Number.isSafeInteger(v)) return this.#float(v, Math.fround(v) === v && this.#pick(2) === 0);
    // [applies, head byte (-1: fixint), width]
    const forms: Array<[number, number]> = [];
    if (v >= 0 && v <= 0x7f) forms.push([-1, 0]);
    if (v >= -32 && v < 0) forms.push([-1, 0]);
    if (v >= 0 && v <= 0xff) forms.push([0xcc, 1]);
    if (v >= 0 && v <= 0xffff) forms.push([0xcd, 2]);
    if (v >= 0 && v <= 0xffffffff) forms.push([0xce, 4]);
    if (v >= 0) forms.push([0xcf, 8]);
    if (v >= -0x80 && v <= 0x7f) forms.push([0xd0, 1]);
    if (v >= -0x8000 && v <= 0x7fff) forms.push([0xd1, 2]);
    if (v >= -0x80000000 && v <= 0x7fffffff) forms.push([0xd2, 4]);
    forms.push([0xd3, 8], [0xcb, 0]);
    const [head, width] = forms[this.#pick(forms.length)]!;
    if (head === -1) this.#byte(v);
    else if (head === 0xcb) this.#float(v, false);
    else {
      this.#byte(head);
      this.#be(v < 0 && width < 8 ? 2 ** (8 * width) + v : v, width);
    }
  }

  write(v: unknown): void {
    if (v instanceof Raw) this.#put(v.bytes);
    else if (v instanceof Nested) {
      const one = v.asMap ? NESTED_MAP : NESTED_ARRAY;
      const b = Buffer.allocUnsafe(one.length * v.depth);
      for (let i = 0; i < b.length; i++) b[i] = one[i % one.length]!;
      this.#put(b);
      this.write(v.inner);
    } else if (v === null || v === undefined) this.#byte(0xc0);
    else if (v === true) this.#byte(0xc3);
    else if (v === false) this.#byte(0xc2);
    else if (typeof v === 'number') this.#int(v);
    else if (typeof v === 'string') {
      const b = Buffer.from(v, 'utf8');
      this.#head(b.length, STR_FORMS);
      this.#put(b);
    } else if (v instanceof Uint8Array) {
      this.#head(v.length, BIN_FORMS);
      this.#put(v);
    } else if (Array.isArray(v)) {
      this.#head(v.length, ARRAY_FORMS);
      for (const x of v) this.write(x);
    } else if (typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>);
      this.#head(entries.length, MAP_FORMS);
      for (const [k, x] of entries) {
        this.write(k);
        this.write(x);
      }
    } else throw new Error(`writeVariant cannot write a ${typeof v}`);
  }

  finish(): Buffer {
    this.#flush();
    return Buffer.concat(this.#parts);
  }
}
