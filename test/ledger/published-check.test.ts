/**
 * Segments checked as they are published (PublishedCheck, SPEC §8): the
 * validation at the end still reads back and hashes every object, parses the
 * lines only of those not checked, and finds everything a full validation
 * finds. Real FsBackend, real SQLite ledger, run partitions written by the
 * fixture writer.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { StorageBackend } from '../../src/storage/backend.js';
import { PublishedCheck, PublishedCheckThread } from '../../src/ledger/published-check.js';
import { checkRun } from '../../src/ledger/run-checks.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { validateRun } from '../../src/ledger/validator.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { manifestKey } from '../../src/storage/layout.js';
import type { ManifestObject } from '../../src/storage/manifest.js';
import { appendBytes, deleteObject, flipByte, rewriteManifest, writeRunFixture, type RunFixture } from '../_harness/run-fixtures.js';

let dir: string;
let fs: FsBackend;
/** `fs`, counting the objects read back (`read`) by key. */
let storage: StorageBackend;
let reads: Map<string, number>;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'quarry-published-check-'));
  fs = await FsBackend.create(join(dir, 'data'));
  reads = new Map();
  storage = new Proxy(fs, {
    get(target, prop) {
      if (prop === 'read') {
        return (key: string) => {
          reads.set(key, (reads.get(key) ?? 0) + 1);
          return target.read(key);
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
});
afterEach(async () => {
  await fs.close();
  await rm(dir, { recursive: true, force: true });
});

const records = (f: RunFixture): ManifestObject[] => f.manifest.objects.filter((o) => o.kind === 'records');
const root = (): string => join(dir, 'data');

/** What a validation that reads every object back finds (no ledger, nothing cached). */
async function fullCheck(f: RunFixture): Promise<string[]> {
  const { reasons } = await checkRun(fs, f.partition, await fs.get(manifestKey(f.partition)));
  return reasons.map((r) => `${r.code} ${r.object ?? ''}`);
}

async function checkedAsPublished(f: RunFixture, objects: ManifestObject[] = records(f)): Promise<PublishedCheck> {
  const check = new PublishedCheck(storage);
  // As the flushes list them: a few at a time.
  for (let i = 0; i < objects.length; i += 2) check.add(f.partition, objects.slice(i, i + 2));
  return check;
}

describe('PublishedCheck', () => {
  it('parses each published segment once, as published; the validation at the end reads every object back but parses only the rest', async () => {
    const f = await writeRunFixture(storage, { run_id: 'pub', items: 40, itemsPerSegment: 7, logs: 5 });
    const parse = vi.spyOn(JSON, 'parse');
    const check = await checkedAsPublished(f);
    const pre = await check.result();
    expect(pre.clean).toBe(true);
    expect([...pre.objects.keys()]).toEqual(records(f).map((o) => o.path));
    const lines = records(f).reduce((n, o) => n + o.records!, 0);
    expect(parse).toHaveBeenCalledTimes(lines);
    parse.mockClear();
    const ledger = await SqliteLedger.create(join(dir, 'ledger.sqlite'));
    try {
      const v = await validateRun(storage, ledger, f.partition, { preverified: pre });
      expect(v).toMatchObject({ status: 'valid', reasons: [], promoted: true });
      // The manifest, the claim and the metrics record: no segment line is parsed again.
      expect(parse.mock.calls.length).toBeLessThan(lines);
      expect(parse.mock.calls.map((c) => String(c[0])).filter((t) => t.includes('"event_type":"item"'))).toEqual([]);
    } finally {
      parse.mockRestore();
      await ledger.close();
    }
    // Every listed object read back at the end; the segments also once as published.
    expect(Object.fromEntries(reads)).toEqual(Object.fromEntries(f.manifest.objects.map((o) => [`${f.prefix}${o.path}`, o.kind === 'records' ? 2 : 1])));
  });

  it('the run-wide seq checks join what was checked as published with what is read at the end', async () => {
    // Only the item segments checked as published; the log and run_complete segments at the end.
    const f = await writeRunFixture(storage, { run_id: 'part', items: 12, itemsPerSegment: 5, logs: 3 });
    const pre = await (await checkedAsPublished(f, records(f).filter((o) => o.event_type === 'item'))).result();
    expect(pre.clean).toBe(true);
    const { reasons } = await checkRun(storage, f.partition, await fs.get(manifestKey(f.partition)), 4, pre);
    expect(reasons).toEqual([]);
    // A run whose records miss the terminal event or hold one too few is still caught: the manifest says one more persisted.
    const m = { ...f.manifest, policy: { ...f.manifest.policy, events_persisted: f.manifest.policy.events_persisted + 1, events_received: f.manifest.policy.events_received + 1 }, seq: { first: 1, last: f.manifest.seq.last! + 1 } };
    await rewriteManifest(root(), f.partition, m);
    const pre2 = await (await checkedAsPublished(f, records(f).filter((o) => o.event_type === 'item'))).result();
    const again = await checkRun(storage, f.partition, await fs.get(manifestKey(f.partition)), 4, pre2);
    expect(again.reasons.map((r) => r.code).sort()).toEqual((await fullCheck(f)).map((c) => c.split(' ')[0]).sort());
    expect(again.reasons.map((r) => r.code)).toContain('terminal_event_missing');
  });

  it('an object removed, grown or changed after its check is found at the end (its bytes are read back and hashed again)', async () => {
    const f = await writeRunFixture(storage, { run_id: 'gone', items: 12, itemsPerSegment: 3 });
    const pre = await (await checkedAsPublished(f)).result();
    expect(pre.clean).toBe(true);
    const [a, b, c] = records(f);
    await deleteObject(root(), `${f.prefix}${a!.path}`);
    await appendBytes(root(), `${f.prefix}${b!.path}`, '{"x":1}\n');
    await flipByte(root(), `${f.prefix}${c!.path}`, 5);
    const { reasons } = await checkRun(storage, f.partition, await fs.get(manifestKey(f.partition)), 4, pre);
    expect(reasons.map((r) => `${r.code} ${r.object ?? ''}`)).toEqual(await fullCheck(f));
    expect(reasons.map((r) => r.code)).toEqual(['object_missing', 'object_size_mismatch', 'object_sha256_mismatch']);
  });

  it('a segment that fails its check makes the result unusable: the validation reads everything and reports what a full one does', async () => {
    const f = await writeRunFixture(storage, { run_id: 'bad', items: 9, itemsPerSegment: 3 });
    await flipByte(root(), `${f.prefix}${records(f)[1]!.path}`, 10);
    const pre = await (await checkedAsPublished(f)).result();
    expect(pre.clean).toBe(false);
    reads.clear();
    const { reasons } = await checkRun(storage, f.partition, await fs.get(manifestKey(f.partition)), 4, pre);
    expect(reasons.map((r) => `${r.code} ${r.object ?? ''}`)).toEqual(await fullCheck(f));
    expect(reasons.map((r) => r.code)).toEqual(['object_sha256_mismatch']);
    expect(reads.size).toBe(f.manifest.objects.length);
  });

  it('a manifest that lists a checked object other than it was checked is validated in full', async () => {
    const f = await writeRunFixture(storage, { run_id: 'relisted', items: 9, itemsPerSegment: 3 });
    const pre = await (await checkedAsPublished(f)).result();
    const objects = f.manifest.objects.map((o, i) => (i === f.manifest.objects.indexOf(records(f)[0]!) ? { ...o, sha256: 'f'.repeat(64) } : o));
    await rewriteManifest(root(), f.partition, { ...f.manifest, objects });
    reads.clear();
    const { reasons } = await checkRun(storage, f.partition, await fs.get(manifestKey(f.partition)), 4, pre);
    expect(reasons.map((r) => r.code)).toEqual(['object_sha256_mismatch']);
    expect(reads.size).toBe(f.manifest.objects.length);
  });

  it('a checked object the manifest does not list makes the result unusable (its seqs would count twice)', async () => {
    const f = await writeRunFixture(storage, { run_id: 'unlisted', items: 9, itemsPerSegment: 3 });
    const extra: ManifestObject = { ...records(f)[0]!, path: 'event_type=item/part-000099.jsonl' };
    const bytes = await fs.get(`${f.prefix}${records(f)[0]!.path}`);
    await fs.putNew(`${f.prefix}${extra.path}`, bytes);
    const pre = await (await checkedAsPublished(f, [extra, ...records(f)])).result();
    // The extra copy repeats seqs: the check itself sees the duplicates and gives up.
    expect(pre.clean).toBe(false);
    const { reasons } = await checkRun(storage, f.partition, await fs.get(manifestKey(f.partition)), 4, pre);
    expect(reasons).toEqual([]);
  });
});

describe('PublishedCheckThread (the built worker)', () => {
  const entry = new URL('../../dist/ledger/published-check-worker.js', import.meta.url);

  it('checks in its thread what the main thread would, and its result stands in for reading the segments again', async () => {
    const f = await writeRunFixture(fs, { run_id: 'thread', items: 30, itemsPerSegment: 4, logs: 2 });
    const thread = new PublishedCheckThread(fs.location, entry);
    for (const o of records(f)) thread.add(f.partition, [o]);
    const pre = await thread.result();
    expect(pre.clean).toBe(true);
    expect([...pre.objects.values()]).toEqual(records(f));
    expect(pre.seqs.persisted).toBe(records(f).reduce((n, o) => n + o.records!, 0));
    const parse = vi.spyOn(JSON, 'parse');
    try {
      const { reasons } = await checkRun(storage, f.partition, await fs.get(manifestKey(f.partition)), 4, pre);
      expect(reasons).toEqual([]);
      // The thread parsed the segments; the validation parsed the manifest and the metrics record.
      expect(parse).toHaveBeenCalledTimes(2);
    } finally {
      parse.mockRestore();
    }
  });

  it('a corrupt segment makes its result unusable, and a thread never given a segment reports nothing usable', async () => {
    const f = await writeRunFixture(fs, { run_id: 'thread-bad', items: 8, itemsPerSegment: 4 });
    await flipByte(root(), `${f.prefix}${records(f)[0]!.path}`, 3);
    const thread = new PublishedCheckThread(fs.location, entry);
    thread.add(f.partition, records(f));
    expect((await thread.result()).clean).toBe(false);
    expect((await new PublishedCheckThread(fs.location, entry).result()).clean).toBe(false);
  });

  it('a thread that cannot start leaves the validation to read everything', async () => {
    const f = await writeRunFixture(fs, { run_id: 'thread-none', items: 4 });
    const thread = new PublishedCheckThread(fs.location, new URL('file:///nonexistent/published-check-worker.js'));
    thread.add(f.partition, records(f));
    expect((await thread.result()).clean).toBe(false);
  });
});
