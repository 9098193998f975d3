import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder, FrameError } from '../../src/protocol/codec.js';
import { MAX_FRAME_BYTES } from '../../src/protocol/frames.js';

describe('frame codec', () => {
  it('omits undefined fields and uses no extension types', () => {
    const bytes = encodeFrame({ a: 1, b: undefined, c: 'x' });
    const d = new FrameDecoder();
    expect(d.push(bytes)).toEqual([{ a: 1, c: 'x' }]);
    // No fixext/ext markers (0xd4-0xd8, 0xc7-0xc9) in the payload.
    for (const b of bytes.subarray(4)) expect([0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8]).not.toContain(b);
  });

  it('decodes the same frames however the stream is split', () => {
    const values = Array.from({ length: 50 }, (_, i) => ({ i, s: 'x'.repeat(i * 7), bin: Buffer.alloc(i, i) }));
    const stream = Buffer.concat(values.map((v) => encodeFrame(v)));
    for (const step of [1, 3, 7, 64, 1000, stream.length]) {
      const d = new FrameDecoder();
      const got: unknown[] = [];
      for (let off = 0; off < stream.length; off += step) got.push(...d.push(stream.subarray(off, off + step)));
      d.end();
      expect(got).toHaveLength(values.length);
      expect((got[49] as { s: string }).s).toBe(values[49]!.s);
      expect(Buffer.from((got[10] as { bin: Uint8Array }).bin)).toEqual(values[10]!.bin);
    }
  });

  it('a truncated stream is a fatal error naming the byte offset', () => {
    const good = encodeFrame({ ok: true });
    const bad = encodeFrame({ half: 'a'.repeat(100) }).subarray(0, 50);
    const d = new FrameDecoder();
    expect(d.push(Buffer.concat([good, bad]))).toHaveLength(1);
    const err = (() => { try { d.end(); } catch (e) { return e; } })();
    expect(err).toBeInstanceOf(FrameError);
    expect((err as FrameError).kind).toBe('truncated');
    expect((err as FrameError).offset).toBe(good.length);
  });

  it('an oversize length prefix is refused before its payload arrives', () => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(MAX_FRAME_BYTES, 0); // + 4 prefix bytes = over the limit
    const d = new FrameDecoder();
    expect(() => d.push(head)).toThrow(/oversize frame at byte 0/);
    expect(() => d.push(Buffer.alloc(1))).toThrow(FrameError); // no resynchronisation
  });

  it('a payload that is not msgpack is a malformed frame', () => {
    // An array that promises two elements but holds one, and a value with trailing bytes.
    for (const payload of [Buffer.from([0x92, 0x01]), Buffer.from([0x01, 0x02])]) {
      const head = Buffer.alloc(4);
      head.writeUInt32BE(payload.length, 0);
      expect(() => new FrameDecoder().push(Buffer.concat([head, payload]))).toThrow(/malformed frame at byte 0/);
    }
  });

  it('refuses to encode a frame over 16 MiB', () => {
    expect(() => encodeFrame({ data: Buffer.alloc(MAX_FRAME_BYTES) })).toThrow(RangeError);
  });
});

describe('frame codec error delivery', () => {
  it('returns the good frames before a bad one, then throws', () => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(MAX_FRAME_BYTES);
    const d = new FrameDecoder();
    expect(d.push(Buffer.concat([encodeFrame({ n: 1 }), encodeFrame({ n: 2 }), head]))).toEqual([{ n: 1 }, { n: 2 }]);
    expect(() => d.end()).toThrow(/oversize frame at byte \d+/);
  });
});
