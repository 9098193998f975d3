/**
 * An in-memory StorageBackend for in-process fuzzing of the readers and the
 * validator: no disk, so 100k runs cost microseconds each. It keeps the port's
 * rules that readers rely on (exclusive create, sorted listing, valid keys) and
 * serves `read` in chunks of `chunkBytes`, so line splitting across chunk
 * boundaries is exercised. Not a conformance-tested backend: tests only.
 */
import { createHash } from 'node:crypto';
import { assertValidKey, StorageError, type ListedObject, type ObjectInfo, type ObjectWriter, type StorageBackend } from '../../src/storage/backend.js';

export class MemoryBackend implements StorageBackend {
  readonly kind = 'fs' as const;
  readonly location = 'memory:';
  readonly objects = new Map<string, Buffer>();

  constructor(readonly chunkBytes = 64 * 1024) {}

  /** Sets an object outright, replacing it: how a fuzzer plants a mutated object. Not part of the port. */
  plant(key: string, data: Uint8Array | string): void {
    this.objects.set(key, Buffer.from(data));
  }

  async putNew(key: string, data: Uint8Array | string): Promise<ObjectInfo> {
    assertValidKey(key, 'put');
    if (this.objects.has(key)) throw new StorageError('exists', 'put', key, 'object exists');
    const b = Buffer.from(data);
    this.objects.set(key, b);
    return { key, bytes: b.byteLength, sha256: createHash('sha256').update(b).digest('hex') };
  }

  async openNew(key: string): Promise<ObjectWriter> {
    const parts: Buffer[] = [];
    let bytes = 0;
    return {
      key,
      get bytes() {
        return bytes;
      },
      write: async (chunk) => {
        parts.push(Buffer.from(chunk));
        bytes += chunk.byteLength;
      },
      commit: () => this.putNew(key, Buffer.concat(parts)),
      abort: async () => {},
    };
  }

  async get(key: string): Promise<Buffer> {
    const b = this.objects.get(key);
    if (b === undefined) throw new StorageError('not_found', 'get', key, 'no such object');
    return b;
  }

  async *read(key: string): AsyncIterable<Buffer> {
    const b = await this.get(key);
    for (let i = 0; i < b.byteLength; i += this.chunkBytes) yield b.subarray(i, i + this.chunkBytes);
  }

  async stat(key: string): Promise<ListedObject | undefined> {
    const b = this.objects.get(key);
    return b === undefined ? undefined : { key, bytes: b.byteLength };
  }

  async *list(prefix: string): AsyncIterable<ListedObject> {
    for (const key of [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort()) yield { key, bytes: this.objects.get(key)!.byteLength };
  }

  async listFolders(prefix: string): Promise<string[]> {
    const folders = new Set<string>();
    for (const key of this.objects.keys()) {
      if (!key.startsWith(prefix)) continue;
      const slash = key.indexOf('/', prefix.length);
      if (slash !== -1) folders.add(key.slice(0, slash + 1));
    }
    return [...folders].sort();
  }

  async close(): Promise<void> {}
}
