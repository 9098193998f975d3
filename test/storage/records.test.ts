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
