/**
 * Opens the storage backend a run or a read command asked for (SPEC §7 and the
 * `--storage-*` flags of §9). Validation is pure ({@link compileBackendOptions})
 * and happens before any I/O; {@link openBackend} then does the I/O.
 */
import type { BackendKind, StorageBackend } from './backend.js';
import { FsBackend } from './fs-backend.js';
import type { S3BackendOptions } from './s3-backend.js';

/** What the CLI or a library caller passes, flag for flag. */
export interface OpenBackendOptions {
  /** `fs` (default in the CLI) or `s3`. */
  backend: BackendKind | string;
  /** fs: the root directory. s3: `bucket` or `bucket/prefix` (an `s3://` scheme is accepted). */
  path: string;
  region?: string;
  endpoint?: string;
  s3PathStyle?: boolean;
  /** s3: idle timeout of one request in ms (`--storage-request-timeout`; default 30 s). */
  requestTimeoutMs?: number;
  /** fs: create nothing on open and refuse writes (read commands). */
  readOnly?: boolean;
}

/** Options resolved and checked, ready to open. */
export type CompiledBackendOptions = { backend: 'fs'; root: string } | { backend: 's3'; s3: S3BackendOptions };

/** A storage option is wrong: a usage error, raised before anything runs. The message quotes the bad value. */
export class BackendOptionsError extends Error {
  override readonly name = 'BackendOptionsError';
  constructor(
    message: string,
    readonly option: 'backend' | 'path' | 'region' | 'endpoint' | 's3PathStyle' | 'requestTimeoutMs',
    readonly value: unknown,
  ) {
    super(message);
  }
}

// S3 bucket naming rules (the general-purpose bucket subset every S3-compatible server accepts).
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const REGION_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const PREFIX_SEGMENT_BAD = new Set(['', '.', '..']);

/**
 * Splits an s3 storage path `bucket[/prefix]` (optionally `s3://bucket/prefix`).
 * @throws BackendOptionsError quoting the path when the bucket or prefix is malformed.
 */
export function parseS3Path(path: string): { bucket: string; prefix: string } {
  const bare = path.startsWith('s3://') ? path.slice(5) : path;
  const slash = bare.indexOf('/');
  const bucket = slash === -1 ? bare : bare.slice(0, slash);
  const prefix = slash === -1 ? '' : bare.slice(slash + 1).replace(/\/+$/, '');
  if (!BUCKET_RE.test(bucket) || bucket.includes('..')) {
    throw new BackendOptionsError(
      `storage path ${JSON.stringify(path)}: bucket ${JSON.stringify(bucket)} must be 3-63 characters of a-z 0-9 . - starting and ending with a letter or digit; write the s3 path as bucket/prefix`,
      'path',
      path,
    );
  }
  if (prefix !== '' && (prefix.split('/').some((s) => PREFIX_SEGMENT_BAD.has(s)) || /[\\\0]/.test(prefix))) {
    throw new BackendOptionsError(`storage path ${JSON.stringify(path)}: prefix ${JSON.stringify(prefix)} must not contain empty, "." or ".." segments, "\\" or NUL`, 'path', path);
  }
  return { bucket, prefix };
}

/**
 * Validates and resolves storage options, without I/O.
 * @throws BackendOptionsError naming the option and quoting its value.
 */
export function compileBackendOptions(o: OpenBackendOptions): CompiledBackendOptions {
  if (o.backend !== 'fs' && o.backend !== 's3') {
    throw new BackendOptionsError(`storage backend ${JSON.stringify(o.backend)} is not one of fs, s3`, 'backend', o.backend);
  }
  if (typeof o.path !== 'string' || o.path.trim() === '') {
    throw new BackendOptionsError(`storage path ${JSON.stringify(o.path)} is empty; give a directory (fs) or bucket/prefix (s3)`, 'path', o.path);
  }
  if (o.path.includes('\0')) throw new BackendOptionsError(`storage path ${JSON.stringify(o.path)} contains a NUL byte`, 'path', o.path);
  if (o.backend === 'fs') {
    for (const [option, value] of [['region', o.region], ['endpoint', o.endpoint]] as const) {
      if (value !== undefined) throw new BackendOptionsError(`storage ${option} ${option === 'endpoint' ? quoteEndpoint(value) : JSON.stringify(value)} applies to the s3 backend only; drop it or use the s3 backend`, option, value);
    }
    if (o.s3PathStyle === true) throw new BackendOptionsError('storage s3 path style applies to the s3 backend only; drop it or use the s3 backend', 's3PathStyle', true);
    if (o.requestTimeoutMs !== undefined) throw new BackendOptionsError('storage request timeout applies to the s3 backend only; drop it or use the s3 backend', 'requestTimeoutMs', o.requestTimeoutMs);
    return { backend: 'fs', root: o.path };
  }
  const { bucket, prefix } = parseS3Path(o.path);
  if (o.region !== undefined && !REGION_RE.test(o.region)) {
    throw new BackendOptionsError(`storage region ${JSON.stringify(o.region)} is not a region name like us-east-1`, 'region', o.region);
  }
  if (o.endpoint !== undefined) checkEndpoint(o.endpoint);
  if (o.requestTimeoutMs !== undefined && !(Number.isSafeInteger(o.requestTimeoutMs) && o.requestTimeoutMs > 0)) {
    throw new BackendOptionsError(`storage request timeout ${JSON.stringify(o.requestTimeoutMs)} ms must be more than 0, e.g. 30s`, 'requestTimeoutMs', o.requestTimeoutMs);
  }
  const s3: S3BackendOptions = { bucket, prefix };
  if (o.requestTimeoutMs !== undefined) s3.requestTimeoutMs = o.requestTimeoutMs;
  if (o.region !== undefined) s3.region = o.region;
  if (o.endpoint !== undefined) s3.endpoint = o.endpoint;
  if (o.s3PathStyle !== undefined) s3.forcePathStyle = o.s3PathStyle;
  return { backend: 's3', s3 };
}

/** Quotes an endpoint for a message with any user info masked: it may hold credentials. */
function quoteEndpoint(endpoint: string): string {
  return JSON.stringify(endpoint.replace(/\/\/[^/@]*@/, '//***@'));
}

function checkEndpoint(endpoint: string): void {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new BackendOptionsError(`storage endpoint ${quoteEndpoint(endpoint)} is not a URL; write it like http://127.0.0.1:9000`, 'endpoint', endpoint);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BackendOptionsError(`storage endpoint ${quoteEndpoint(endpoint)} must start with http:// or https://`, 'endpoint', endpoint);
  }
}

/**
 * Validates the options, then opens the backend (creating an fs root when
 * missing; checking an s3 bucket with HeadBucket).
 * @throws BackendOptionsError for bad options (nothing opened), StorageError when the storage cannot be opened.
 */
export async function openBackend(o: OpenBackendOptions): Promise<StorageBackend> {
  const c = compileBackendOptions(o);
  if (c.backend === 'fs') return FsBackend.create(c.root, { readOnly: o.readOnly === true });
  // Loaded on demand: the s3 module pulls in nothing heavy itself, but keep fs-only starts minimal.
  const { S3Backend } = await import('./s3-backend.js');
  return S3Backend.create(c.s3);
}
