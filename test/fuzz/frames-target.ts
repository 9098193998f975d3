/**
 * Fuzz target: the executor → runtime frame stream, judged as the supervisor
 * judges it (src/runtime/supervisor.ts): FrameDecoder over arbitrary chunk
 * splits, then toExecutorFrame, then for events the run checks
 * (checkEventInRun) and the record line the policy would store; for
 * file_write the sidecar filename rule. Only FrameError and FrameShapeError
 * may be thrown; a refused event is a returned refusal, never an exception.
 */
import fc from 'fast-check';
import { FrameDecoder, FrameError } from '../../src/protocol/codec.js';
import { checkEventInRun, type AnyEventEnvelope } from '../../src/protocol/envelope.js';
import { FRAME_HEADER_BYTES, FrameShapeError, toExecutorFrame } from '../../src/protocol/frames.js';
import { checkSidecarFilename } from '../../src/runtime/supervisor.js';
import { recordLineSerializer } from '../../src/storage/records.js';
import type { FuzzTarget } from './harness.js';
import { raw, writeVariant } from './msgpack-variants.js';
import { applyByteMutation, applyValueMutation, byteMutation, clone, oddValue, valueMutation, type ByteMutation, type ValueMutation } from './mutators.js';

const RUN_ID = 'run-fuzz-1';
const env = (type: string, payload: unknown): Record<string, unknown> => ({
  contract_version: '1.0.0', event_id: `ev-${type}`, run_id: RUN_ID, seq: 1, type, ts: '2026-11-23T00:00:00.000Z', payload, attempt: 1, job_id: 'job-1',
});

/** One valid frame of every kind the executor writes. */
export const VALID_FRAMES: ReadonlyArray<Record<string, unknown>> = [
  env('item', { item_type: 'book', data: { title: 'Salt and Iron', price_cents: 1299, tags: ['a', 'b'], cover: new Uint8Array([1, 2, 3]) } }),
  env('artifact', { artifact_id: 'a1', name: 'shot.png', content_type: 'image/png', size_bytes: 4 }),
  env('checkpoint', { checkpoint_id: 'c1', note: 'page 2' }),
  env('enqueue', { target: 'next.ts', params: { page: 2 }, source: 's', category: 'c' }),
  env('rotate_proxy', { reason: 'blocked' }),
  env('log', { level: 'info', message: 'hello', fields: { n: 1 } }),
  env('run_error', { error_type: 'TypeError', message: 'boom', stack: 'at x' }),
  env('run_complete', { summary: { items: 1 } }),
  { type: 'artifact_chunk', artifact_id: 'a1', seq: 1, is_last: true, data: new Uint8Array([1, 2, 3, 250]) },
  { type: 'file_write', write_id: 1, filename: 'page.html', content_type: 'text/html', data: new Uint8Array(Buffer.from('<p>hi</p>')) },
  { type: 'file_write', write_id: 0, filename: '../escape.html', content_type: 'text/html', data: new Uint8Array(0) },
  { type: 'run_result', outcome: { status: 'error', message: 'boom', error_type: 'TypeError', stack: 'at x' }, proxy_used: { protocol: 'http', host: '127.0.0.1', port: 3128, username: 'u' } },
];

/** msgpack values no protocol frame may hold: every extension msgpackr knows, and lengths that promise too much. */
const ODD_MSGPACK = [
  raw([0xd6, 0xff, 0, 0, 0, 1]), // timestamp 32 (accepted: a Date)
  raw([0xc7, 12, 0xff, ...new Array<number>(12).fill(0xff)]), // timestamp 96, out of range
  raw([0xd4, 0x42, 0x05]), // bigint
  raw([0xc7, 9, 0x42, ...new Array<number>(9).fill(0x7f)]), // wide bigint
  raw([0xd4, 0x00, 0x00]), // undefined
  raw([0xd4, 0x73, 0x00, 0x91, 0x01]), // Set
  raw([0xd4, 0x65, 0x00, 0x92, 0xa9, ...Buffer.from('TypeError'), 0xa1, 0x78]), // Error
  raw([0xd4, 0x65, 0x00, 0x92, 0xab, ...Buffer.from('constructor'), 0xa1, 0x78]), // Error named after an Object.prototype member
  raw([0xd4, 0x78, 0x00, 0x92, 0xa2, 0x28, 0x28, 0xa0]), // RegExp "((" (invalid)
  raw([0xd5, 0x74, 0x08, 0x00]), // Float64Array from 1 byte
  raw([0xd5, 0x74, 0x10, 0x00]), // ArrayBuffer
  raw([0xd5, 0x74, 0x63, 0x00]), // unknown typed array code
  raw([0xd6, 0x69, 0, 0, 0, 1, 0x81, 0xa1, 0x61, 0xd6, 0x70, 0, 0, 0, 1]), // shared reference: a cycle
  raw([0xd6, 0x69, 0, 0, 0, 1, 0x91, 0xd6, 0x70, 0, 0, 0, 1]), // array cycle
  raw([0xd6, 0x70, 0, 0, 0, 9]), // pointer to nothing
  raw([0xd6, 0x62, 0, 0, 0, 9]), // bundled strings
  raw([0xd4, 0x72, 0x40]), // record definition
  raw([0x40]), // record reference byte
  raw([0xd4, 0x10, 0x00]), // unknown extension
  raw([0xc1]), // never used
  raw([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]), // str32 promising 4 GiB
  raw([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]), // array32 promising 4G items
  raw([0xdf, 0x7f, 0xff, 0xff, 0xff]), // map32 promising 2G pairs
  raw([0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00]), // bin32 promising 2 GiB
  raw([0xa3, 0xff, 0xfe, 0xfd]), // invalid UTF-8
  raw([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // uint64 max
  raw([0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]), // int64 min
  raw([0x82, 0x01, 0x02, 0x91, 0x03, 0x04]), // map with non-string keys
  raw([0x81, 0xa9, ...Buffer.from('__proto__'), 0x81, 0xa1, 0x78, 0x01]), // __proto__ key
];

const DOMAIN = ['1.0.0', '2.0.0', '1.x', 'item', 'log', 'run_complete', 'artifact_chunk', 'file_write', 'run_result', 'telemetry', RUN_ID, 'run-other', 'completed', 'crash', 'debug', 'x.meta.json', 'http', 'socks5'];

export interface FramesInput {
  frames: Array<{ base: number; muts: ValueMutation[]; tape: number[] }>;
  bytes: ByteMutation[];
  splits: number[];
}

/** The bytes an input stands for, split into the chunks the decoder is fed. */
export function framesChunks(input: FramesInput): Buffer[] {
  const parts = input.frames.map((f, i) => {
    let v: unknown = clone(VALID_FRAMES[f.base % VALID_FRAMES.length]!);
    if ((v as Record<string, unknown>).contract_version !== undefined) (v as Record<string, unknown>).seq = i + 1;
    for (const m of f.muts) v = applyValueMutation(v, m);
    const payload = writeVariant(v, f.tape);
    const head = Buffer.alloc(FRAME_HEADER_BYTES);
    head.writeUInt32BE(payload.length);
    return Buffer.concat([head, payload]);
  });
  let bytes: Buffer = Buffer.concat(parts);
  for (const m of input.bytes) bytes = applyByteMutation(bytes, m);
  const cuts = [...new Set(input.splits.map((s) => (bytes.length === 0 ? 0 : s % bytes.length)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const c of cuts) {
    chunks.push(bytes.subarray(from, c));
    from = c;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

const PARTITION = { dataset: 'quarry', source: 'fuzz', category: 'default', day: '2026-11-23', run_id: RUN_ID };

/** Feeds the chunks through the runtime's judgement; returns labels. */
export function judgeFrames(chunks: readonly Buffer[]): string[] {
  const labels: string[] = [];
  const decoder = new FrameDecoder();
  const serialize = recordLineSerializer(PARTITION);
  const run = { run_id: RUN_ID, attempt: 1, lastSeq: null as number | null, contractVersion: undefined as string | undefined };
  try {
    for (const chunk of chunks) {
      for (const raw of decoder.push(chunk)) {
        const frame = toExecutorFrame(raw);
        if (frame.type === 'file_write') labels.push(checkSidecarFilename(frame.filename) === undefined ? 'accepted:file_write' : 'refused:filename');
        else if (frame.type === 'artifact_chunk' || frame.type === 'run_result') labels.push(`accepted:${frame.type}`);
        else {
          const e = frame as AnyEventEnvelope;
          const refused = checkEventInRun(e, run);
          if (refused) {
            labels.push(`refused:${refused.kind}`);
            return labels;
          }
          run.lastSeq = e.seq;
          run.contractVersion = e.contract_version;
          // What the policy stores: it must serialize, and read back as one object.
          const line = serialize(e);
          if (line.indexOf('\n') !== line.length - 1) throw new Error('record line holds a raw newline');
          JSON.parse(line);
          labels.push('accepted:event');
        }
      }
      if (decoder.error) throw decoder.error;
    }
    decoder.end();
    labels.push('stream:complete');
  } catch (err) {
    if (err instanceof FrameError) labels.push(`FrameError:${err.kind}`);
    else if (err instanceof FrameShapeError) labels.push('FrameShapeError');
    else throw err;
  }
  return labels;
}

export const framesTarget: FuzzTarget<FramesInput> = {
  name: 'frames',
  arbitrary: fc.record({
    frames: fc.array(
      fc.record({
        base: fc.nat({ max: VALID_FRAMES.length - 1 }),
        muts: fc.array(valueMutation(fc.oneof({ weight: 3, arbitrary: oddValue(DOMAIN) }, { weight: 1, arbitrary: fc.constantFrom(...ODD_MSGPACK) })), { maxLength: 3 }),
        tape: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 16 }),
      }),
      { minLength: 1, maxLength: 3 },
    ),
    bytes: fc.oneof({ weight: 2, arbitrary: fc.constant<ByteMutation[]>([]) }, { weight: 3, arbitrary: fc.array(byteMutation(), { minLength: 1, maxLength: 3 }) }),
    splits: fc.array(fc.nat(), { maxLength: 4 }),
  }),
  run: (input) => judgeFrames(framesChunks(input)),
  required: ['FrameError:truncated', 'FrameError:oversize', 'FrameError:malformed', 'FrameShapeError', 'refused:stream', 'refused:version', 'refused:filename', 'accepted:event', 'accepted:artifact_chunk', 'accepted:file_write', 'accepted:run_result', 'stream:complete'],
};
