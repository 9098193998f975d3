import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/storage/backend.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { FaultyBackend } from '../_harness/faulty-backend.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

/** For `.then(unexpected, …)`: the call under test was expected to fail. */
const unexpected = (): never => {
  throw new Error('expected a StorageError, but the call succeeded');
};


let dir: TempDir;
let inner: FsBackend;
beforeEach(async () => {
  dir = await makeTempDir('faulty');
  inner = await FsBackend.create(dir.path);
});
afterEach(async () => {
  await dir.remove();
});

describe('faulty backend (test harness)', () => {
  it('fails only the Nth write, once, with the chosen code, and publishes nothing for it', async () => {
    const b = new FaultyBackend(inner, { fault: { failAt: 2, code: 'no_space' } });
    await b.putNew('a', '1');
    const err = await b.putNew('b', '22').then(unexpected, (e: unknown) => e as StorageError);
    expect(err).toBeInstanceOf(StorageError);
    expect(err.code).toBe('no_space');
    expect(await inner.stat('b')).toBeUndefined();
    await b.putNew('b', '22');
    expect(b.writes.get('b')).toEqual({ attempts: 2, published: 1, failed: 1, bytesAttempted: 4 });
    expect(b.rewrittenKeys()).toEqual(['b']);
    expect(b.log.map((l) => l.ok)).toEqual([true, false, true]);
  });

  it('from N on, every matching write fails; commits count and an injected commit failure aborts the writer', async () => {
    const b = new FaultyBackend(inner, { fault: { failAt: 1, mode: 'from', code: 'io', match: (k) => k.endsWith('.jsonl') } });
    await b.putNew('_manifest.json', '{}');
    const w = await b.openNew('seg.jsonl');
    await w.write(Buffer.from('line\n'));
    expect((await w.commit().then(unexpected, (e: unknown) => e as StorageError)).code).toBe('io');
    expect(await inner.stat('seg.jsonl')).toBeUndefined();
    expect((await b.putNew('seg2.jsonl', 'x').then(unexpected, (e: unknown) => e as StorageError)).code).toBe('io');
    b.setFault(undefined);
    await b.putNew('seg2.jsonl', 'x');
    expect(b.writeCount).toBe(4);
    expect(b.writes.get('seg.jsonl')).toMatchObject({ attempts: 1, failed: 1, bytesAttempted: 5 });
  });

  it('delays every write by the configured time', async () => {
    const b = new FaultyBackend(inner, { delayMs: 40 });
    const t0 = performance.now();
    await b.putNew('x', 'y');
    const w = await b.openNew('z');
    await w.commit();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(75);
  });

  it('a failure from the inner backend is counted as a failed attempt', async () => {
    const b = new FaultyBackend(inner);
    await b.putNew('k', 'v');
    expect((await b.putNew('k', 'v2').then(unexpected, (e: unknown) => e as StorageError)).code).toBe('exists');
    expect(b.log[1]).toEqual({ key: 'k', ok: false, bytes: 2, code: 'exists' });
  });
});
