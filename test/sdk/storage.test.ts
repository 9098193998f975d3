import { describe, expect, it } from 'vitest';
import { MAX_CHUNK_BYTES, type FileWriteFrame } from '../../src/protocol/index.js';
import { createEmitAPI, createStorageAPI, SizeLimitError, StorageFilenameError, StorageWriteError } from '../../src/sdk/index.js';
import { FakeSink, runMeta } from '../_harness/fake-sink.js';

const partition = { dataset: 'quarry', source: 'shop', category: 'default', day: '2024-05-01', run_id: 'run-1' };

function setup(opts: ConstructorParameters<typeof FakeSink>[0] = { autoAck: true }) {
  const sink = new FakeSink(opts);
  const emit = createEmitAPI(sink, runMeta());
  const storage = createStorageAPI(emit, { partition });
  return { sink, emit, storage };
}

describe('storage.put', () => {
  it('sends one file_write frame with write_id from 1 and returns the run partition key of files/<filename>', async () => {
    const { sink, storage } = setup();
    const r1 = await storage.put({ filename: 'page.html', content_type: 'text/html', data: '<html></html>' });
    const r2 = await storage.put({ filename: 'shot.png', content_type: 'image/png', data: new Uint8Array([1, 2, 3]) });
    expect(r1.key).toBe('datasets/quarry/partitions/source=shop/category=default/day=2024-05-01/run_id=run-1/files/page.html');
    expect(r2.key).toBe('datasets/quarry/partitions/source=shop/category=default/day=2024-05-01/run_id=run-1/files/shot.png');
    const writes = sink.frames as FileWriteFrame[];
    expect(writes.map((w) => [w.type, w.write_id, w.filename, w.content_type])).toEqual([
      ['file_write', 1, 'page.html', 'text/html'],
      ['file_write', 2, 'shot.png', 'image/png'],
    ]);
    expect(Buffer.from(writes[0]!.data).toString()).toBe('<html></html>');
  });

  it('without a partition in the run request returns the key relative to the run folder', async () => {
    const sink = new FakeSink({ autoAck: true });
    const storage = createStorageAPI(createEmitAPI(sink, runMeta()));
    expect(await storage.put({ filename: 'a.txt', content_type: 'text/plain', data: 'a' })).toEqual({ key: 'files/a.txt' });
  });

  for (const bad of ['../x', 'a/b', 'a\\b', '', '..', '.']) {
    it(`rejects filename ${JSON.stringify(bad)} with StorageFilenameError and writes nothing`, async () => {
      const { sink, storage } = setup();
      const err = await storage.put({ filename: bad, content_type: 'text/plain', data: 'x' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageFilenameError);
      expect((err as StorageFilenameError).filename).toBe(bad);
      expect(sink.attempts).toBe(0);
    });
  }

  it('accepts exactly 8 MiB and refuses one byte more with SizeLimitError', async () => {
    const { sink, storage } = setup();
    await storage.put({ filename: 'max.bin', content_type: 'application/octet-stream', data: new Uint8Array(MAX_CHUNK_BYTES) });
    await expect(storage.put({ filename: 'over.bin', content_type: 'application/octet-stream', data: new Uint8Array(MAX_CHUNK_BYTES + 1) })).rejects.toBeInstanceOf(SizeLimitError);
    expect(sink.attempts).toBe(1);
  });

  it('rejects with StorageWriteError when the ack says ok:false, and the run goes on', async () => {
    const { sink, emit, storage } = setup({ autoAck: (f) => ({ type: 'file_write_ack', write_id: f.write_id, ok: false, error: 'disk full' }) });
    const err = await storage.put({ filename: 'a.txt', content_type: 'text/plain', data: 'a' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageWriteError);
    expect((err as Error).message).toMatch(/disk full/);
    await emit.item({ item_type: 'after', data: {} });
    await emit.runComplete();
    expect(sink.events().map((e) => e.type)).toEqual(['item', 'run_complete']);
  });

  it('waits for the ack off the chain: emits made after a put are written while the put awaits its ack', async () => {
    const { sink, emit, storage } = setup({});
    let acked = false;
    const put = storage.put({ filename: 'a.txt', content_type: 'text/plain', data: 'a' }).then((r) => {
      acked = true;
      return r;
    });
    await emit.item({ item_type: 'next', data: {} });
    expect(acked).toBe(false);
    expect(sink.frames.map((f) => f.type)).toEqual(['file_write', 'item']);
    sink.ack({ type: 'file_write_ack', write_id: 1, ok: true });
    await put;
    expect(acked).toBe(true);
  });

  it('matches acks to writes by write_id, in whatever order they arrive', async () => {
    const { sink, storage } = setup({});
    const a = storage.put({ filename: 'a.txt', content_type: 'text/plain', data: 'a' });
    const b = storage.put({ filename: 'b.txt', content_type: 'text/plain', data: 'b' });
    await new Promise((r) => setTimeout(r, 5));
    sink.ack({ type: 'file_write_ack', write_id: 2, ok: true });
    sink.ack({ type: 'file_write_ack', write_id: 1, ok: false, error: 'nope' });
    await expect(b).resolves.toMatchObject({ key: expect.stringMatching(/files\/b\.txt$/) });
    await expect(a).rejects.toThrow(/nope/);
  });

  it('rejects with StorageWriteError when the ack channel closes before the ack arrives', async () => {
    const { sink, storage } = setup({});
    const p = storage.put({ filename: 'a.txt', content_type: 'text/plain', data: 'a' });
    await new Promise((r) => setTimeout(r, 5));
    sink.closeAcks(new Error('stdin closed'));
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageWriteError);
    expect((err as StorageWriteError).cause).toBeInstanceOf(Error);
  });

  it('shares the emit chain: file_write frames keep call order with events and consume no seq', async () => {
    const { sink, emit, storage } = setup({ autoAck: true, delayMs: () => 1 });
    await Promise.all([
      emit.item({ item_type: 'a', data: {} }),
      storage.put({ filename: 'f.txt', content_type: 'text/plain', data: 'f' }),
      emit.item({ item_type: 'b', data: {} }),
    ]);
    expect(sink.frames.map((f) => f.type)).toEqual(['item', 'file_write', 'item']);
    expect(sink.events().map((e) => e.seq)).toEqual([1, 2]);
  });

  it('refuses an emit API it did not create', () => {
    expect(() => createStorageAPI({} as never)).toThrow(TypeError);
  });
});
