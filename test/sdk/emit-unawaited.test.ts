import { describe, expect, it } from 'vitest';
import { decodePayload, encodeFrame, encodePayload, FrameDecoder } from '../../src/protocol/index.js';
import { createEmitAPI, EmitFailedError, EmitValidationError, SizeLimitError, unobservedEmitFailures } from '../../src/sdk/index.js';
import { FakeSink, runMeta } from '../_harness/fake-sink.js';
import { msgpack } from '../_harness/msgpack-writer.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('an emit the script did not await', () => {
  it('is kept as an unobserved failure when it fails validation, and not when the script awaited or caught it', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    void emit.item({ item_type: '', data: {} });
    await expect(emit.item({ item_type: '', data: {} })).rejects.toBeInstanceOf(EmitValidationError);
    emit.checkpoint({ checkpoint_id: '' }).catch(() => undefined);
    await tick();
    const lost = unobservedEmitFailures(emit);
    expect(lost.map((f) => f.method)).toEqual(['item']);
    expect(lost[0]!.error).toBeInstanceOf(EmitValidationError);
  });

  it('is kept when its frame is too large to write, and a late await takes it off the list', async () => {
    const sink = new FakeSink({ failWith: (f) => (f.type === 'item' ? new SizeLimitError('frame', 20_000_000, 16_777_216, 'item frame') : undefined) });
    const emit = createEmitAPI(sink, runMeta());
    const p = emit.item({ item_type: 'big', data: {} });
    await emit.info('after');
    await tick();
    expect(unobservedEmitFailures(emit)).toHaveLength(1);
    await expect(p).rejects.toBeInstanceOf(SizeLimitError);
    expect(unobservedEmitFailures(emit)).toHaveLength(0);
  });

  it('turns a later runComplete into run_error emit_failed, so the run cannot report success', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    await emit.item({ item_type: 'book', data: { n: 1 } });
    void emit.item({ item_type: 'book', data: 'not a map' as unknown as Record<string, unknown> });
    await expect(emit.runComplete()).rejects.toBeInstanceOf(EmitFailedError);
    const events = sink.events();
    expect(events.map((e) => e.type)).toEqual(['item', 'run_error']);
    expect(events[1]!.payload).toMatchObject({ error_type: 'emit_failed' });
    expect((events[1]!.payload as { message: string }).message).toMatch(/1 emit call the script did not await failed.*item\.data must be a map/);
  });

  it('leaves no seq gap: seq is assigned at write, and a failed call takes none', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    void emit.item({ item_type: 'a', data: {} });
    void emit.item({ item_type: '', data: {} });
    void emit.item({ item_type: 'b', data: {} });
    await emit.runError({ error_type: 'x', message: 'stop' });
    expect(sink.events().map((e) => [e.seq, e.type])).toEqual([[1, 'item'], [2, 'item'], [3, 'run_error']]);
  });
});

describe('the payload is taken when emit is called', () => {
  it('stores the value passed, not what the script changed before the frame was written', async () => {
    const sink = new FakeSink();
    sink.hold();
    const emit = createEmitAPI(sink, runMeta());
    const row = { title: 'before', tags: ['a'], nested: { n: 1 } };
    const bytes = Buffer.from('abc');
    const written = emit.item({ item_type: 'book', data: { row, bytes } });
    row.title = 'after';
    row.tags.push('b');
    row.nested.n = 2;
    bytes[0] = 0x7a;
    sink.release();
    await written;
    expect(sink.events()[0]!.payload).toEqual({ item_type: 'book', data: { row: { title: 'before', tags: ['a'], nested: { n: 1 } }, bytes: new Uint8Array(Buffer.from('abc')) } });
  });

  it('refuses a cyclic payload at call time with a validation error, not a stack overflow at write', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    await expect(emit.item({ item_type: 'x', data: cyclic })).rejects.toThrow(/nested deeper than/);
    expect(sink.attempts).toBe(0);
  });
});

describe('a Date in a payload (SPEC §1.3: no extension types, times are ISO strings)', () => {
  it('goes out as its ISO string: the frame bytes equal a hand-written msgpack map of strings', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    const when = new Date(Date.UTC(2026, 10, 23, 12, 34, 56, 789));
    await emit.item({ item_type: 'x', data: { when, list: [when], bad: new Date(Number.NaN) } });
    const payload = sink.events()[0]!.payload;
    const golden = msgpack({ item_type: 'x', data: { when: '2026-11-23T12:34:56.789Z', list: ['2026-11-23T12:34:56.789Z'], bad: null } });
    expect(encodePayload(payload).equals(golden)).toBe(true);
    const d = new FrameDecoder();
    const [decoded] = d.push(encodeFrame(sink.events()[0]));
    expect((decoded as { payload: unknown }).payload).toEqual(decodePayload(golden));
  });
});
