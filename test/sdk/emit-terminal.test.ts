import { describe, expect, it } from 'vitest';
import { createEmitAPI, createStorageAPI, SinkFailedError, TerminalEventError, type EmitAPI, type StorageAPI } from '../../src/sdk/index.js';
import { FakeSink, runMeta } from '../_harness/fake-sink.js';

/** One call of every emit method and storage.put. */
function everyMethod(emit: EmitAPI, storage: StorageAPI): [string, () => Promise<unknown>][] {
  return [
    ['item', () => emit.item({ item_type: 't', data: {} })],
    ['artifact', () => emit.artifact({ name: 'a', content_type: 'text/plain', data: 'x' })],
    ['checkpoint', () => emit.checkpoint({ checkpoint_id: 'c' })],
    ['enqueue', () => emit.enqueue({ target: 't.ts', params: {} })],
    ['rotateProxy', () => emit.rotateProxy()],
    ['log', () => emit.log({ level: 'info', message: 'm' })],
    ['debug', () => emit.debug('m')],
    ['info', () => emit.info('m')],
    ['warn', () => emit.warn('m')],
    ['error', () => emit.error('m')],
    ['runError', () => emit.runError({ error_type: 'e', message: 'm' })],
    ['runComplete', () => emit.runComplete()],
    ['storage.put', () => storage.put({ filename: 'f.txt', content_type: 'text/plain', data: 'x' })],
  ];
}

describe('terminal events', () => {
  for (const terminal of ['runComplete', 'runError'] as const) {
    it(`after ${terminal} every emit method and storage.put reject with TerminalEventError and write nothing`, async () => {
      const sink = new FakeSink({ autoAck: true });
      const emit = createEmitAPI(sink, runMeta());
      const storage = createStorageAPI(emit);
      await emit.item({ item_type: 'before', data: {} });
      if (terminal === 'runComplete') await emit.runComplete({ summary: { n: 1 } });
      else await emit.runError({ error_type: 'x', message: 'y' });
      const written = sink.attempts;
      for (const [name, call] of everyMethod(emit, storage)) {
        const err = await call().then(() => undefined, (e: unknown) => e);
        expect(err, name).toBeInstanceOf(TerminalEventError);
        expect((err as TerminalEventError).method).toBe(name);
        expect((err as TerminalEventError).terminal).toBe(terminal === 'runComplete' ? 'run_complete' : 'run_error');
      }
      expect(sink.attempts).toBe(written);
      expect(sink.events().at(-1)!.type).toBe(terminal === 'runComplete' ? 'run_complete' : 'run_error');
    });
  }

  it('refuses calls made right after runComplete() even before its write finished', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    sink.hold();
    const done = emit.runComplete();
    await expect(emit.item({ item_type: 't', data: {} })).rejects.toBeInstanceOf(TerminalEventError);
    sink.release();
    await done;
    expect(sink.events().map((e) => e.type)).toEqual(['run_complete']);
  });

  it('lets calls made before the terminal event finish first, in order', async () => {
    const sink = new FakeSink({ delayMs: () => 2 });
    const emit = createEmitAPI(sink, runMeta());
    const a = emit.item({ item_type: 'a', data: {} });
    const c = emit.runComplete();
    await Promise.all([a, c]);
    expect(sink.events().map((e) => [e.seq, e.type])).toEqual([[1, 'item'], [2, 'run_complete']]);
  });
});

describe('sink failure poisons the chain', () => {
  it('rejects the failing call and every later call with SinkFailedError whose cause is the original error', async () => {
    const boom = new Error('EPIPE: broken pipe');
    const sink = new FakeSink({ failWith: (_f, i) => (i === 1 ? boom : undefined), autoAck: true });
    const emit = createEmitAPI(sink, runMeta());
    const storage = createStorageAPI(emit);
    await emit.item({ item_type: 'ok', data: {} });
    const first = await emit.item({ item_type: 'fails', data: {} }).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(SinkFailedError);
    expect((first as SinkFailedError).cause).toBe(boom);
    for (const [name, call] of everyMethod(emit, storage)) {
      const err = await call().then(() => undefined, (e: unknown) => e);
      expect(err, name).toBeInstanceOf(SinkFailedError);
      expect((err as SinkFailedError).cause, name).toBe(boom);
    }
    expect(sink.attempts).toBe(2);
    expect(sink.frames).toHaveLength(1);
  });

  it('rejects calls already queued behind the failing write without writing them', async () => {
    const boom = new Error('pipe closed');
    const sink = new FakeSink({ delayMs: () => 2, failWith: (_f, i) => (i === 0 ? boom : undefined) });
    const emit = createEmitAPI(sink, runMeta());
    const results = await Promise.allSettled([
      emit.item({ item_type: 'a', data: {} }),
      emit.item({ item_type: 'b', data: {} }),
      emit.artifact({ name: 'c', content_type: 'text/plain', data: 'c' }),
      emit.runComplete(),
    ]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(SinkFailedError);
      expect(((r as PromiseRejectedResult).reason as SinkFailedError).cause).toBe(boom);
    }
    expect(sink.attempts).toBe(1);
  });

  it('poisons on a failed artifact chunk, so no commit event follows partial bytes', async () => {
    const boom = new Error('write failed');
    const sink = new FakeSink({ failWith: (f) => (f.type === 'artifact_chunk' && f.seq === 2 ? boom : undefined) });
    const emit = createEmitAPI(sink, runMeta(), { chunkBytes: 2 });
    await expect(emit.artifact({ name: 'a', content_type: 'text/plain', data: 'abcdef' })).rejects.toBeInstanceOf(SinkFailedError);
    await expect(emit.item({ item_type: 'x', data: {} })).rejects.toBeInstanceOf(SinkFailedError);
    expect(sink.frames.map((f) => f.type)).toEqual(['artifact_chunk']);
  });
});
