import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runOnce } from '../../src/runtime/run.js';
import type { StorageBackend } from '../../src/storage/backend.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { manifestKey, runClaimKey } from '../../src/storage/layout.js';
import { parseManifest } from '../../src/storage/manifest.js';
import { S3Backend } from '../../src/storage/s3-backend.js';
import { REPO_ROOT } from '../_harness/cli.js';
import { FaultyBackend } from '../_harness/faulty-backend.js';
import { startS3Server, type S3TestServer } from '../_harness/s3-server.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

// A stand-in executor (no browser): one item, run_complete, exit 0.
const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');
const partition = { dataset: 'quarry', source: 'own', category: 'default', day: '2026-11-23' };

let tmp: TempDir;
let s3: S3TestServer;
beforeAll(async () => {
  tmp = await makeTempDir('own-bytes');
  s3 = await startS3Server();
  await s3.createBucket('own-bytes');
});
afterAll(async () => {
  await s3?.stop();
  await tmp?.remove();
});

const run = (backend: StorageBackend, runId: string) =>
  runOnce({ scriptPath: script, runId, attempt: 1, job: { mode: 'ok' }, partition, policy: { name: 'strict' }, backend, executorPath: executor });

async function expectStoredSuccess(backend: StorageBackend, runId: string): Promise<void> {
  const manifest = parseManifest(await backend.get(manifestKey({ ...partition, run_id: runId })));
  expect(manifest.outcome).toBe('success');
  expect(manifest.run_id).toBe(runId);
}

describe('a manifest write reported failed that did publish the manifest is a success (issue 9.3)', () => {
  it('fs: an error after link() (the object is published, the put reports io) ends in success, exit 0', async () => {
    const fs = await FsBackend.create(tmp.path);
    const faulty = new FaultyBackend(fs, { fault: { failAt: 1, after: true, code: 'io', match: (k) => k.endsWith('/_manifest.json') } });
    const report = await run(faulty, 'fs-after-link');
    expect(faulty.log.filter((w) => w.key.endsWith('/_manifest.json')).map((w) => w.ok)).toEqual([false]);
    expect(report).toMatchObject({ outcome: 'success', exit_code: 0, storage: { finalized: true } });
    await expectStoredSuccess(fs, 'fs-after-link');
  });

  it('fs: the run claim reported failed after it was created is still this run\'s claim', async () => {
    const fs = await FsBackend.create(tmp.path);
    const faulty = new FaultyBackend(fs, { fault: { failAt: 1, after: true, code: 'exists', match: (k) => k.includes('/runs/') } });
    const report = await run(faulty, 'fs-claim-after');
    expect(report).toMatchObject({ outcome: 'success', exit_code: 0 });
    expect(await fs.stat(runClaimKey('quarry', 'fs-claim-after'))).toBeDefined();
    // Another run with the same id is still refused: the claim's token makes the bytes this writer's own.
    await expect(run(fs, 'fs-claim-after')).rejects.toThrow(/already exists/);
  });

  it('s3: the manifest PUT\'s response is lost, the SDK\'s retry gets 412, and the run is a success', async () => {
    const backend = await S3Backend.create({ bucket: 'own-bytes', prefix: 'p', endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: s3.credentials });
    try {
      const from = s3.requests.length;
      const dropped = s3.dropResponse((method, url) => method === 'PUT' && url.includes('run_id%3Ds3-lost') && url.includes('_manifest.json'));
      const report = await run(backend, 's3-lost');
      await dropped;
      const manifestPuts = s3.requests.slice(from).filter((r) => r.method === 'PUT' && r.url.includes('_manifest.json'));
      // The first PUT was carried out but never answered; the retry met the object.
      expect(manifestPuts.length).toBeGreaterThanOrEqual(2);
      expect(manifestPuts.at(-1)?.status).toBe(412);
      expect(report).toMatchObject({ outcome: 'success', exit_code: 0, storage: { finalized: true } });
      await expectStoredSuccess(backend, 's3-lost');
    } finally {
      await backend.close();
    }
  });

  it('s3: a lost response of the claim PUT does not refuse the run as a taken run_id', async () => {
    const backend = await S3Backend.create({ bucket: 'own-bytes', prefix: 'p', endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: s3.credentials });
    try {
      const dropped = s3.dropResponse((method, url) => method === 'PUT' && url.includes('/runs/s3-claim-lost.json'));
      const report = await run(backend, 's3-claim-lost');
      await dropped;
      expect(report).toMatchObject({ outcome: 'success', exit_code: 0 });
      await expectStoredSuccess(backend, 's3-claim-lost');
    } finally {
      await backend.close();
    }
  });
});
