import { describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../src/protocol/codec.js';
import { toExecutorFrame } from '../../src/protocol/frames.js';
import { frame, msgpack, type WriterStyle } from '../_harness/msgpack-writer.js';

const decodeOne = (bytes: Buffer) => {
  const d = new FrameDecoder();
  const frames = d.push(bytes);
  d.end();
  expect(frames).toHaveLength(1);
  return toExecutorFrame(frames[0]);
};

describe('golden frames written by hand from the field lists', () => {
  it('a run_result frame typed out byte by byte decodes to its object', () => {
    // fixmap(2) "type" "run_result" "outcome" fixmap(1) "status" "completed"
    const hex = '0000002b' + '82' + 'a474797065' + 'aa72756e5f726573756c74' + 'a76f7574636f6d65' + '81' + 'a6737461747573' + 'a9636f6d706c65746564';
    expect(decodeOne(Buffer.from(hex, 'hex'))).toEqual({ type: 'run_result', outcome: { status: 'completed' } });
  });

  const item = {
    contract_version: '1.0.0', event_id: 'ev-1', run_id: 'run-1', seq: 1, type: 'item', ts: '2026-11-22T00:00:00.000Z',
    payload: { item_type: 'book', data: { title: 'Salt and Iron', price_cents: 1299 } }, attempt: 1, job_id: 'job-7',
  };
  const chunk = { type: 'artifact_chunk', artifact_id: 'a1', seq: 1, is_last: true, data: new Uint8Array([1, 2, 3, 250]) };
  const fileWrite = { type: 'file_write', write_id: 1, filename: 'page.html', content_type: 'text/html', data: new Uint8Array(Buffer.from('<p>hi</p>')) };
  const runResult = { type: 'run_result', outcome: { status: 'error', message: 'boom', error_type: 'TypeError', stack: 'at x' }, proxy_used: { protocol: 'http', host: '127.0.0.1', port: 3128, username: 'u' } };
  const styles: Array<[string, WriterStyle]> = [['compact (fixmap, fixstr)', {}], ['wide (map16, str8, uint32)', { wideMaps: true, wideStrings: true, wideInts: true }]];

  for (const [label, style] of styles) {
    it(`an item event envelope decodes with every field (${label})`, () => {
      expect(decodeOne(frame(msgpack(item, style)))).toEqual(item);
    });
    it(`an artifact_chunk with binary data decodes to the same bytes (${label})`, () => {
      const f = decodeOne(frame(msgpack(chunk, style)));
      expect(f.type).toBe('artifact_chunk');
      expect(Buffer.from((f as typeof chunk).data)).toEqual(Buffer.from([1, 2, 3, 250]));
    });
    it(`a file_write frame decodes (${label})`, () => {
      const f = decodeOne(frame(msgpack(fileWrite, style))) as typeof fileWrite;
      expect(f.write_id).toBe(1);
      expect(Buffer.from(f.data).toString()).toBe('<p>hi</p>');
    });
    it(`a run_result with proxy_used decodes (${label})`, () => {
      expect(decodeOne(frame(msgpack(runResult, style)))).toEqual(runResult);
    });
  }

  it('an envelope missing a required field is refused with the field named', () => {
    const { seq: _seq, ...noSeq } = item;
    expect(() => decodeOne(frame(msgpack(noSeq)))).toThrow(/seq/);
    expect(() => decodeOne(frame(msgpack({ ...item, payload: { data: {} } })))).toThrow(/item_type/);
    expect(() => decodeOne(frame(msgpack({ ...item, type: 'telemetry' })))).toThrow(/unknown frame type/);
  });
});
