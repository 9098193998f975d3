/**
 * A create that finds its own bytes is a success (SPEC §7, issue 9.3).
 *
 * An exclusive create can be reported failed although it took effect: on S3 a
 * response lost on the way back makes the SDK retry the PUT, and the retry
 * meets the object the first attempt created (412, `exists`); on the
 * filesystem an error after `link()` (unlinking the temporary name, syncing
 * the folder) fails a put whose object is published. For the objects whose
 * failure decides a run's fate (the run claim, the manifest) that must not
 * read as a failure: the run would be reported failed (exit 3) and a later
 * `validate --pending` would promote it anyway.
 *
 * Invariant: success is claimed only when the object at the key holds
 * exactly the bytes this call wrote (same size, same SHA-256). Anything else
 * (absent, different bytes, unreadable) keeps the original error. The bytes
 * must be unique to the writer (a claim carries a random token, a manifest
 * its run's claim), or two writers could each take the other's create for
 * their own.
 */
import { createHash } from 'node:crypto';
import { StorageError, type ObjectInfo, type StorageBackend } from './backend.js';

/**
 * {@link StorageBackend.putNew}, except that a failure after which the key
 * holds exactly `data` is a success.
 * @throws StorageError the original error of the create when the stored
 *   object is absent, differs or cannot be read back.
 */
export async function putNewOrOwn(backend: StorageBackend, key: string, data: Uint8Array | string): Promise<ObjectInfo> {
  try {
    return await backend.putNew(key, data);
  } catch (err) {
    // A refused key never reached the store: nothing to find.
    if (!(err instanceof StorageError) || err.code === 'invalid_key') throw err;
    const own = await holdsExactly(backend, key, data).catch(() => undefined);
    if (own === undefined) throw err;
    return own;
  }
}

/** The object's info when `key` holds exactly `data`, else undefined. */
async function holdsExactly(backend: StorageBackend, key: string, data: Uint8Array | string): Promise<ObjectInfo | undefined> {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const listed = await backend.stat(key);
  if (listed === undefined || listed.bytes !== bytes.byteLength) return undefined;
  const stored = await backend.get(key);
  const want = createHash('sha256').update(bytes).digest('hex');
  const have = createHash('sha256').update(stored).digest('hex');
  return have === want ? { key, bytes: bytes.byteLength, sha256: want } : undefined;
}
