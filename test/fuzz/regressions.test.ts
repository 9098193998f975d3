/**
 * Inputs the fuzzers found that crashed a parser with an undocumented error,
 * minimized by fast-check and kept as golden cases, each with the fix's
 * expected judgement. Bytes are written out so they survive any change to the
 * generators.
 */
import { describe, expect, it } from 'vitest';
import { FrameDecoder, FrameError, MAX_FRAME_NESTING } from '../../src/protocol/codec.js';
import { checkEventInRun, type AnyEventEnvelope } from '../../src/protocol/envelope.js';
import { FrameShapeError, toExecutorFrame } from '../../src/protocol/frames.js';
import { checkRun } from '../../src/ledger/run-checks.js';
import { ManifestError, parseManifest } from '../../src/storage/manifest.js';
import { ReaderError, streamRecords, summarize } from '../../src/storage/reader.js';
import { MemoryBackend } from '../_harness/memory-backend.js';
import { writeRun } from '../storage/run-fixture.js';
import { msgpack } from '../_harness/msgpack-writer.js';

const frameOf = (payload: Buffer): Buffer => {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(payload.length);
  return Buffer.concat([head, payload]);
};

/** Decodes one frame and judges its shape, as the supervisor does. */
const judge = (bytes: Buffer): unknown => {
  const d = new FrameDecoder();
  const frames = d.push(bytes);
  d.end();
  return frames.map(toExecutorFrame);
};

/** An item envelope whose data value is the raw msgpack `value` (spliced in, so any encoding can be planted). */
const itemWith = (value: Buffer): Buffer => {
  const head = msgpack({
    contract_version: '1.0.0', event_id: 'e1', run_id: 'r1', seq: 1, type: 'item', ts: '2026-11-23T00:00:00.000Z', attempt: 1,
    payload: { item_type: 't', data: { v: 'PLACEHOLDER' } },
  });
  const at = head.indexOf(Buffer.from('PLACEHOLDER')) - 1;
  return frameOf(Buffer.concat([head.subarray(0, at), value, head.subarray(at + 12)]));
};

describe('frames the fuzzer found', () => {
  it('a msgpackr bigint extension in item data is a malformed frame, not a TypeError when the record is stored', () => {
    expect(() => judge(itemWith(Buffer.from([0xd4, 0x42, 0x05])))).toThrow(FrameError);
    expect(() => judge(itemWith(Buffer.from([0xd4, 0x42, 0x05])))).toThrow(/malformed .*bigint/);
  });

  it('a bigint as the frame type is a malformed frame, not a TypeError naming the unknown type', () => {
    // fixmap(1) "type" → ext 0x42 (bigint 5)
    const bytes = frameOf(Buffer.from([0x81, 0xa4, ...Buffer.from('type'), 0xd4, 0x42, 0x05]));
    expect(() => judge(bytes)).toThrow(FrameError);
  });

  it('other msgpackr extensions (Set, Error, RegExp, typed array, undefined, shared references) are malformed frames', () => {
    const exts = [
      [0xd4, 0x73, 0x00, 0x91, 0x01],
      [0xd4, 0x65, 0x00, 0x92, 0xa9, ...Buffer.from('TypeError'), 0xa1, 0x78],
      [0xd4, 0x78, 0x00, 0x92, 0xa1, 0x61, 0xa0],
      [0xd5, 0x74, 0x08, 0x00],
      [0xd4, 0x00, 0x00],
      [0xd6, 0x69, 0, 0, 0, 1, 0x91, 0xd6, 0x70, 0, 0, 0, 1],
    ];
    for (const e of exts) {
      const err = (() => {
        try {
          judge(itemWith(Buffer.from(e)));
        } catch (x) {
          return x;
        }
        return undefined;
      })();
      expect(err, Buffer.from(e).toString('hex')).toBeInstanceOf(FrameError);
      expect((err as FrameError).kind).toBe('malformed');
    }
  });

  it('the msgpack timestamp extension still decodes, as a Date (other encoders send it)', () => {
    const [f] = judge(itemWith(Buffer.from([0xd6, 0xff, 0, 0, 0, 1]))) as Array<{ payload: { data: { v: unknown } } }>;
    expect(f!.payload.data.v).toEqual(new Date(1000));
  });

  it(`nesting deeper than ${MAX_FRAME_NESTING} is a malformed frame, not a RangeError when the record is stored`, () => {
    // 3 000 one-element arrays around nil: decodes, but overflowed JSON.stringify downstream.
    expect(() => judge(itemWith(Buffer.concat([Buffer.alloc(3_000, 0x91), Buffer.from([0xc0])])))).toThrow(/nested deeper than 512/);
    // The limit counts from the frame's root: the item data sits at depth 3, so 509 more levels are the most allowed.
    expect(() => judge(itemWith(Buffer.concat([Buffer.alloc(MAX_FRAME_NESTING - 3, 0x91), Buffer.from([0xc0])])))).not.toThrow();
    expect(() => judge(itemWith(Buffer.concat([Buffer.alloc(MAX_FRAME_NESTING - 2, 0x91), Buffer.from([0xc0])])))).toThrow(FrameError);
  });

  it('run_result fields the runtime copies into its report must have their types', () => {
    const rr = (extra: Record<string, unknown>) => frameOf(msgpack({ type: 'run_result', outcome: { status: 'error', message: 'boom' }, ...extra }));
    expect(() => judge(frameOf(msgpack({ type: 'run_result', outcome: { status: 'completed', message: 5 } })))).toThrow(FrameShapeError);
    expect(() => judge(rr({ proxy_used: 7 }))).toThrow(/proxy_used: not a map/);
    expect(() => judge(rr({ proxy_used: { protocol: 'ftp', host: 'h', port: 1 } }))).toThrow(/protocol/);
    expect(() => judge(rr({ proxy_used: { protocol: 'http', host: 'h', port: 70_000 } }))).toThrow(/port/);
    expect(judge(rr({ proxy_used: { protocol: 'socks5', host: 'h', port: 1080, username: 'u' } }))).toHaveLength(1);
  });
});

describe('the run checks of an event (checkEventInRun), as the supervisor applies them', () => {
  const e = { contract_version: '1.0.0', event_id: 'e', run_id: 'r1', seq: 2, type: 'log', ts: 't', attempt: 1, payload: { level: 'info', message: 'm' } } as AnyEventEnvelope;
  const run = { run_id: 'r1', attempt: 1, lastSeq: 1, contractVersion: '1.0.0' };
  it('accepts the next event of the run and refuses each wrong field with its kind', () => {
    expect(checkEventInRun(e, run)).toBeUndefined();
    expect(checkEventInRun({ ...e, run_id: 'r2' }, run)).toEqual({ kind: 'stream', message: 'event seq 2 has run_id r2, expected r1' });
    expect(checkEventInRun({ ...e, attempt: 2 }, run)?.kind).toBe('stream');
    expect(checkEventInRun({ ...e, seq: 3 }, run)).toEqual({ kind: 'stream', message: 'seq gap: got event seq 3, expected 2' });
    expect(checkEventInRun({ ...e, contract_version: '2.0.0' }, run)?.kind).toBe('version');
    expect(checkEventInRun({ ...e, contract_version: '1.4.0' }, run)).toBeUndefined();
    expect(checkEventInRun({ ...e, contract_version: 'one' }, run)?.kind).toBe('version');
  });
});

describe('record lines the fuzzer found', () => {
  it('a record line holding JSON null is a ReaderError, not a TypeError reading its seq', async () => {
    const backend = new MemoryBackend();
    const p = { dataset: 'quarry', source: 's', category: 'default', day: '2024-01-01', run_id: 'r1' };
    const m = (await writeRun(backend, { partition: p, outcome: 'success', events: [] }))!;
    const key = 'datasets/quarry/partitions/source=s/category=default/day=2024-01-01/run_id=r1/event_type=item/part-1.jsonl';
    backend.plant(key, 'null\n');
    const manifest = { ...m, objects: [...m.objects, { path: key.slice(key.indexOf('event_type=')), kind: 'records' as const, event_type: 'item', bytes: 5, records: 1, sha256: '0'.repeat(64), first_seq: 1, last_seq: 1 }] };
    const read = async () => {
      for await (const _ of streamRecords(backend, manifest)) void _;
    };
    await expect(read()).rejects.toThrow(ReaderError);
    await expect(read()).rejects.toThrow(/line 1: not a JSON object/);
  });
});

describe('manifests the fuzzer found', () => {
  it('a listed run whose manifest holds a null object entry still summarizes (no TypeError in quarry list)', async () => {
    const backend = new MemoryBackend();
    const p = { dataset: 'quarry', source: 's', category: 'default', day: '2024-01-01', run_id: 'r1' };
    const m = (await writeRun(backend, { partition: p, outcome: 'success', events: [] }))!;
    const claim = { ...p, claim_version: 1, started_at: m.started_at, attempt: 1, root_run_id: 'r1', depth: 0, script_path: 's.ts' };
    const row = summarize(claim, { ...m, objects: [null as never, ...m.objects] });
    expect(row.bytes).toBe(m.objects.reduce((n, o) => n + o.bytes, 0));
  });

  const deep = (depth: number): string => `${'['.repeat(depth)}1${']'.repeat(depth)}`;
  const runOf = async () => {
    const backend = new MemoryBackend();
    const p = { dataset: 'quarry', source: 's', category: 'default', day: '2024-01-01', run_id: 'r1' };
    const m = (await writeRun(backend, { partition: p, outcome: 'success', events: [] }))!;
    return { backend, p, m };
  };

  it('a manifest whose object kind is nested 20,000 deep is manifest_malformed, not a stack overflow in the validator', async () => {
    const { backend, p, m } = await runOf();
    const text = JSON.stringify({ ...m, objects: [{ ...m.objects[0], kind: 'PLACEHOLDER' }, ...m.objects.slice(1)] }).replace('"PLACEHOLDER"', deep(20_000));
    const { reasons } = await checkRun(backend, p, Buffer.from(text), 2);
    expect(reasons.map((r) => r.code)).toContain('manifest_malformed');
    expect(reasons.find((r) => r.message.includes('objects[0].kind'))?.message).toMatch(/objects\[0\]\.kind \(a value too deeply nested to show\) is not one of/);
  });

  it('a manifest whose fanout is nested 20,000 deep is a ManifestError, not a RangeError', async () => {
    const { m } = await runOf();
    const text = JSON.stringify({ ...m, fanout: 'PLACEHOLDER' }).replace('"PLACEHOLDER"', deep(20_000));
    expect(() => parseManifest(Buffer.from(text))).toThrow(ManifestError);
    expect(() => parseManifest(Buffer.from(text))).toThrow(/fanout must be true when present, got \(a value too deeply nested to show\)/);
  });
});
