import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTRACT_VERSION, type AnyEventEnvelope } from '../../src/protocol/envelope.js';
import { createPolicy, PolicyFailureError } from '../../src/runtime/policies/index.js';
import { S3Backend } from '../../src/storage/s3-backend.js';
import { RunWriter } from '../../src/storage/run-writer.js';
import { FaultyBackend } from '../_harness/faulty-backend.js';
import { startS3Server, type S3TestServer } from '../_harness/s3-server.js';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket('strict-fail');
});
afterAll(async () => {
  await s3?.stop();
});

const item = (runId: string, seq: number, text: string): AnyEventEnvelope =>
  ({ contract_version: CONTRACT_VERSION, event_id: `e${seq}`, run_id: runId, seq, type: 'item', ts: '2026-11-23T00:00:00.000Z', payload: { item_type: 'blob', data: { text } }, attempt: 1 }) as AnyEventEnvelope;

describe('strict on S3, a write failing after a multipart upload started', () => {
  it('aborts the upload (AbortMultipartUpload is sent) instead of leaving it behind', async () => {
    const backend = await S3Backend.create({ bucket: 'strict-fail', prefix: 'p', endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: s3.credentials });
    try {
      const runId = 'strict-mpu';
      // Append 1 (9 MiB) starts a multipart upload; append 2 and every later one fail.
      const faulty = new FaultyBackend(backend, { fault: { on: 'append', failAt: 2, mode: 'from' } });
      const writer = await RunWriter.claim(faulty, {
        dataset: 'quarry', source: 'test', category: 'default', day: '2026-11-23', run_id: runId,
        claim_version: 1, started_at: '2026-11-23T00:00:00.000Z', attempt: 1, root_run_id: runId, depth: 0, script_path: '/x.ts',
      });
      const policy = createPolicy({ name: 'strict' }, writer);
      const from = s3.requests.length;
      await policy.ingest(item(runId, 1, 'x'.repeat(9 * 1024 * 1024)));
      await policy.beforeNextRead!();
      const started = s3.requests.slice(from).filter((r) => r.method === 'POST' && r.url.includes('uploads'));
      expect(started).toHaveLength(1);
      await policy.ingest(item(runId, 2, 'y'));
      await expect(policy.beforeNextRead!()).rejects.toBeInstanceOf(PolicyFailureError);
      await policy.close().catch(() => undefined);
      const aborted = s3.requests.slice(from).filter((r) => r.method === 'DELETE' && r.url.includes('uploadId='));
      // s3rver answers AbortMultipartUpload 405 and cannot list uploads: the request sent is what shows the abort.
      expect(aborted).toHaveLength(1);
      expect(aborted[0]!.url).toContain('/strict-fail/p/datasets/quarry/partitions/');
      expect(writer.objects.filter((o) => o.kind === 'records')).toEqual([]);
    } finally {
      await backend.close();
    }
  });
});
