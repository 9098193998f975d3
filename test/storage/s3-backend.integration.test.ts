import { createServer } from 'node:net';
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, GetObjectCommand, PutObjectCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { StorageError } from '../../src/storage/backend.js';
import { openBackend } from '../../src/storage/open-backend.js';
import { S3_PART_BYTES, S3Backend } from '../../src/storage/s3-backend.js';
import { startS3Server, type S3TestServer } from '../_harness/s3-server.js';

/** For `.then(unexpected, …)`: the call under test was expected to fail. */
const unexpected = (): never => {
  throw new Error('expected a StorageError, but the call succeeded');
};


let server: S3TestServer;
const SECRET = 'do-not-print-this-secret-0123456789';

beforeAll(async () => {
  server = await startS3Server();
  await server.createBucket('quarry-test');
});
afterAll(async () => {
  await server.stop();
});

const open = (over: Partial<Parameters<typeof S3Backend.create>[0]> = {}): Promise<S3Backend> =>
  S3Backend.create({ bucket: 'quarry-test', prefix: 'p', endpoint: server.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: server.credentials, ...over });

const rawClient = (endpoint: string): S3Client => new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: server.credentials, requestChecksumCalculation: 'WHEN_REQUIRED' });

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Requests the proxy saw for keys under `/quarry-test/p/<tag>`, from index `from` on. */
const requestsFor = (tag: string, from: number) => server.requests.slice(from).filter((r) => r.url.startsWith(`/quarry-test/p/${tag}`));

describe('s3 backend: opening', () => {
  it('location is s3://bucket/prefix and keys live under the prefix', async () => {
    const b = await open({ prefix: '/nested/prefix/' });
    expect(b.location).toBe('s3://quarry-test/nested/prefix');
    await b.putNew('k.json', '{}');
    const root = await open({ prefix: '' });
    expect(root.location).toBe('s3://quarry-test');
    expect(await root.stat('nested/prefix/k.json')).toEqual({ key: 'nested/prefix/k.json', bytes: 2 });
    await Promise.all([b.close(), root.close()]);
  });

  it('a missing bucket fails at create with one line naming the bucket and endpoint', async () => {
    const err = await open({ bucket: 'no-such-bucket' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    const e = err as StorageError;
    expect(e.code).toBe('unavailable');
    expect(e.message).toBe(`storage open s3://no-such-bucket/p: bucket "no-such-bucket" does not exist at ${server.endpoint}`);
    expect(e.message).not.toContain('\n');
  });

  it('an unreachable endpoint fails at create as unavailable naming the endpoint, never the credentials', async () => {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const err = (await open({ endpoint, credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET } }).catch((e: unknown) => e)) as StorageError;
    expect(err).toBeInstanceOf(StorageError);
    expect(err.code).toBe('unavailable');
    expect(err.message).toContain(`cannot reach the S3 endpoint ${endpoint} (ECONNREFUSED)`);
    expect(`${err.message} ${String(err.stack)}`).not.toContain(SECRET);
  });

  it('an endpoint with user info is printed without it', async () => {
    const port = await freePort();
    const err = (await open({ endpoint: `http://user:${SECRET}@127.0.0.1:${port}` }).catch((e: unknown) => e)) as StorageError;
    expect(err.code).toBe('unavailable');
    expect(err.message).not.toContain(SECRET);
    expect(err.message).toContain(`http://127.0.0.1:${port}`);
  });

  it('openBackend opens s3 from bucket/prefix with the default credential chain', async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', server.credentials.accessKeyId);
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', server.credentials.secretAccessKey);
    try {
      const b = await openBackend({ backend: 's3', path: 'quarry-test/via/open', endpoint: server.endpoint, s3PathStyle: true });
      expect(b.kind).toBe('s3');
      expect(b.location).toBe('s3://quarry-test/via/open');
      await b.putNew('x', 'y');
      expect((await b.get('x')).toString()).toBe('y');
      await b.close();
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe('s3 backend: wire behaviour', () => {
  it('putNew is one PutObject carrying If-None-Match: *', async () => {
    const b = await open();
    const from = server.requests.length;
    await b.putNew('wire-small/a.json', '{}');
    expect(requestsFor('wire-small', from).map((r) => [r.method, r.ifNoneMatch, r.status])).toEqual([['PUT', '*', 200]]);
    await b.close();
  });

  it('a writer of exactly one part stays a single conditional PutObject', async () => {
    const b = await open();
    const from = server.requests.length;
    const w = await b.openNew('wire-one/x.bin');
    await w.write(Buffer.alloc(S3_PART_BYTES, 1));
    await w.commit();
    expect(requestsFor('wire-one', from).map((r) => [r.method, r.ifNoneMatch])).toEqual([['PUT', '*']]);
    await b.close();
  });

  it('a larger writer uploads parts of at most 8 MiB and completes with If-None-Match: *', async () => {
    const b = await open();
    const from = server.requests.length;
    const w = await b.openNew('wire-multi/x.bin');
    for (let i = 0; i < 17; i++) await w.write(Buffer.alloc(1024 * 1024, i));
    const info = await w.commit();
    expect(info.bytes).toBe(17 * 1024 * 1024);
    const reqs = requestsFor('wire-multi', from);
    const parts = reqs.filter((r) => r.method === 'PUT' && r.url.includes('partNumber='));
    expect(parts).toHaveLength(3);
    expect(reqs.some((r) => r.method === 'POST' && r.url.includes('uploads'))).toBe(true);
    const complete = reqs.filter((r) => r.method === 'POST' && r.url.includes('uploadId='));
    expect(complete.map((r) => [r.ifNoneMatch, r.status])).toEqual([['*', 200]]);
    expect((await b.stat('wire-multi/x.bin'))?.bytes).toBe(17 * 1024 * 1024);
    await b.close();
  });

  it('abort of a multipart writer aborts the upload; commit over an existing key aborts it too', async () => {
    const b = await open();
    let from = server.requests.length;
    const w = await b.openNew('wire-abort/x.bin');
    for (let i = 0; i < 10; i++) await w.write(Buffer.alloc(1024 * 1024, i));
    await w.abort();
    expect(requestsFor('wire-abort', from).filter((r) => r.method === 'DELETE' && r.url.includes('uploadId='))).toHaveLength(1);

    // The key appears after the upload started: only the conditional completion can catch it.
    const w2 = await b.openNew('wire-race/x.bin');
    for (let i = 0; i < 10; i++) await w2.write(Buffer.alloc(1024 * 1024, i));
    await b.putNew('wire-race/x.bin', 'first');
    from = server.requests.length;
    const err = await w2.commit().then(unexpected, (e: unknown) => e as StorageError);
    expect(err.code).toBe('exists');
    const reqs = requestsFor('wire-race', from);
    expect(reqs.filter((r) => r.method === 'POST' && r.url.includes('uploadId=')).map((r) => r.status)).toEqual([412]);
    expect(reqs.filter((r) => r.method === 'DELETE' && r.url.includes('uploadId='))).toHaveLength(1);
    await w2.abort();
    expect((await b.get('wire-race/x.bin')).toString()).toBe('first');
    await b.close();
  });
});

describe('s3 test harness: the conditional-write proxy', () => {
  it('s3rver alone replaces an object despite If-None-Match: * (why the proxy exists)', async () => {
    const direct = rawClient(server.upstream);
    await direct.send(new PutObjectCommand({ Bucket: 'quarry-test', Key: 'harness/direct', Body: 'one', IfNoneMatch: '*' }));
    await direct.send(new PutObjectCommand({ Bucket: 'quarry-test', Key: 'harness/direct', Body: 'two', IfNoneMatch: '*' }));
    const got = await direct.send(new GetObjectCommand({ Bucket: 'quarry-test', Key: 'harness/direct' }));
    expect(await got.Body!.transformToString()).toBe('two');
    direct.destroy();
  });

  it('through the proxy a conditional PUT on an existing key gets 412 PreconditionFailed; an unconditional PUT is forwarded untouched', async () => {
    const c = rawClient(server.endpoint);
    await c.send(new PutObjectCommand({ Bucket: 'quarry-test', Key: 'harness/cond', Body: 'one', IfNoneMatch: '*' }));
    const err = (await c.send(new PutObjectCommand({ Bucket: 'quarry-test', Key: 'harness/cond', Body: 'two', IfNoneMatch: '*' })).catch((e: unknown) => e)) as { name: string; $metadata: { httpStatusCode: number } };
    expect(err.name).toBe('PreconditionFailed');
    expect(err.$metadata.httpStatusCode).toBe(412);
    await c.send(new PutObjectCommand({ Bucket: 'quarry-test', Key: 'harness/cond', Body: 'three' }));
    const got = await c.send(new GetObjectCommand({ Bucket: 'quarry-test', Key: 'harness/cond' }));
    expect(await got.Body!.transformToString()).toBe('three');
    c.destroy();
  });

  it('a conditional CompleteMultipartUpload on an existing key gets 412', async () => {
    const c = rawClient(server.endpoint);
    await c.send(new PutObjectCommand({ Bucket: 'quarry-test', Key: 'harness/mp', Body: 'one' }));
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: 'quarry-test', Key: 'harness/mp' }));
    const { ETag } = await c.send(new UploadPartCommand({ Bucket: 'quarry-test', Key: 'harness/mp', UploadId, PartNumber: 1, Body: Buffer.from('part') }));
    const err = (await c
      .send(new CompleteMultipartUploadCommand({ Bucket: 'quarry-test', Key: 'harness/mp', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: ETag! }] }, IfNoneMatch: '*' }))
      .catch((e: unknown) => e)) as { name: string };
    expect(err.name).toBe('PreconditionFailed');
    const got = await c.send(new GetObjectCommand({ Bucket: 'quarry-test', Key: 'harness/mp' }));
    expect(await got.Body!.transformToString()).toBe('one');
    c.destroy();
  });
});
