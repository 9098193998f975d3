import { describe, expect, it } from 'vitest';
import { MAX_CHUNK_BYTES, type ArtifactChunkFrame } from '../../src/protocol/index.js';
import { createEmitAPI, SizeLimitError } from '../../src/sdk/index.js';
import { FakeSink, runMeta } from '../_harness/fake-sink.js';

const chunksOf = (sink: FakeSink): ArtifactChunkFrame[] => sink.frames.filter((f): f is ArtifactChunkFrame => f.type === 'artifact_chunk');

describe('emit.artifact', () => {
  it('writes an empty artifact as one empty last chunk, then the commit event with size 0', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    const id = await emit.artifact({ name: 'empty.bin', content_type: 'application/octet-stream', data: new Uint8Array(0) });
    expect(sink.frames).toHaveLength(2);
    expect(sink.frames[0]).toMatchObject({ type: 'artifact_chunk', artifact_id: id, seq: 1, is_last: true });
    expect((sink.frames[0] as ArtifactChunkFrame).data.byteLength).toBe(0);
    expect(sink.frames[1]).toMatchObject({ type: 'artifact', seq: 1, payload: { artifact_id: id, name: 'empty.bin', content_type: 'application/octet-stream', size_bytes: 0 } });
  });

  it('splits more than 8 MiB into chunks of at most 8 MiB, seq from 1, is_last only on the final one, bytes intact', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    const data = Buffer.alloc(2 * MAX_CHUNK_BYTES + 123);
    for (let i = 0; i < data.length; i += 4096) data[i] = (i / 4096) % 251;
    const id = await emit.artifact({ name: 'big.bin', content_type: 'application/octet-stream', data });
    const chunks = chunksOf(sink);
    expect(chunks.map((c) => [c.seq, c.data.byteLength, c.is_last])).toEqual([
      [1, MAX_CHUNK_BYTES, false],
      [2, MAX_CHUNK_BYTES, false],
      [3, 123, true],
    ]);
    expect(chunks.every((c) => c.artifact_id === id)).toBe(true);
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(data)).toBe(true);
    expect(sink.frames.at(-1)).toMatchObject({ type: 'artifact', payload: { size_bytes: data.length } });
  });

  it('writes exactly 8 MiB as a single last chunk', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    await emit.artifact({ name: 'x', content_type: 'application/octet-stream', data: new Uint8Array(MAX_CHUNK_BYTES) });
    expect(chunksOf(sink).map((c) => [c.seq, c.is_last])).toEqual([[1, true]]);
  });

  it('encodes string data as UTF-8 and counts bytes, not characters', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    await emit.artifact({ name: 'page.html', content_type: 'text/html', data: 'héllo' });
    expect(Buffer.from(chunksOf(sink)[0]!.data).toString('utf8')).toBe('héllo');
    expect(sink.frames.at(-1)).toMatchObject({ payload: { size_bytes: 6 } });
  });

  it('gives each artifact its own id', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta());
    const a = await emit.artifact({ name: 'a', content_type: 'text/plain', data: 'a' });
    const b = await emit.artifact({ name: 'b', content_type: 'text/plain', data: 'b' });
    expect(a).not.toBe(b);
  });

  it('refuses an artifact over the ceiling before writing any byte', async () => {
    const sink = new FakeSink();
    const emit = createEmitAPI(sink, runMeta(), { maxArtifactBytes: 10 });
    await expect(emit.artifact({ name: 'a', content_type: 'text/plain', data: new Uint8Array(11) })).rejects.toBeInstanceOf(SizeLimitError);
    expect(sink.attempts).toBe(0);
    await emit.item({ item_type: 'still-open', data: {} });
  });
});
