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

describe('the fast record-line serializer', () => {
  it('writes exactly the bytes of eventRecordLine, for every shape', async () => {
    const { recordLineSerializer } = await import('../../src/storage/records.js');
    const fast = recordLineSerializer({ ...p, source: 'a "quoted" src', run_id: 'r\u00e9' });
    const slowP = { ...p, source: 'a "quoted" src', run_id: 'r\u00e9' };
    const cases: Array<[AnyEventEnvelope, string | undefined]> = [
      [env({ item_type: 'b', data: { x: 1, s: 'é\n"', nested: [1, { y: null }] } }), undefined],
      [env({ item_type: 'b', data: { raw: Buffer.from([0, 1, 255]) } }, { job_id: 'j', parent_run_id: 'p' }), undefined],
      [env({ level: 'info', message: 'm' }, { type: 'log', seq: 42 }), undefined],
      [env({ artifact_id: 'a1', name: 'x', content_type: 'y', size_bytes: 1 }, { type: 'artifact' }), 'artifacts/a1'],
      [env({ artifact_id: 'a2', name: 'x', content_type: 'y', size_bytes: 2 }, { type: 'artifact', seq: 7 }), 'artifacts/a2'],
    ];
    for (const [e, path] of cases) expect(fast(e, path)).toBe(eventRecordLine(slowP, e, path));
  });
});
