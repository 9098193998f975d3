import { describe, expect, it } from 'vitest';
import { createStorageBatcher, type StoragePutOptions, type StoragePutResult } from '../../src/sdk/index.js';

/** A storage whose puts finish when the test says so. */
function manualStorage() {
  const pending: { name: string; resolve(r: StoragePutResult): void; reject(e: unknown): void }[] = [];
  let inflight = 0;
  let maxInflight = 0;
  const started: string[] = [];
  return {
    pending,
    started,
    get maxInflight() {
      return maxInflight;
    },
    put(o: StoragePutOptions): Promise<StoragePutResult> {
      inflight++;
      maxInflight = Math.max(maxInflight, inflight);
      started.push(o.filename);
      return new Promise<StoragePutResult>((resolve, reject) => pending.push({ name: o.filename, resolve, reject })).finally(() => inflight--);
    },
  };
}
const file = (name: string): StoragePutOptions => ({ filename: name, content_type: 'text/plain', data: name });
const tick = () => new Promise((r) => setTimeout(r, 0));

describe('createStorageBatcher', () => {
  it('never has more than `concurrency` puts in flight and resolves each put with its key', async () => {
    const storage = manualStorage();
    const b = createStorageBatcher(storage, { concurrency: 3 });
    const results = Array.from({ length: 10 }, (_, i) => b.add(file(`f${i}`)).result);
    expect(storage.started).toHaveLength(3);
    expect(b.pending).toBe(10);
    while (storage.pending.length > 0) {
      const p = storage.pending.shift()!;
      p.resolve({ key: `files/${p.name}` });
      await tick();
    }
    await b.flush();
    expect(storage.maxInflight).toBe(3);
    expect(storage.started).toHaveLength(10);
    expect((await Promise.all(results)).map((r) => r.key)).toEqual(Array.from({ length: 10 }, (_, i) => `files/f${i}`));
    expect(b.pending).toBe(0);
  });

  it('defaults to 16 concurrent puts', () => {
    const storage = manualStorage();
    const b = createStorageBatcher(storage);
    for (let i = 0; i < 20; i++) b.add(file(`f${i}`));
    expect(storage.started).toHaveLength(16);
  });

  it('fails fast: after the first failure queued puts never start, new adds reject, flush rejects with that failure', async () => {
    const storage = manualStorage();
    const b = createStorageBatcher(storage, { concurrency: 2 });
    const results = Array.from({ length: 5 }, (_, i) => b.add(file(`f${i}`)).result);
    const boom = new Error('disk full');
    storage.pending.shift()!.reject(boom);
    await tick();
    storage.pending.shift()!.resolve({ key: 'files/f1' });
    await expect(b.flush()).rejects.toBe(boom);
    expect(storage.started).toEqual(['f0', 'f1']);
    const settled = await Promise.allSettled(results);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'fulfilled', 'rejected', 'rejected', 'rejected']);
    await expect(b.add(file('late')).result).rejects.toBe(boom);
    expect(storage.started).toEqual(['f0', 'f1']);
  });

  it('flush resolves at once when nothing is pending', async () => {
    const b = createStorageBatcher(manualStorage());
    await expect(b.flush()).resolves.toBeUndefined();
  });

  it('rejects a concurrency that is not a positive integer', () => {
    expect(() => createStorageBatcher(manualStorage(), { concurrency: 0 })).toThrow(/positive integer, got 0/);
  });
});
