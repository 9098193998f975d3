import { describe, expect, it } from 'vitest';
import { createBatcher, createEmitAPI } from '../../src/sdk/index.js';
import { FakeSink, runMeta } from '../_harness/fake-sink.js';

describe('createBatcher', () => {
  it('emits one enqueue per `size` items with params.items, and the rest on flush', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    const b = createBatcher<{ url: string }>(emit, { size: 3, target: 'detail.ts', source: 'shop', category: 'shoes' });
    for (let i = 0; i < 7; i++) await b.add({ url: `u${i}` });
    expect(b.pending).toBe(1);
    await b.flush();
    expect(b.pending).toBe(0);
    expect(sink.events().map((e) => e.payload)).toEqual([
      { target: 'detail.ts', params: { items: [{ url: 'u0' }, { url: 'u1' }, { url: 'u2' }] }, source: 'shop', category: 'shoes' },
      { target: 'detail.ts', params: { items: [{ url: 'u3' }, { url: 'u4' }, { url: 'u5' }] }, source: 'shop', category: 'shoes' },
      { target: 'detail.ts', params: { items: [{ url: 'u6' }] }, source: 'shop', category: 'shoes' },
    ]);
  });

  it('does nothing on flush when empty and omits absent source/category', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    const b = createBatcher(emit, { size: 2, target: 't.ts' });
    await b.flush();
    expect(sink.attempts).toBe(0);
    await b.add({ a: 1 });
    await b.add({ a: 2 });
    expect(sink.events()[0]!.payload).toEqual({ target: 't.ts', params: { items: [{ a: 1 }, { a: 2 }] } });
  });

  it('puts items added while a batch is being written into the next batch', async () => {
    const sink = new FakeSink({ delayMs: () => 2 });
    const emit = createEmitAPI(sink, runMeta());
    const b = createBatcher<number>(emit, { size: 2, target: 't.ts' });
    const p1 = b.add(1);
    const p2 = b.add(2);
    const p3 = b.add(3);
    await Promise.all([p1, p2, p3, b.flush()]);
    expect(sink.events().map((e) => (e.payload as { params: { items: number[] } }).params.items)).toEqual([[1, 2], [3]]);
  });

  it('rejects a size that is not a positive integer and an empty target', () => {
    const emit = createEmitAPI(new FakeSink(), runMeta());
    expect(() => createBatcher(emit, { size: 0, target: 't' })).toThrow(RangeError);
    expect(() => createBatcher(emit, { size: 1.5, target: 't' })).toThrow(/positive integer, got 1.5/);
    expect(() => createBatcher(emit, { size: 1, target: '' })).toThrow(TypeError);
  });
});
