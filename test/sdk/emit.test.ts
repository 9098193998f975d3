import { describe, expect, it } from 'vitest';
import { CONTRACT_VERSION, checkEnvelope } from '../../src/protocol/index.js';
import { createEmitAPI, EmitValidationError, SizeLimitError } from '../../src/sdk/index.js';
import { FakeSink, runMeta } from '../_harness/fake-sink.js';

describe('emit envelope', () => {
  it('writes every event with contract_version, run identity, seq from 1, ISO UTC ts and a unique event_id', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta({ attempt: 2, job_id: 'job-9', parent_run_id: 'run-0' }), { now: () => new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)) });
    await emit.item({ item_type: 'product', data: { sku: 'a' } });
    await emit.info('hello', { n: 1 });
    const [a, b] = sink.events();
    expect(a).toMatchObject({ contract_version: CONTRACT_VERSION, run_id: 'run-1', seq: 1, type: 'item', attempt: 2, job_id: 'job-9', parent_run_id: 'run-0', ts: '2024-01-02T03:04:05.006Z' });
    expect(b).toMatchObject({ seq: 2, type: 'log', payload: { level: 'info', message: 'hello', fields: { n: 1 } } });
    expect(a!.event_id).not.toBe(b!.event_id);
    expect(checkEnvelope(a as unknown as Record<string, unknown>)).toBeUndefined();
  });

  it('omits job_id, parent_run_id and absent optional payload fields instead of writing undefined', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    await emit.checkpoint({ checkpoint_id: 'c1' });
    await emit.rotateProxy();
    await emit.enqueue({ target: 'detail.ts', params: { id: 1 } });
    await emit.runComplete();
    for (const e of sink.events()) {
      expect(Object.keys(e)).not.toContain('job_id');
      expect(Object.keys(e)).not.toContain('parent_run_id');
      expect(Object.values(e.payload as object)).not.toContain(undefined);
    }
    expect(sink.events().map((e) => e.payload)).toEqual([{ checkpoint_id: 'c1' }, {}, { target: 'detail.ts', params: { id: 1 } }, {}]);
  });

  it('maps every method to its event type and payload', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    await emit.item({ item_type: 't', data: { x: 1 } });
    await emit.checkpoint({ checkpoint_id: 'c', note: 'n' });
    await emit.enqueue({ target: 't.ts', params: {}, source: 's', category: 'c' });
    await emit.rotateProxy({ reason: 'blocked' });
    await emit.log({ level: 'warn', message: 'm' });
    await emit.debug('d');
    await emit.warn('w');
    await emit.error('e', { code: 5 });
    await emit.runError({ error_type: 'blocked', message: 'captcha', stack: 'at x' });
    expect(sink.events().map((e) => [e.type, e.payload])).toEqual([
      ['item', { item_type: 't', data: { x: 1 } }],
      ['checkpoint', { checkpoint_id: 'c', note: 'n' }],
      ['enqueue', { target: 't.ts', params: {}, source: 's', category: 'c' }],
      ['rotate_proxy', { reason: 'blocked' }],
      ['log', { level: 'warn', message: 'm' }],
      ['log', { level: 'debug', message: 'd' }],
      ['log', { level: 'warn', message: 'w' }],
      ['log', { level: 'error', message: 'e', fields: { code: 5 } }],
      ['run_error', { error_type: 'blocked', message: 'captcha', stack: 'at x' }],
    ]);
  });

  it('resolves an emit only once the sink has finished writing its frame', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    sink.hold();
    let done = false;
    const p = emit.item({ item_type: 't', data: {} }).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    expect(sink.frames).toHaveLength(0);
    sink.release();
    await p;
    expect(done).toBe(true);
    expect(sink.frames).toHaveLength(1);
  });
});

describe('emit ordering', () => {
  it('writes frames in call order with seq 1..N and no gaps when calls are not awaited and writes take random time', async () => {
    const sink = new FakeSink({ delayMs: () => Math.floor(Math.random() * 3) });
    const emit = createEmitAPI(sink, runMeta());
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      if (i % 10 === 3) calls.push(emit.artifact({ name: `a${i}`, content_type: 'text/plain', data: `bytes ${i}` }));
      else if (i % 10 === 7) calls.push(emit.log({ level: 'info', message: `m${i}` }));
      else calls.push(emit.item({ item_type: 'n', data: { i } }));
    }
    await Promise.all(calls);
    const events = sink.events();
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 200 }, (_, k) => k + 1));
    const order = events.map((e) => {
      if (e.type === 'item') return (e.payload.data as { i: number }).i;
      if (e.type === 'log') return Number(e.payload.message.slice(1));
      if (e.type === 'artifact') return Number(e.payload.name.slice(1));
      return -1;
    });
    expect(order).toEqual(Array.from({ length: 200 }, (_, k) => k));
    expect(sink.maxConcurrentWrites).toBe(1);
  });

  it('keeps each artifact\'s chunks right before its commit event, never interleaved with other calls', async () => {
    const sink = new FakeSink({ delayMs: () => 1 });
    const emit = createEmitAPI(sink, runMeta(), { chunkBytes: 4 });
    const a = emit.artifact({ name: 'a', content_type: 'application/octet-stream', data: new Uint8Array(10) });
    const i = emit.item({ item_type: 'x', data: {} });
    const id = await a;
    await i;
    expect(sink.frames.map((f) => f.type)).toEqual(['artifact_chunk', 'artifact_chunk', 'artifact_chunk', 'artifact', 'item']);
    expect(sink.frames.slice(0, 3).every((f) => f.type === 'artifact_chunk' && f.artifact_id === id)).toBe(true);
  });

  it('rejects a call with invalid arguments without writing or consuming a seq', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    await expect(emit.item({ item_type: '', data: {} })).rejects.toBeInstanceOf(EmitValidationError);
    await expect(emit.item({ item_type: 'x', data: [] as unknown as Record<string, unknown> })).rejects.toThrow(/data must be a map/);
    await expect(emit.log({ level: 'loud' as 'info', message: 'x' })).rejects.toBeInstanceOf(EmitValidationError);
    await expect(emit.enqueue({ target: '', params: {} })).rejects.toBeInstanceOf(EmitValidationError);
    await expect(emit.artifact({ name: 'x', content_type: 'text/plain', data: 5 as unknown as string })).rejects.toBeInstanceOf(EmitValidationError);
    await emit.item({ item_type: 'ok', data: {} });
    expect(sink.attempts).toBe(1);
    expect(sink.events()[0]!.seq).toBe(1);
  });

  it('treats a frame too large to encode as that call\'s failure only: no poison, no seq used', async () => {
    const sink = new FakeSink({ failWith: (_f, i) => (i === 1 ? new SizeLimitError('frame', 17e6, 16 * 1024 * 1024) : undefined) });
    const emit = createEmitAPI(sink, runMeta());
    await emit.item({ item_type: 'a', data: {} });
    await expect(emit.item({ item_type: 'huge', data: {} })).rejects.toBeInstanceOf(SizeLimitError);
    await emit.item({ item_type: 'b', data: {} });
    await emit.runComplete();
    expect(sink.events().map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('returns a frozen API', () => {
    const emit = createEmitAPI(new FakeSink(), runMeta());
    expect(Object.isFrozen(emit)).toBe(true);
  });
});
