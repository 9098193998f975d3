import { afterAll, beforeAll } from 'vitest';
import { S3Backend } from '../../src/storage/s3-backend.js';
import { startS3Server, type S3TestServer } from '../_harness/s3-server.js';
import { describeStorageConformance } from './conformance.js';

let server: S3TestServer;
let n = 0;

beforeAll(async () => {
  server = await startS3Server();
});
afterAll(async () => {
  await server.stop();
});

// A fresh bucket per test, under a prefix so the backend's key mapping is exercised too.
describeStorageConformance('s3 (s3rver behind the conditional-write proxy)', async () => {
  const bucket = `conf-${process.pid}-${++n}`;
  await server.createBucket(bucket);
  const backend = await S3Backend.create({ bucket, prefix: 'quarry/data', endpoint: server.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: server.credentials });
  return { backend, cleanup: async () => undefined };
});
