/**
 * `storage.put`: sidecar files in the run's partition (SPEC §2, §3, §7).
 *
 * The `file_write` frame takes its place on the emit chain (order with events
 * is call order, terminal and poison rules are shared); the wait for the
 * runtime's `file_write_ack` happens off the chain, so several puts can be in
 * flight while emits go on.
 */
import { MAX_CHUNK_BYTES, type RunRequestStorage } from '../protocol/index.js';
import { chainOf, toBytes } from './emit.js';
import { EmitValidationError, SizeLimitError, StorageFilenameError, StorageWriteError } from './errors.js';
import type { EmitAPI, StorageAPI, StoragePutResult } from './types.js';

/** Options of {@link createStorageAPI}. */
export interface StorageOptions {
  /**
   * The run's partition, from the run request's `storage` field. Without it
   * keys are relative to the run folder (`files/<filename>`).
   */
  readonly partition?: RunRequestStorage;
}

/**
 * Why `filename` cannot name a sidecar file, or undefined when it can.
 * Rules (SPEC §2): non-empty, no `/`, no `\`, no `..`; `.` alone names the folder itself.
 */
export function checkStorageFilename(filename: unknown): string | undefined {
  if (typeof filename !== 'string') return 'must be a string';
  if (filename === '') return 'must not be empty';
  if (filename.includes('/')) return 'must not contain "/"';
  if (filename.includes('\\')) return 'must not contain "\\"';
  if (filename.includes('..')) return 'must not contain ".."';
  if (filename === '.') return 'must not be "."';
  if (filename.includes('\0')) return 'must not contain a NUL character';
  return undefined;
}

/**
 * The storage key of a run's sidecar file:
 * `datasets/<dataset>/partitions/source=<s>/category=<c>/day=<d>/run_id=<r>/files/<filename>`.
 * Built here rather than imported, because the SDK depends on nothing but the protocol.
 */
export function sidecarKey(partition: RunRequestStorage | undefined, filename: string): string {
  if (!partition) return `files/${filename}`;
  const { dataset, source, category, day, run_id } = partition;
  return `datasets/${dataset}/partitions/source=${source}/category=${category}/day=${day}/run_id=${run_id}/files/${filename}`;
}

/**
 * Creates the storage API of a run, sharing the chain of `emit`.
 *
 * @param emit an emit API made by `createEmitAPI` for the same run.
 * @throws TypeError when `emit` was not made by `createEmitAPI`.
 */
export function createStorageAPI(emit: EmitAPI, options: StorageOptions = {}): StorageAPI {
  const chain = chainOf(emit);
  const method = 'storage.put';
  const storage: StorageAPI = {
    put(o) {
      let data: Uint8Array;
      let filename: string;
      let contentType: string;
      try {
        chain.assertOpen(method);
        const bad = checkStorageFilename(o?.filename);
        if (bad) throw new StorageFilenameError(String(o?.filename), bad);
        filename = o.filename;
        if (typeof o.content_type !== 'string' || o.content_type === '') throw new EmitValidationError(method, 'content_type must be a non-empty string such as "text/html"');
        contentType = o.content_type;
        if (typeof o.data !== 'string' && !(o.data instanceof Uint8Array)) throw new EmitValidationError(method, 'data must be a Uint8Array, Buffer or string');
        data = toBytes(o.data);
        if (data.byteLength > MAX_CHUNK_BYTES) throw new SizeLimitError('file', data.byteLength, MAX_CHUNK_BYTES, `storage.put ${JSON.stringify(filename)}`);
      } catch (err) {
        return Promise.reject(err);
      }
      const written = chain.enqueue(method, async () => {
        const writeId = chain.nextWriteId();
        await chain.write(method, { type: 'file_write', write_id: writeId, filename, content_type: contentType, data });
        return writeId;
      });
      return written.then(async (writeId): Promise<StoragePutResult> => {
        let ack;
        try {
          ack = await chain.sink.awaitFileWriteAck(writeId);
        } catch (err) {
          throw new StorageWriteError(filename, writeId, `no acknowledgement from the runtime (${err instanceof Error ? err.message : String(err)})`, { cause: err });
        }
        if (!ack.ok) throw new StorageWriteError(filename, writeId, ack.error ?? 'the runtime refused the write');
        return Object.freeze({ key: sidecarKey(options.partition, filename) });
      });
    },
  };
  return Object.freeze(storage);
}
