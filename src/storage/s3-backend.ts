/**
 * The S3 storage backend (SPEC §7): any S3-compatible store, past one machine.
 *
 * Immutability is the store's conditional create: every PutObject and every
 * CompleteMultipartUpload carries `If-None-Match: *`, so a key that exists
 * answers 412 and nothing is replaced; S3 makes an object visible only once it
 * is complete, so a reader sees no object or the whole object.
 *
 * `@aws-sdk/client-s3` is imported lazily in {@link S3Backend.create}, so a CLI
 * that stores on the filesystem never loads it.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { assertValidKey, StorageError, type ListedObject, type ObjectInfo, type ObjectWriter, type StorageBackend } from './backend.js';

type S3Sdk = typeof import('@aws-sdk/client-s3');

/** Multipart part size: the buffer an open writer holds at most (S3 needs ≥ 5 MiB for all parts but the last). */
export const S3_PART_BYTES = 8 * 1024 * 1024;

/** How long to wait for a TCP connection before the endpoint counts as unreachable. */
export const S3_CONNECT_TIMEOUT_MS = 10_000;
/**
 * How long a request may sit with no bytes moving before it fails (the SDK then
 * retries it), unless {@link S3BackendOptions.requestTimeoutMs} says otherwise
 * (`--storage-request-timeout`): a stalled endpoint ends a run with
 * `policy_failure` instead of hanging it (SPEC §5). Idle time, not total time,
 * so large parts still upload.
 */
export const S3_REQUEST_TIMEOUT_MS = 30_000;

/** Retries of a conditional write that S3 answered 409 ConditionalRequestConflict (a concurrent write was in flight). */
const CONFLICT_RETRIES = 3;

/** Static credentials, when the AWS default credential chain is not to be used. Never printed. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Options of {@link S3Backend.create}; `openBackend` builds them from the `--storage-*` flags. */
export interface S3BackendOptions {
  bucket: string;
  /** Key prefix inside the bucket (no leading or trailing `/` needed); '' or absent for the bucket root. */
  prefix?: string;
  /** AWS region; with a custom endpoint and no region, `us-east-1` (the value S3-compatible servers expect). */
  region?: string;
  /** S3-compatible endpoint URL (MinIO, R2, s3rver …). */
  endpoint?: string;
  /** Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible servers. */
  forcePathStyle?: boolean;
  /** Static credentials; absent means the AWS default credential chain. */
  credentials?: S3Credentials;
  /** Idle timeout of one request in ms (default {@link S3_REQUEST_TIMEOUT_MS}); the SDK's retries follow a timeout. */
  requestTimeoutMs?: number;
}

/** Where errors point: never credentials (an endpoint's user info is stripped). */
interface S3Where {
  bucket: string;
  endpoint: string;
}

const NETWORK_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED']);
const CREDENTIAL_ERRORS = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired', 'AllAccessDisabled', 'InvalidClientTokenId', 'CredentialsProviderError']);

interface SdkErrorShape {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/**
 * Maps an AWS SDK (or network) error to a StorageError naming the operation
 * and `s3://bucket/key`. Credentials never appear: SDK messages do not carry
 * them and the endpoint is printed without user info.
 */
export function s3StorageError(err: unknown, operation: string, path: string, where: S3Where): StorageError {
  if (err instanceof StorageError) return err;
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as SdkErrorShape;
  const name = e.Code ?? e.name ?? '';
  const status = e.$metadata?.httpStatusCode;
  const errno = typeof e.code === 'string' ? e.code : '';
  const opt = { cause: err };
  if (name === 'PreconditionFailed' || status === 412) {
    return new StorageError('exists', operation, path, 'an object already exists at this key (nothing was replaced)', opt);
  }
  if (name === 'NoSuchBucket') {
    return new StorageError('unavailable', operation, path, `bucket "${where.bucket}" does not exist at ${where.endpoint}`, opt);
  }
  if (name === 'NoSuchKey' || (status === 404 && name !== 'NoSuchUpload')) {
    return new StorageError('not_found', operation, path, 'no such object', opt);
  }
  if (name === 'CredentialsProviderError') {
    return new StorageError('access_denied', operation, path, 'no AWS credentials found by the default credential chain (environment, shared config, SSO, instance role); configure one', opt);
  }
  if (CREDENTIAL_ERRORS.has(name) || status === 403) {
    return new StorageError('access_denied', operation, path, `access denied by ${where.endpoint} (${name || status}); check the credentials and the bucket policy`, opt);
  }
  if (NETWORK_ERRNOS.has(errno) || name === 'TimeoutError' || name === 'RequestTimeout' || /ECONNREFUSED|ETIMEDOUT/.test(e.message ?? '')) {
    return new StorageError('unavailable', operation, path, `cannot reach the S3 endpoint ${where.endpoint} (${errno || name})`, opt);
  }
  if (/Region is missing/i.test(e.message ?? '')) {
    return new StorageError('unavailable', operation, path, 'no AWS region configured; set the storage region (or AWS_REGION)', opt);
  }
  if (name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed' || status === 301) {
    return new StorageError('unavailable', operation, path, `bucket "${where.bucket}" is in another region; set the storage region`, opt);
  }
  if (name === 'SlowDown' || name === 'ServiceUnavailable' || name === 'InternalError' || (status !== undefined && status >= 500)) {
    return new StorageError('unavailable', operation, path, `${where.endpoint} failed (${name || status}) after retries`, opt);
  }
  return new StorageError('io', operation, path, `${name || 'Error'}: ${e.message ?? 'unknown S3 error'}`, opt);
}

/** An endpoint URL without user info, for messages. */
export function redactEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '<invalid endpoint>';
  }
}

/** Strips `/` at both ends; '' for the bucket root. */
function normalizePrefix(prefix: string | undefined): string {
  return (prefix ?? '').replace(/^\/+|\/+$/g, '');
}

/** S3 backend: keys live under `s3://bucket/prefix/`. */
export class S3Backend implements StorageBackend {
  readonly kind = 's3' as const;
  readonly location: string;
  readonly #sdk: S3Sdk;
  readonly #client: S3Client;
  readonly #bucket: string;
  /** '' or `prefix/`. */
  readonly #root: string;
  readonly #where: S3Where;

  private constructor(sdk: S3Sdk, client: S3Client, bucket: string, prefix: string, where: S3Where) {
    this.#sdk = sdk;
    this.#client = client;
    this.#bucket = bucket;
    this.#root = prefix === '' ? '' : `${prefix}/`;
    this.#where = where;
    this.location = prefix === '' ? `s3://${bucket}` : `s3://${bucket}/${prefix}`;
  }

  /**
   * Loads the SDK, builds the client and checks the bucket with HeadBucket, so
   * a wrong bucket, endpoint, region or credential fails here with one line.
   * @throws StorageError `unavailable` (no bucket, unreachable endpoint, no region), `access_denied`, `invalid_key`.
   */
  static async create(options: S3BackendOptions): Promise<S3Backend> {
    const prefix = normalizePrefix(options.prefix);
    if (prefix !== '') assertValidKey(prefix, 'open');
    const sdk = await import('@aws-sdk/client-s3');
    const region = options.region ?? (options.endpoint !== undefined ? 'us-east-1' : undefined);
    const where: S3Where = {
      bucket: options.bucket,
      endpoint: options.endpoint !== undefined ? redactEndpoint(options.endpoint) : `AWS S3${region !== undefined ? ` (${region})` : ''}`,
    };
    const client = new sdk.S3Client({
      ...(region !== undefined ? { region } : {}),
      ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
      ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
      forcePathStyle: options.forcePathStyle ?? false,
      followRegionRedirects: true,
      // Checksums only where S3 requires them: S3-compatible servers differ in what they accept.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // socketTimeout is the SDK's idle timeout: it fails the request (and the SDK retries it). Its
      // requestTimeout is a total-time bound that only logs a warning unless asked to throw: not used.
      requestHandler: { connectionTimeout: S3_CONNECT_TIMEOUT_MS, socketTimeout: options.requestTimeoutMs ?? S3_REQUEST_TIMEOUT_MS },
    });
    const backend = new S3Backend(sdk, client, options.bucket, prefix, where);
    try {
      await client.send(new sdk.HeadBucketCommand({ Bucket: options.bucket }));
    } catch (err) {
      client.destroy();
      const status = (err as SdkErrorShape).$metadata?.httpStatusCode;
      const name = (err as SdkErrorShape).name;
      if (status === 404 || name === 'NotFound' || name === 'NoSuchBucket') {
        throw new StorageError('unavailable', 'open', backend.location, `bucket "${options.bucket}" does not exist at ${where.endpoint}`, { cause: err });
      }
      throw s3StorageError(err, 'open', backend.location, where);
    }
    return backend;
  }

  #key(key: string, operation: string): string {
    assertValidKey(key, operation);
    return `${this.#root}${key}`;
  }

  #url(fullKey: string): string {
    return `s3://${this.#bucket}/${fullKey}`;
  }

  #err(err: unknown, operation: string, fullKey: string): StorageError {
    return s3StorageError(err, operation, this.#url(fullKey), this.#where);
  }

  /** A conditional PutObject, retried while S3 reports a concurrent conditional write (409). */
  async #putIfAbsent(fullKey: string, body: Uint8Array): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#client.send(new this.#sdk.PutObjectCommand({ Bucket: this.#bucket, Key: fullKey, Body: body, ContentLength: body.byteLength, IfNoneMatch: '*' }));
        return;
      } catch (err) {
        if ((err as SdkErrorShape).name === 'ConditionalRequestConflict' && attempt < CONFLICT_RETRIES) {
          await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
          continue;
        }
        throw this.#err(err, 'put', fullKey);
      }
    }
  }

  async putNew(key: string, data: Uint8Array | string): Promise<ObjectInfo> {
    const fullKey = this.#key(key, 'put');
    const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    await this.#putIfAbsent(fullKey, body);
    return { key, bytes: body.byteLength, sha256: createHash('sha256').update(body).digest('hex') };
  }

  async openNew(key: string): Promise<ObjectWriter> {
    const fullKey = this.#key(key, 'open-write');
    return new S3ObjectWriter(key, fullKey, {
      put: (body) => this.#putIfAbsent(fullKey, body),
      startUpload: async () => {
        // Fail before sending megabytes when the key is already taken; the conditional completion still decides races.
        if ((await this.stat(key)) !== undefined) throw this.#err({ name: 'PreconditionFailed' }, 'write', fullKey);
        try {
          const out = await this.#client.send(new this.#sdk.CreateMultipartUploadCommand({ Bucket: this.#bucket, Key: fullKey }));
          if (out.UploadId === undefined) throw new Error('CreateMultipartUpload returned no UploadId');
          return out.UploadId;
        } catch (err) {
          throw this.#err(err, 'write', fullKey);
        }
      },
      uploadPart: async (uploadId, partNumber, body) => {
        try {
          const out = await this.#client.send(new this.#sdk.UploadPartCommand({ Bucket: this.#bucket, Key: fullKey, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.byteLength }));
          return out.ETag ?? '';
        } catch (err) {
          throw this.#err(err, 'write', fullKey);
        }
      },
      complete: async (uploadId, parts) => {
        try {
          await this.#client.send(new this.#sdk.CompleteMultipartUploadCommand({ Bucket: this.#bucket, Key: fullKey, UploadId: uploadId, MultipartUpload: { Parts: parts }, IfNoneMatch: '*' }));
        } catch (err) {
          throw this.#err(err, 'commit', fullKey);
        }
      },
      abortUpload: async (uploadId) => {
        await this.#client.send(new this.#sdk.AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: fullKey, UploadId: uploadId }));
      },
    });
  }

  async get(key: string): Promise<Buffer> {
    const fullKey = this.#key(key, 'get');
    try {
      const out = await this.#client.send(new this.#sdk.GetObjectCommand({ Bucket: this.#bucket, Key: fullKey }));
      if (out.Body === undefined) return Buffer.alloc(0);
      return Buffer.from(await out.Body.transformToByteArray());
    } catch (err) {
      throw this.#err(err, 'get', fullKey);
    }
  }

  async *read(key: string): AsyncIterable<Buffer> {
    const fullKey = this.#key(key, 'read');
    let body: Readable | undefined;
    try {
      const out = await this.#client.send(new this.#sdk.GetObjectCommand({ Bucket: this.#bucket, Key: fullKey }));
      body = out.Body as Readable | undefined;
    } catch (err) {
      throw this.#err(err, 'read', fullKey);
    }
    if (body === undefined) return;
    try {
      for await (const chunk of body) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    } catch (err) {
      throw this.#err(err, 'read', fullKey);
    } finally {
      // A consumer that stops early must not leave the socket half-read.
      body.destroy();
    }
  }

  async stat(key: string): Promise<ListedObject | undefined> {
    const fullKey = this.#key(key, 'stat');
    try {
      const out = await this.#client.send(new this.#sdk.HeadObjectCommand({ Bucket: this.#bucket, Key: fullKey }));
      return { key, bytes: out.ContentLength ?? 0 };
    } catch (err) {
      const mapped = this.#err(err, 'stat', fullKey);
      if (mapped.code === 'not_found') return undefined;
      throw mapped;
    }
  }

  #fullPrefix(prefix: string, operation: string): string {
    if (prefix !== '') assertValidKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix, operation);
    return `${this.#root}${prefix}`;
  }

  async *list(prefix: string): AsyncIterable<ListedObject> {
    const full = this.#fullPrefix(prefix, 'list');
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.#client.send(new this.#sdk.ListObjectsV2Command({ Bucket: this.#bucket, Prefix: full, ...(token !== undefined ? { ContinuationToken: token } : {}) }));
      } catch (err) {
        throw this.#err(err, 'list', full);
      }
      for (const o of out.Contents ?? []) {
        if (o.Key === undefined || !o.Key.startsWith(this.#root)) continue;
        yield { key: o.Key.slice(this.#root.length), bytes: o.Size ?? 0 };
      }
      token = out.IsTruncated === true ? out.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async listFolders(prefix: string): Promise<string[]> {
    const full = this.#fullPrefix(prefix, 'list-folders');
    const out: string[] = [];
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.#client.send(new this.#sdk.ListObjectsV2Command({ Bucket: this.#bucket, Prefix: full, Delimiter: '/', ...(token !== undefined ? { ContinuationToken: token } : {}) }));
      } catch (err) {
        throw this.#err(err, 'list-folders', full);
      }
      for (const p of page.CommonPrefixes ?? []) {
        if (p.Prefix !== undefined && p.Prefix.startsWith(this.#root)) out.push(p.Prefix.slice(this.#root.length));
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out.sort();
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }
}

/** The S3 calls a writer needs, bound to one key. */
interface UploadOps {
  put(body: Uint8Array): Promise<void>;
  startUpload(): Promise<string>;
  uploadPart(uploadId: string, partNumber: number, body: Uint8Array): Promise<string>;
  complete(uploadId: string, parts: Array<{ PartNumber: number; ETag: string }>): Promise<void>;
  abortUpload(uploadId: string): Promise<void>;
}

/**
 * Buffers up to {@link S3_PART_BYTES}; an object that never outgrows one part
 * is a single conditional PutObject, a larger one a multipart upload completed
 * conditionally. Parts are invisible until completion.
 */
class S3ObjectWriter implements ObjectWriter {
  readonly key: string;
  readonly #fullKey: string;
  readonly #ops: UploadOps;
  readonly #hash = createHash('sha256');
  #bytes = 0;
  #buf: Buffer | undefined;
  #fill = 0;
  #uploadId: string | undefined;
  readonly #parts: Array<{ PartNumber: number; ETag: string }> = [];
  #state: 'open' | 'closing' | 'failed' | 'done' = 'open';
  #chain: Promise<void> = Promise.resolve();

  constructor(key: string, fullKey: string, ops: UploadOps) {
    this.key = key;
    this.#fullKey = fullKey;
    this.#ops = ops;
  }

  get bytes(): number {
    return this.#bytes;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(this.#closedError('write'));
    const next = this.#chain.then(() => this.#append(chunk));
    this.#chain = next.catch(() => undefined);
    return next;
  }

  async #append(chunk: Uint8Array): Promise<void> {
    if (this.#state === 'failed') throw this.#closedError('write');
    let off = 0;
    while (off < chunk.byteLength) {
      // Upload a full buffer only once more bytes arrive, so an object of exactly one part stays a single PutObject.
      if (this.#fill === S3_PART_BYTES) await this.#flushPart();
      this.#buf ??= Buffer.allocUnsafe(S3_PART_BYTES);
      const n = Math.min(S3_PART_BYTES - this.#fill, chunk.byteLength - off);
      this.#buf.set(chunk.subarray(off, off + n), this.#fill);
      this.#fill += n;
      off += n;
    }
    this.#hash.update(chunk);
    this.#bytes += chunk.byteLength;
  }

  async #flushPart(): Promise<void> {
    const body = this.#buf!.subarray(0, this.#fill);
    try {
      this.#uploadId ??= await this.#ops.startUpload();
      const partNumber = this.#parts.length + 1;
      const etag = await this.#ops.uploadPart(this.#uploadId, partNumber, body);
      this.#parts.push({ PartNumber: partNumber, ETag: etag });
    } catch (err) {
      await this.#fail();
      throw err;
    }
    this.#fill = 0;
  }

  async #fail(): Promise<void> {
    this.#state = 'failed';
    this.#buf = undefined;
    const id = this.#uploadId;
    this.#uploadId = undefined;
    // Best effort: an upload left behind is invisible (never listed) and a bucket lifecycle rule can reap it.
    if (id !== undefined) await this.#ops.abortUpload(id).catch(() => undefined);
  }

  #closedError(operation: string): StorageError {
    return new StorageError('io', operation, this.#fullKey, `writer is ${this.#state === 'failed' ? 'failed' : 'already committed or aborted'}`);
  }

  async commit(): Promise<ObjectInfo> {
    if (this.#state !== 'open') throw this.#closedError('commit');
    this.#state = 'closing';
    await this.#chain;
    if (this.#state !== 'closing') throw this.#closedError('commit');
    try {
      if (this.#uploadId === undefined) {
        await this.#ops.put(this.#buf === undefined ? new Uint8Array(0) : this.#buf.subarray(0, this.#fill));
      } else {
        if (this.#fill > 0) await this.#flushPart();
        await this.#ops.complete(this.#uploadId, this.#parts);
      }
    } catch (err) {
      await this.#fail();
      throw err;
    }
    this.#state = 'done';
    this.#buf = undefined;
    return { key: this.key, bytes: this.#bytes, sha256: this.#hash.digest('hex') };
  }

  async abort(): Promise<void> {
    if (this.#state === 'done' || this.#state === 'failed') return;
    this.#state = 'closing';
    await this.#chain;
    await this.#fail();
    this.#state = 'done';
  }
}
