/**
 * The storage port's conformance suite (SPEC §7): every StorageBackend (fs,
 * s3) runs these same tests through a factory. One fresh, empty backend per test.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError, type ListedObject, type StorageBackend } from '../../src/storage/backend.js';
import { listTreeIds, publishTreeManifest, readTreeManifest, TREE_MANIFEST_VERSION, type TreeManifest } from '../../src/storage/tree-manifest.js';

/** A small finished tree: a root and one child, in dataset `q`. */
function treeManifest(treeId: string, finalizedAt = '2024-01-01T01:00:00.000Z'): TreeManifest {
  const p = { source: 's', category: 'c', day: '2024-01-01' };
  return {
    tree_manifest_version: TREE_MANIFEST_VERSION, contract_version: '1.0.0', tree_id: treeId, dataset: 'q', job_id: treeId,
    options: { depth: 1, max_runs: 10, parallel: 2, allow_failed_children: 0, retries: 0 },
    started_at: '2024-01-01T00:00:00.000Z', finalized_at: finalizedAt,
    items: [
      { key: '["list.ts",{}]', target: 'list.ts', params_digest: 'a'.repeat(64), target_sha256: 'b'.repeat(64), depth: 0, parent_run_id: null, source: null, category: null, status: 'succeeded', reason: null, attempts: [{ run_id: treeId, attempt: 1, partition: p, outcome: 'success' }], final_run_id: treeId },
      { key: '["detail.ts",{"n":1}]', target: 'detail.ts', params_digest: 'c'.repeat(64), target_sha256: 'd'.repeat(64), depth: 1, parent_run_id: treeId, source: null, category: null, status: 'succeeded', reason: null, attempts: [{ run_id: `${treeId}-1`, attempt: 1, partition: p, outcome: 'success' }], final_run_id: `${treeId}-1` },
    ],
    counters: { admitted: 2, succeeded: 2, failed: 0, retried: 0, deduplicated: 0, not_executed_cap: 0, not_executed_depth: 0, requeued: 0 },
  };
}

export interface BackendFixture {
  backend: StorageBackend;
  cleanup(): Promise<void>;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function readAll(backend: StorageBackend, key: string): Promise<Buffer> {
  return Buffer.concat(await collect(backend.read(key)));
}

/** The StorageError a promise rejects with (fails the test if it resolves or throws something else). */
async function storageError(p: Promise<unknown>): Promise<StorageError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError);
    return err as StorageError;
  }
  throw new Error('expected a StorageError, but the call succeeded');
}

export function describeStorageConformance(name: string, factory: () => Promise<BackendFixture>): void {
  describe(`storage conformance: ${name}`, () => {
    let fx: BackendFixture;
    let b: StorageBackend;
    beforeEach(async () => {
      fx = await factory();
      b = fx.backend;
    });
    afterEach(async () => {
      await fx.backend.close();
      await fx.cleanup();
    });

    describe('exclusive create', () => {
      it('putNew stores the bytes and reports their size and sha256', async () => {
        const data = Buffer.from('{"a":1}\n');
        const info = await b.putNew('d/x.json', data);
        expect(info).toEqual({ key: 'd/x.json', bytes: data.byteLength, sha256: sha256(data) });
        expect(await b.get('d/x.json')).toEqual(data);
        expect(await b.stat('d/x.json')).toEqual({ key: 'd/x.json', bytes: data.byteLength });
      });

      it('putNew takes a string as UTF-8', async () => {
        const info = await b.putNew('s.txt', 'héllo');
        expect(info.bytes).toBe(Buffer.byteLength('héllo'));
        expect((await b.get('s.txt')).toString('utf8')).toBe('héllo');
      });

      it('stores an empty object, by putNew and by openNew', async () => {
        expect((await b.putNew('e1', new Uint8Array(0))).bytes).toBe(0);
        const w = await b.openNew('e2');
        const info = await w.commit();
        expect(info).toEqual({ key: 'e2', bytes: 0, sha256: sha256(new Uint8Array(0)) });
        expect((await b.get('e1')).byteLength).toBe(0);
        expect(await b.stat('e2')).toEqual({ key: 'e2', bytes: 0 });
      });

      it('a second create of a key fails with exists and leaves the stored bytes unchanged', async () => {
        await b.putNew('k/obj', 'first');
        const err = await storageError(b.putNew('k/obj', 'second, longer'));
        expect(err.code).toBe('exists');
        expect(err.operation).toBe('put');
        expect((await b.get('k/obj')).toString()).toBe('first');
      });

      it('a writer committing over an existing key fails with exists and replaces nothing', async () => {
        await b.putNew('k/w', 'original');
        const w = await b.openNew('k/w');
        await w.write(Buffer.from('intruder'));
        const err = await storageError(w.commit());
        expect(err.code).toBe('exists');
        await w.abort();
        expect((await b.get('k/w')).toString()).toBe('original');
      });

      it('a large writer (several parts) committing over an existing key fails with exists', async () => {
        await b.putNew('k/big', 'original');
        const w = await b.openNew('k/big');
        let err: StorageError | undefined;
        try {
          for (let i = 0; i < 10; i++) await w.write(randomBytes(1024 * 1024));
          await w.commit();
        } catch (e) {
          err = e as StorageError;
        }
        expect(err).toBeInstanceOf(StorageError);
        expect(err!.code).toBe('exists');
        await w.abort();
        expect((await b.get('k/big')).toString()).toBe('original');
      });
    });

    describe('openNew', () => {
      it('a 20 MiB object written in uneven chunks reads back byte-identical with the right sha256', async () => {
        const data = randomBytes(20 * 1024 * 1024 + 12345);
        const w = await b.openNew('big/blob.bin');
        const sizes = [1, 4096, 3 * 1024 * 1024 + 7, 9 * 1024 * 1024, 65536];
        let off = 0;
        for (let i = 0; off < data.length; i++) {
          const n = Math.min(sizes[i % sizes.length]!, data.length - off);
          await w.write(data.subarray(off, off + n));
          off += n;
          expect(w.bytes).toBe(off);
        }
        const info = await w.commit();
        expect(info).toEqual({ key: 'big/blob.bin', bytes: data.length, sha256: sha256(data) });
        expect(await b.stat('big/blob.bin')).toEqual({ key: 'big/blob.bin', bytes: data.length });
        const streamed = await readAll(b, 'big/blob.bin');
        expect(streamed.length).toBe(data.length);
        expect(sha256(streamed)).toBe(sha256(data));
        expect(sha256(await b.get('big/blob.bin'))).toBe(sha256(data));
      });

      it('writes issued without awaiting each land in call order', async () => {
        const w = await b.openNew('order.txt');
        await Promise.all(Array.from({ length: 50 }, (_, i) => w.write(Buffer.from(`${i},`))));
        await w.commit();
        expect((await b.get('order.txt')).toString()).toBe(Array.from({ length: 50 }, (_, i) => `${i},`).join(''));
      });

      it('nothing is visible before commit, and nothing after abort', async () => {
        const w = await b.openNew('p/seg.jsonl');
        await w.write(Buffer.from('line\n'));
        expect(await b.stat('p/seg.jsonl')).toBeUndefined();
        expect(await collect(b.list(''))).toEqual([]);
        expect((await storageError(b.get('p/seg.jsonl'))).code).toBe('not_found');
        await w.abort();
        expect(await b.stat('p/seg.jsonl')).toBeUndefined();
        expect(await collect(b.list(''))).toEqual([]);
        expect(await b.listFolders('')).toEqual([]);
        // The key stays free: a later create succeeds.
        await b.putNew('p/seg.jsonl', 'later');
        expect((await b.get('p/seg.jsonl')).toString()).toBe('later');
      });

      it('a large object is invisible until commit and absent after abort', async () => {
        const w = await b.openNew('p/large.bin');
        for (let i = 0; i < 3; i++) await w.write(randomBytes(6 * 1024 * 1024));
        expect(await b.stat('p/large.bin')).toBeUndefined();
        expect(await collect(b.list('p/'))).toEqual([]);
        await w.abort();
        expect(await b.stat('p/large.bin')).toBeUndefined();
        expect(await collect(b.list(''))).toEqual([]);
      });

      it('a writer refuses writes after commit and abort is then a no-op', async () => {
        const w = await b.openNew('done.txt');
        await w.write(Buffer.from('x'));
        await w.commit();
        expect(await storageError(w.write(Buffer.from('y')))).toBeInstanceOf(StorageError);
        await w.abort();
        expect((await b.get('done.txt')).toString()).toBe('x');
      });
    });

    describe('list and listFolders', () => {
      const keys = ['a.txt', 'a/x.txt', 'a/b/c.txt', 'a/b-c.txt', 'a/b/a.txt', 'b/y.txt', 'a/b/d/e.txt', 'ab/z.txt'];
      beforeEach(async () => {
        for (const k of keys) await b.putNew(k, `content of ${k}`);
      });

      it('list is recursive, in lexicographic key order, with sizes', async () => {
        const all = await collect(b.list(''));
        const sorted = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
        expect(all.map((o) => o.key)).toEqual(sorted);
        for (const o of all) expect(o.bytes).toBe(Buffer.byteLength(`content of ${o.key}`));
      });

      it('list(prefix) returns only keys under the prefix, in order ("a/b-c.txt" sorts before "a/b/…")', async () => {
        expect((await collect(b.list('a/'))).map((o: ListedObject) => o.key)).toEqual(['a/b-c.txt', 'a/b/a.txt', 'a/b/c.txt', 'a/b/d/e.txt', 'a/x.txt']);
        expect((await collect(b.list('a/b/'))).map((o) => o.key)).toEqual(['a/b/a.txt', 'a/b/c.txt', 'a/b/d/e.txt']);
        expect(await collect(b.list('nope/'))).toEqual([]);
      });

      it('listFolders returns the immediate child folders as full prefixes, sorted', async () => {
        expect(await b.listFolders('')).toEqual(['a/', 'ab/', 'b/']);
        expect(await b.listFolders('a/')).toEqual(['a/b/']);
        expect(await b.listFolders('a/b/')).toEqual(['a/b/d/']);
        expect(await b.listFolders('a/b/d/')).toEqual([]);
        expect(await b.listFolders('missing/')).toEqual([]);
      });
    });

    describe('missing objects and invalid keys', () => {
      it('get and read of a missing key fail with not_found; stat says undefined', async () => {
        expect((await storageError(b.get('no/such.json'))).code).toBe('not_found');
        expect((await storageError(collect(b.read('no/such.json')))).code).toBe('not_found');
        expect(await b.stat('no/such.json')).toBeUndefined();
      });

      it('a folder is not an object', async () => {
        await b.putNew('dir/child', 'x');
        expect(await b.stat('dir')).toBeUndefined();
        expect((await storageError(b.get('dir'))).code).toBe('not_found');
      });

      it.each(['', '/abs', 'a/../b', '..', 'a//b', 'a/', './a', 'a\\b', 'nul\0'])('rejects the invalid key %j everywhere', async (key) => {
        for (const op of [() => b.putNew(key, 'x'), () => b.openNew(key), () => b.get(key), () => b.stat(key), () => collect(b.read(key))]) {
          expect((await storageError(op())).code).toBe('invalid_key');
        }
        expect(await collect(b.list(''))).toEqual([]);
      });

      it('stores keys with spaces and non-ASCII characters', async () => {
        const key = 'files/rapport final é+&.txt';
        await b.putNew(key, 'ok');
        expect((await b.get(key)).toString()).toBe('ok');
        expect((await collect(b.list('files/'))).map((o) => o.key)).toEqual([key]);
      });
    });

    describe('concurrency and atomicity', () => {
      it('of 8 concurrent putNew calls to one key exactly one wins; the object is exactly its bytes', async () => {
        const bodies = Array.from({ length: 8 }, (_, i) => Buffer.from(`writer ${i} `.repeat(1000 + i)));
        const results = await Promise.allSettled(bodies.map((body) => b.putNew('race/key', body)));
        const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        expect(won).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect((r.reason as StorageError).code).toBe('exists');
        }
        expect(await b.get('race/key')).toEqual(bodies[won[0]!]);
      });

      it('of 8 concurrent writers committing one key exactly one wins; the object is exactly its bytes', async () => {
        const bodies = Array.from({ length: 8 }, (_, i) => randomBytes(200_000 + i));
        const results = await Promise.allSettled(
          bodies.map(async (body) => {
            const w = await b.openNew('race/writer');
            await w.write(body.subarray(0, 100_000));
            await w.write(body.subarray(100_000));
            try {
              return await w.commit();
            } catch (err) {
              await w.abort();
              throw err;
            }
          }),
        );
        const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        expect(won).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect((r.reason as StorageError).code).toBe('exists');
        }
        expect(sha256(await b.get('race/writer'))).toBe(sha256(bodies[won[0]!]!));
        expect(await collect(b.list('race/'))).toEqual([{ key: 'race/writer', bytes: bodies[won[0]!]!.length }]);
      });

      it('a manifest is published atomically: a polling reader sees no object or the whole object', async () => {
        const manifest = Buffer.from(`${JSON.stringify({ objects: Array.from({ length: 20_000 }, (_, i) => ({ path: `event_type=item/part-${i}.jsonl`, sha256: 'f'.repeat(64) })) }, null, 2)}\n`);
        const key = 'datasets/q/partitions/source=s/category=c/day=2024-01-01/run_id=r/_manifest.json';
        let done = false;
        const seen = { absent: 0, whole: 0 };
        const poller = (async () => {
          while (!done) {
            const st = await b.stat(key);
            if (st !== undefined) expect(st.bytes).toBe(manifest.length);
            try {
              const got = await b.get(key);
              expect(got.length).toBe(manifest.length);
              expect(got.equals(manifest)).toBe(true);
              seen.whole++;
            } catch (err) {
              expect((err as StorageError).code).toBe('not_found');
              seen.absent++;
            }
            await new Promise((r) => setImmediate(r));
          }
        })();
        await new Promise((r) => setTimeout(r, 5));
        await b.putNew(key, manifest);
        await new Promise((r) => setTimeout(r, 20));
        done = true;
        await poller;
        expect(seen.absent + seen.whole).toBeGreaterThan(0);
        expect((await b.get(key)).equals(manifest)).toBe(true);
      });
    });

    describe('tree manifest (SPEC §8 run trees)', () => {
      it('is published exclusively and reads back with the SHA-256 of its bytes', async () => {
        const m = treeManifest('T1');
        const pub = await publishTreeManifest(b, 'q', m);
        expect(pub.key).toBe('datasets/q/trees/T1.json');
        const got = await readTreeManifest(b, 'q', 'T1');
        expect(got?.manifest).toEqual(m);
        expect(got?.sha256).toBe(pub.sha256);
        expect(sha256(await b.get(pub.key))).toBe(pub.sha256);
        expect(await readTreeManifest(b, 'q', 'T-none')).toBeUndefined();
        expect(await listTreeIds(b, 'q')).toEqual(['T1']);
      });

      it('publishing the same bytes again is a success; other bytes for the tree are refused and replace nothing', async () => {
        const pub = await publishTreeManifest(b, 'q', treeManifest('T2'));
        expect(await publishTreeManifest(b, 'q', treeManifest('T2'))).toEqual(pub);
        const err = await storageError(publishTreeManifest(b, 'q', treeManifest('T2', '2024-01-01T02:00:00.000Z')));
        expect(err.code).toBe('exists');
        expect((await readTreeManifest(b, 'q', 'T2'))?.sha256).toBe(pub.sha256);
      });
    });
  });
}
