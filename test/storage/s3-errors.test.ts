import { NoSuchBucket, NoSuchKey, S3ServiceException } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { redactEndpoint, s3StorageError } from '../../src/storage/s3-backend.js';

const where = { bucket: 'data-bucket', endpoint: 'https://s3.example.com' };
const path = 's3://data-bucket/quarry/datasets/q/runs/r1.json';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

/** An S3 error as the SDK builds one for a code it has no class for. */
const sdkError = (name: string, status: number, message = `${name} happened`): S3ServiceException =>
  new S3ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message });

const netError = (code: string): Error => Object.assign(new Error(`connect ${code} 10.0.0.1:9000`), { code, $metadata: { attempts: 3 } });

describe('s3 error mapping', () => {
  it.each([
    ['PreconditionFailed 412', sdkError('PreconditionFailed', 412), 'exists'],
    ['a bare 412', sdkError('Unknown', 412), 'exists'],
    ['NoSuchKey', new NoSuchKey({ $metadata: { httpStatusCode: 404 }, message: 'The specified key does not exist.' }), 'not_found'],
    ['HEAD 404 NotFound', sdkError('NotFound', 404), 'not_found'],
    ['InvalidAccessKeyId', sdkError('InvalidAccessKeyId', 403), 'access_denied'],
    ['SignatureDoesNotMatch', sdkError('SignatureDoesNotMatch', 403), 'access_denied'],
    ['AccessDenied', sdkError('AccessDenied', 403), 'access_denied'],
    ['ExpiredToken', sdkError('ExpiredToken', 400), 'access_denied'],
    ['HEAD 403 Forbidden', sdkError('Forbidden', 403), 'access_denied'],
    ['no credentials anywhere', Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }), 'access_denied'],
    ['ECONNREFUSED', netError('ECONNREFUSED'), 'unavailable'],
    ['ETIMEDOUT', netError('ETIMEDOUT'), 'unavailable'],
    ['ENOTFOUND', netError('ENOTFOUND'), 'unavailable'],
    ['connection timeout', Object.assign(new Error('Connection timed out after 10000 ms'), { name: 'TimeoutError' }), 'unavailable'],
    ['SlowDown 503', sdkError('SlowDown', 503), 'unavailable'],
    ['InternalError 500', sdkError('InternalError', 500), 'unavailable'],
    ['no region', new Error('Region is missing'), 'unavailable'],
    ['PermanentRedirect 301', sdkError('PermanentRedirect', 301), 'unavailable'],
    ['EntityTooLarge', sdkError('EntityTooLarge', 400), 'io'],
    ['NoSuchUpload', sdkError('NoSuchUpload', 404), 'io'],
  ])('%s maps to %s with the operation and path in a one-line message', (_label, err, code) => {
    const e = s3StorageError(err, 'put', path, where);
    expect(e.code).toBe(code);
    expect(e.operation).toBe('put');
    expect(e.message.startsWith(`storage put ${path}: `)).toBe(true);
    expect(e.message).not.toContain('\n');
    expect(e.cause).toBe(err);
  });

  it('NoSuchBucket names the bucket and endpoint', () => {
    const e = s3StorageError(new NoSuchBucket({ $metadata: { httpStatusCode: 404 }, message: 'The specified bucket does not exist' }), 'list', path, where);
    expect(e.code).toBe('unavailable');
    expect(e.message).toContain('bucket "data-bucket" does not exist at https://s3.example.com');
  });

  it('bad credentials say what to check and name the endpoint, never a secret', () => {
    const e = s3StorageError(sdkError('SignatureDoesNotMatch', 403, 'The request signature we calculated does not match the signature you provided. Check your key and signing method.'), 'get', path, where);
    expect(e.message).toContain('access denied by https://s3.example.com (SignatureDoesNotMatch); check the credentials and the bucket policy');
    expect(e.message).not.toContain(SECRET);
  });

  it('redactEndpoint drops user info and keeps host and port', () => {
    expect(redactEndpoint(`http://AKID:${encodeURIComponent(SECRET)}@minio.local:9000/`)).toBe('http://minio.local:9000');
    expect(redactEndpoint('https://s3.eu-west-1.amazonaws.com')).toBe('https://s3.eu-west-1.amazonaws.com');
    expect(redactEndpoint('not a url')).toBe('<invalid endpoint>');
  });
});
