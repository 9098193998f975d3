import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FrameWriter } from '../../src/executor/frame-writer.js';
import { FrameDecoder, MAX_FRAME_BYTES } from '../../src/protocol/index.js';
import { SizeLimitError } from '../../src/sdk/index.js';

const item = (i: number, data: Record<string, unknown> = {}) => ({
  contract_version: '1.0.0',
  event_id: `e${i}`,
  run_id: 'r',
  seq: i,
  type: 'item' as const,
  ts: '2024-01-01T00:00:00.000Z',
  payload: { item_type: 't', data },
  attempt: 1,
});

/** A writable whose writes complete only when the test calls `flush`. */
class ManualWritable extends Writable {
  readonly pending: (() => void)[] = [];
  readonly chunks: Buffer[] = [];
  constructor() {
    super({ highWaterMark: 1 });
  }
  override _write(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.pending.push(() => {
      this.chunks.push(chunk);
      cb();
    });
  }
  flush(): void {
    for (const p of this.pending.splice(0)) p();
  }
}

describe('FrameWriter', () => {
  it('holds a write while the stream is over its high-water mark, until it drains', async () => {
    const out = new ManualWritable();
    const writer = new FrameWriter(out);
    let done = false;
    // A terminal event is handed over at once (small events may wait for company).
    const complete = { ...item(1), type: 'run_complete' as const, payload: {} };
    const p = writer.write(complete).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(done).toBe(false);
    out.flush();
    await p;
    expect(done).toBe(true);
    expect(new FrameDecoder().push(Buffer.concat(out.chunks))).toEqual([complete]);
  });

  it('gathers small events into one stream write, handed over on the next turn at the latest', async () => {
    const out = new ManualWritable();
    const writer = new FrameWriter(out);
    for (let i = 1; i <= 5; i++) await writer.write(item(i));
    expect(out.pending).toHaveLength(0);
    await new Promise((r) => setImmediate(r));
    expect(out.pending).toHaveLength(1);
    out.flush();
    expect(new FrameDecoder().push(Buffer.concat(out.chunks))).toEqual([1, 2, 3, 4, 5].map((i) => item(i)));
  });

  it('a script emitting in a loop stalls once 64 KiB are gathered and the stream is full', async () => {
    const out = new ManualWritable();
    const writer = new FrameWriter(out);
    let resolved = 0;
    const big = 'x'.repeat(4096);
    const loop = (async () => {
      for (let i = 1; i <= 40; i++) {
        await writer.write(item(i, { big }));
        resolved++;
      }
    })();
    await new Promise((r) => setTimeout(r, 20));
    // About 16 frames fill 64 KiB; the next write hands them over and waits for the stream.
    expect(resolved).toBeGreaterThan(10);
    expect(resolved).toBeLessThan(20);
    while (resolved < 40) {
      out.flush();
      await new Promise((r) => setTimeout(r, 5));
    }
    await loop;
    let ended = false;
    const end = writer.end().then(() => (ended = true));
    while (!ended) {
      out.flush();
      await new Promise((r) => setTimeout(r, 5));
    }
    await end;
    expect(new FrameDecoder().push(Buffer.concat(out.chunks))).toHaveLength(40);
  });

  it('refuses a frame over 16 MiB with SizeLimitError and writes nothing', async () => {
    const out = new PassThrough();
    const writer = new FrameWriter(out);
    const err = await writer.write(item(1, { blob: 'x'.repeat(MAX_FRAME_BYTES) })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SizeLimitError);
    expect((err as SizeLimitError).subject).toBe('frame');
    expect((err as SizeLimitError).bytes).toBeGreaterThan(MAX_FRAME_BYTES);
    expect(out.readableLength).toBe(0);
    await writer.write(item(2));
    await writer.flush();
    expect(out.readableLength).toBeGreaterThan(0);
  });

  it('rejects the failing write and every later one once the stream errors', async () => {
    const out = new Writable({ write: (_c, _e, cb) => cb(new Error('EPIPE')) });
    const writer = new FrameWriter(out);
    await writer.write(item(1));
    await expect(writer.flush()).rejects.toThrow('EPIPE');
    await expect(writer.write(item(2))).rejects.toThrow('EPIPE');
    expect(writer.failure?.message).toBe('EPIPE');
  });

  it('ends after everything written was flushed', async () => {
    const out = new ManualWritable();
    const writer = new FrameWriter(out);
    const w = writer.write(item(1));
    const ended = writer.end();
    out.flush();
    await Promise.all([w, ended]);
    expect(out.writableFinished).toBe(true);
    await expect(writer.end()).resolves.toBeUndefined();
  });
});
