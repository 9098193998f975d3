/**
 * The storage port (SPEC §7): every backend (fs, s3) implements it, and one
 * conformance suite (test/storage/conformance.ts) holds each to it.
 *
 * Keys are `/`-separated, relative to the backend's root (a directory for fs,
 * `bucket/prefix` for s3), never starting with `/` and never containing `..`.
 *
 * Invariant: an object, once visible, never changes and is never deleted by
 * Quarry. Creation is exclusive and atomic: a reader sees no object or the
 * whole object; a second create of the same key fails and changes nothing.
 */

/** What a committed object is, as the manifest records it. */
export interface ObjectInfo {
  key: string;
  bytes: number;
  /** Lowercase hex SHA-256 of the bytes. */
  sha256: string;
}

/** A listed object. */
export interface ListedObject {
  key: string;
  bytes: number;
}

/** An object being written: invisible until {@link commit}. */
export interface ObjectWriter {
  readonly key: string;
  /** Bytes written so far. */
  readonly bytes: number;
  /** Appends bytes. Resolves when the backend has taken them (buffers are bounded). */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Makes the object durable and visible under its key, exclusively.
   * @throws StorageError with code `exists` if the key appeared meanwhile (nothing is replaced).
   */
  commit(): Promise<ObjectInfo>;
  /** Discards what was written; the key stays absent. Safe to call after a failed commit. */
  abort(): Promise<void>;
}

export type BackendKind = 'fs' | 's3';

export interface StorageBackend {
  readonly kind: BackendKind;
  /** Where the root is, for messages and reports: an absolute path or `s3://bucket/prefix`. Never credentials. */
  readonly location: string;
  /**
   * Creates `key` holding `data`, durably, only if it does not exist.
   * @throws StorageError code `exists` when the key exists (the stored object is untouched).
   */
  putNew(key: string, data: Uint8Array | string): Promise<ObjectInfo>;
  /** Opens a writer for a new object, for data too large or too incremental for {@link putNew}. */
  openNew(key: string): Promise<ObjectWriter>;
  /** Whole object. @throws StorageError code `not_found`. */
  get(key: string): Promise<Buffer>;
  /** Object as a stream of chunks, for large objects. @throws StorageError code `not_found`. */
  read(key: string): AsyncIterable<Buffer>;
  /** Size of the object, or undefined when absent. */
  stat(key: string): Promise<ListedObject | undefined>;
  /**
   * Objects whose key starts with `prefix` (a folder prefix ending in `/`), in
   * lexicographic key order, recursively. Objects being written are never listed.
   */
  list(prefix: string): AsyncIterable<ListedObject>;
  /** The immediate child "folders" under `prefix` (ending in `/`), sorted, each ending in `/`, as full prefixes: `listFolders('a/')` → `['a/b/']`. */
  listFolders(prefix: string): Promise<string[]>;
  /** Releases clients and handles. */
  close(): Promise<void>;
}

export type StorageErrorCode = 'exists' | 'not_found' | 'no_space' | 'access_denied' | 'invalid_key' | 'unavailable' | 'io';

/**
 * Every backend failure. The message names the operation and the key or path
 * (SPEC §7); `no_space` and `access_denied` make a run a `policy_failure`.
 */
export class StorageError extends Error {
  override readonly name = 'StorageError';
  constructor(
    readonly code: StorageErrorCode,
    readonly operation: string,
    readonly key: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`storage ${operation} ${key}: ${message}`, options);
  }
}

/** Throws StorageError `invalid_key` unless `key` is a safe relative key. */
export function assertValidKey(key: string, operation: string): void {
  if (key === '' || key.startsWith('/') || key.endsWith('/') || key.split('/').some((s) => s === '' || s === '.' || s === '..') || key.includes('\\') || key.includes('\0')) {
    throw new StorageError('invalid_key', operation, key, 'key must be a relative path without empty, "." or ".." segments');
  }
}
