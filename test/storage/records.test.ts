import { describe, expect, it } from 'vitest';
import type { AnyEventEnvelope } from '../../src/protocol/envelope.js';
import { eventRecordLine } from '../../src/storage/records.js';

const p = { dataset: 'quarry', source: 's', category: 'c', day: '2026-11-22', run_id: 'r1' };
const env = (payload: unknown, extra: Partial<AnyEventEnvelope> = {}) =>
  ({ contract_version: '1.0.0', event_id: 'e1', run_id: 'r1', seq: 1, type: 'item', ts: '2026-11-22T00:00:00.000Z', payload, attempt: 1, ...extra }) as AnyEventEnvelope;

describe('record lines', () => {
  it('have a fixed key order with lineage before the payload', () => {
    const line = eventRecordLine(p, env({ item_type: 'b', data: { x: 1 } }, { job_id: 'j', parent_run_id: 'r0' }));
    expect(Object.keys(JSON.parse(line))).toEqual(['record_kind', 'dataset', 'source', 'category', 'day', 'run_id', 'event_type', 'seq', 'event_id', 'ts', 'contract_version', 'attempt', 'job_id', 'parent_run_id', 'payload']);
    expect(line.endsWith('}\n')).toBe(true);
  });

  it('store bytes inside a payload as base64, not as a list of numbers', () => {
    const rec = JSON.parse(eventRecordLine(p, env({ item_type: 'b', data: { raw: Buffer.from('hi') } })));
    expect(rec.payload.data.raw).toEqual({ $binary: Buffer.from('hi').toString('base64') });
  });

  it('mark artifact events and point at their bytes', () => {
    const e = env({ artifact_id: 'a1', name: 'x.png', content_type: 'image/png', size_bytes: 3 }, { type: 'artifact' });
    const rec = JSON.parse(eventRecordLine(p, e, 'artifacts/a1'));
    expect(rec.record_kind).toBe('artifact_event');
    expect(rec.artifact_path).toBe('artifacts/a1');
  });
});

describe('record-line bytes', () => {
  it('are exactly JSON.stringify of the record in the format\'s key order, escaping included', async () => {
    const { recordLineSerializer } = await import('../../src/storage/records.js');
    const part = { ...p, source: 'a "quoted" src', run_id: 'r\u00e9' };
    const line = recordLineSerializer(part);
    const cases: Array<[AnyEventEnvelope, string | undefined]> = [
      [env({ item_type: 'b', data: { x: 1, s: 'é\n"\\', nested: [1, { y: null }] } }), undefined],
      [env({ level: 'info', message: 'm' }, { type: 'log', seq: 42, job_id: 'j"1', parent_run_id: 'p' }), undefined],
      [env({ artifact_id: 'a1', name: 'x', content_type: 'y', size_bytes: 1 }, { type: 'artifact' }), 'artifacts/a1'],
    ];
    for (const [e, path] of cases) {
      const expected: Record<string, unknown> = {
        record_kind: path === undefined ? 'event' : 'artifact_event', dataset: part.dataset, source: part.source, category: part.category, day: part.day,
        run_id: part.run_id, event_type: e.type, seq: e.seq, event_id: e.event_id, ts: e.ts, contract_version: e.contract_version, attempt: e.attempt,
      };
      if (e.job_id !== undefined) expected.job_id = e.job_id;
      if (e.parent_run_id !== undefined) expected.parent_run_id = e.parent_run_id;
      expected.payload = e.payload;
      if (path !== undefined) expected.artifact_path = path;
      expect(line(e, path)).toBe(`${JSON.stringify(expected)}\n`);
    }
  });
});

describe('the payload JSON handed to event sinks', () => {
  it('is the payload as serialized in the line just made, and nothing for another event or a payload with bytes', async () => {
    const { recordLineSerializer } = await import('../../src/storage/records.js');
    const line = recordLineSerializer(p);
    const a = env({ item_type: 'b', data: { s: 'é\t"', n: [1, null] } });
    const b = env({ item_type: 'b', data: { x: 2 } }, { seq: 2 });
    const line1 = line(a);
    expect(line.payloadJsonOf(a)).toBe(JSON.stringify(a.payload));
    expect(line1).toContain(`"payload":${line.payloadJsonOf(a)!}}`);
    expect(line.payloadJsonOf(b)).toBeUndefined();
    line(b);
    expect(line.payloadJsonOf(a)).toBeUndefined();
    const bytes = env({ item_type: 'b', data: { raw: Buffer.from('hi') } }, { seq: 3 });
    line(bytes);
    expect(line.payloadJsonOf(bytes)).toBeUndefined();
  });
});
