import { join } from 'node:path';
import { stat } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { BackendOptionsError, compileBackendOptions, openBackend, parseS3Path } from '../../src/storage/open-backend.js';
import { makeTempDir } from '../_harness/temp-dir.js';

const message = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(BackendOptionsError);
    return (err as Error).message;
  }
  throw new Error('expected a BackendOptionsError');
};

describe('parseS3Path', () => {
  it.each([
    ['bucket', { bucket: 'bucket', prefix: '' }],
    ['my.bucket-1/quarry', { bucket: 'my.bucket-1', prefix: 'quarry' }],
    ['b12/a/b/c/', { bucket: 'b12', prefix: 'a/b/c' }],
    ['s3://bucket/raw', { bucket: 'bucket', prefix: 'raw' }],
  ])('%j splits into bucket and prefix', (path, expected) => {
    expect(parseS3Path(path)).toEqual(expected);
  });

  it.each(['Bucket/x', 'ab', '-bucket', 'bu..cket', 'bucket_1', '/bucket'])('rejects the bucket of %j, quoting the path', (path) => {
    expect(message(() => parseS3Path(path))).toContain(`storage path ${JSON.stringify(path)}`);
  });

  it.each(['bucket/a//b', 'bucket/../x', 'bucket/./x'])('rejects the prefix of %j', (path) => {
    expect(message(() => parseS3Path(path))).toMatch(/prefix .* must not contain/);
  });
});

describe('compileBackendOptions', () => {
  it('fs keeps the path; s3 splits it and carries region, endpoint and path style', () => {
    expect(compileBackendOptions({ backend: 'fs', path: './data' })).toEqual({ backend: 'fs', root: './data' });
    expect(compileBackendOptions({ backend: 'fs', path: './data', s3PathStyle: false })).toEqual({ backend: 'fs', root: './data' });
    expect(compileBackendOptions({ backend: 's3', path: 'bucket/pre', region: 'eu-west-1', endpoint: 'http://127.0.0.1:9000', s3PathStyle: true })).toEqual({
      backend: 's3',
      s3: { bucket: 'bucket', prefix: 'pre', region: 'eu-west-1', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true },
    });
  });

  it('errors quote the bad value and say what to do', () => {
    expect(message(() => compileBackendOptions({ backend: 'gcs', path: 'x' }))).toBe('storage backend "gcs" is not one of fs, s3');
    expect(message(() => compileBackendOptions({ backend: 'fs', path: '  ' }))).toContain('storage path "  " is empty');
    expect(message(() => compileBackendOptions({ backend: 'fs', path: 'x', region: 'us-east-1' }))).toContain('storage region "us-east-1" applies to the s3 backend only');
    expect(message(() => compileBackendOptions({ backend: 'fs', path: 'x', s3PathStyle: true }))).toContain('s3 backend only');
    expect(message(() => compileBackendOptions({ backend: 's3', path: 'bucket', region: 'US East' }))).toContain('storage region "US East" is not a region name');
    expect(message(() => compileBackendOptions({ backend: 's3', path: 'bucket', endpoint: 'localhost:9000' }))).toContain('storage endpoint "localhost:9000" must start with http:// or https://');
    expect(message(() => compileBackendOptions({ backend: 's3', path: 'bucket', endpoint: 'not a url' }))).toContain('is not a URL');
    expect(message(() => compileBackendOptions({ backend: 'fs', path: 'x', requestTimeoutMs: 5000 }))).toBe('storage request timeout applies to the s3 backend only; drop it or use the s3 backend');
    expect(message(() => compileBackendOptions({ backend: 's3', path: 'bucket', requestTimeoutMs: 0 }))).toBe('storage request timeout 0 ms must be more than 0, e.g. 30s');
    expect(message(() => compileBackendOptions({ backend: 's3', path: 'bucket', requestTimeoutMs: 1.5 }))).toContain('must be more than 0');
  });

  it('an s3 request timeout is carried to the backend', () => {
    expect(compileBackendOptions({ backend: 's3', path: 'bucket', requestTimeoutMs: 2500 })).toEqual({ backend: 's3', s3: { bucket: 'bucket', prefix: '', requestTimeoutMs: 2500 } });
  });

  it('an endpoint with credentials in it is quoted masked', () => {
    const m = message(() => compileBackendOptions({ backend: 's3', path: 'bucket', endpoint: 'ftp://key:secret@host' }));
    expect(m).not.toContain('secret');
    expect(m).toContain('"ftp://***@host"');
  });
});

describe('openBackend', () => {
  it('opens an fs backend, creating the root', async () => {
    const dir = await makeTempDir('open');
    try {
      const root = join(dir.path, 'new', 'root');
      const b = await openBackend({ backend: 'fs', path: root });
      expect(b.kind).toBe('fs');
      expect(b.location).toBe(root);
      expect((await stat(root)).isDirectory()).toBe(true);
      await b.close();
    } finally {
      await dir.remove();
    }
  });

  it('bad options fail before any I/O', async () => {
    await expect(openBackend({ backend: 's3', path: 'Bad_Bucket' })).rejects.toThrow(BackendOptionsError);
  });
});
