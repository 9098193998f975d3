/**
 * A deliberately naive msgpack writer for golden tests: it can force the wide
 * encodings (map16, str8, bin32, uint32) another encoder might choose, so the
 * decoder is shown to accept any valid encoding, not only msgpackr's.
 */
export interface WriterStyle {
  wideMaps?: boolean;
  wideStrings?: boolean;
  wideInts?: boolean;
}

export function msgpack(value: unknown, style: WriterStyle = {}): Buffer {
  const out: number[] = [];
  const u16 = (n: number) => out.push((n >> 8) & 0xff, n & 0xff);
  const u32 = (n: number) => out.push((n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
  const bytes = (b: Uint8Array) => { for (const x of b) out.push(x); };
  const write = (v: unknown): void => {
    if (v === null) out.push(0xc0);
    else if (v === true) out.push(0xc3);
    else if (v === false) out.push(0xc2);
    else if (typeof v === 'number') {
      if (!Number.isInteger(v) || v < 0) throw new Error('writer handles non-negative integers only');
      if (style.wideInts) { out.push(0xce); u32(v); } else if (v < 128) out.push(v); else { out.push(0xce); u32(v); }
    } else if (typeof v === 'string') {
      const b = Buffer.from(v, 'utf8');
      if (!style.wideStrings && b.length < 32) out.push(0xa0 | b.length);
      else if (b.length < 256) out.push(0xd9, b.length);
      else { out.push(0xda); u16(b.length); }
      bytes(b);
    } else if (v instanceof Uint8Array) {
      out.push(0xc6); u32(v.length); bytes(v);
    } else if (Array.isArray(v)) {
      if (v.length < 16) out.push(0x90 | v.length); else { out.push(0xdc); u16(v.length); }
      v.forEach(write);
    } else if (typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>);
      if (!style.wideMaps && entries.length < 16) out.push(0x80 | entries.length); else { out.push(0xde); u16(entries.length); }
      for (const [k, x] of entries) { write(k); write(x); }
    } else throw new Error(`cannot write ${typeof v}`);
  };
  write(value);
  return Buffer.from(out);
}

/** Wraps a payload in the 4-byte big-endian length prefix. */
export function frame(payload: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(payload.length, 0);
  return Buffer.concat([head, payload]);
}
