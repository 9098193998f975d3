import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError, type StorageBackend } from '../../src/storage/backend.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { manifestKey, runClaimKey, runPrefix, segmentName, type RunPartition } from '../../src/storage/layout.js';
import { ManifestError, serializeManifest, type RunManifest } from '../../src/storage/manifest.js';
import { listRunClaims, listRuns, mapOrdered, readArtifact, readManifest, readRunClaim, ReaderError, streamRecords } from '../../src/storage/reader.js';
import type { EventRecord, StoredRecord } from '../../src/storage/records.js';
import { FaultyBackend } from '../_harness/faulty-backend.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
import { eventsOf, writeRun } from './run-fixture.js';

const part = (run_id: string, over: Partial<RunPartition> = {}): RunPartition => ({ dataset: 'quarry', source: 'shop', category: 'default', day: '2024-01-01', run_id, ...over });

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

let dir: TempDir;
let backend: StorageBackend;
beforeEach(async () => {
  dir = await makeTempDir('reader');
  backend = await FsBackend.create(dir.path);
});
afterEach(async () => {
  await dir.remove();
});

describe('manifests and claims', () => {
  it('readManifest is undefined for a run that never finalized and the manifest once it did', async () => {
    await writeRun(backend, { partition: part('r-open'), events: eventsOf('r-open', ['item']) });
    const written = await writeRun(backend, { partition: part('r-done'), outcome: 'success', events: eventsOf('r-done', ['item', 'run_complete']) });
    expect(await readManifest(backend, part('r-open'))).toBeUndefined();
    expect(await readManifest(backend, part('r-done'))).toEqual(written);
  });

  it('a malformed manifest is an error naming its location, not an unfinalized run', async () => {
    await backend.putNew(manifestKey(part('bad')), '{"manifest_version":1}');
    await expect(readManifest(backend, part('bad'))).rejects.toThrow(ManifestError);
    await expect(readManifest(backend, part('bad'))).rejects.toThrow(/run_id=bad\/_manifest.json: field/);
  });

  it('listRunClaims returns every claim in run_id order; readRunClaim finds one or says undefined', async () => {
    for (const id of ['r3', 'r1', 'r2']) await writeRun(backend, { partition: part(id) });
    expect((await listRunClaims(backend, 'quarry')).map((c) => c.run_id)).toEqual(['r1', 'r2', 'r3']);
    expect((await readRunClaim(backend, 'quarry', 'r2'))?.run_id).toBe('r2');
    expect(await readRunClaim(backend, 'quarry', 'nope')).toBeUndefined();
    expect(await listRunClaims(backend, 'other')).toEqual([]);
  });

  it('a claim missing a field is rejected with the field named', async () => {
    await backend.putNew(runClaimKey('quarry', 'x'), '{"run_id":"x"}');
    await expect(listRunClaims(backend, 'quarry')).rejects.toThrow(/runs\/x.json: field claim_version missing/);
  });
});

describe('listRuns', () => {
  beforeEach(async () => {
    await writeRun(backend, { partition: part('a1'), started_at: '2024-01-01T01:00:00.000Z', outcome: 'success', events: eventsOf('a1', ['item', 'run_complete']), job_id: 'j1' });
    await writeRun(backend, { partition: part('a2'), started_at: '2024-01-01T02:00:00.000Z', outcome: 'script_error', events: eventsOf('a2', ['run_error']) });
    await writeRun(backend, { partition: part('b1', { source: 'blog' }), started_at: '2024-01-01T03:00:00.000Z', outcome: 'success' });
    await writeRun(backend, { partition: part('c1', { category: 'news', day: '2024-01-02' }), started_at: '2024-01-02T00:00:00.000Z' });
  });

  it('lists every run newest first, with manifest fields once finalized', async () => {
    const rows = await listRuns(backend, 'quarry');
    expect(rows.map((r) => r.run_id)).toEqual(['c1', 'b1', 'a2', 'a1']);
    const a1 = rows.find((r) => r.run_id === 'a1')!;
    expect(a1).toMatchObject({ source: 'shop', finalized: true, outcome: 'success', exit_code: 0, event_count: 2, policy: 'strict', job_id: 'j1', skipped: false });
    expect(a1.bytes).toBeGreaterThan(0);
    expect(rows.find((r) => r.run_id === 'c1')).toMatchObject({ finalized: false, category: 'news' });
    expect(rows.find((r) => r.run_id === 'c1')!.outcome).toBeUndefined();
  });

  it('filters by source, category, day, outcome and finalization, and limits', async () => {
    const ids = async (f: Parameters<typeof listRuns>[2]): Promise<string[]> => (await listRuns(backend, 'quarry', f)).map((r) => r.run_id);
    expect(await ids({ source: 'shop' })).toEqual(['c1', 'a2', 'a1']);
    expect(await ids({ source: 'blog' })).toEqual(['b1']);
    expect(await ids({ category: 'news' })).toEqual(['c1']);
    expect(await ids({ day: '2024-01-01' })).toEqual(['b1', 'a2', 'a1']);
    expect(await ids({ outcome: 'success' })).toEqual(['b1', 'a1']);
    expect(await ids({ unfinalized: true })).toEqual(['c1']);
    expect(await ids({ unfinalized: false })).toEqual(['b1', 'a2', 'a1']);
    expect(await ids({ limit: 2 })).toEqual(['c1', 'b1']);
    expect(await ids({ outcome: 'success', limit: 1 })).toEqual(['b1']);
    expect(await ids({ limit: 0 })).toEqual([]);
  });

  it('reads no more manifests than it needs once the limit is reached (bounded window)', async () => {
    for (let i = 0; i < 100; i++) await writeRun(backend, { partition: part(`m${String(i).padStart(3, '0')}`), started_at: '2023-01-01T00:00:00.000Z', outcome: 'success' });
    const counting = new FaultyBackend(backend);
    const rows = await listRuns(counting, 'quarry', { limit: 3 });
    expect(rows).toHaveLength(3);
    const gets = [...counting.reads.keys()].filter((k) => k.endsWith('_manifest.json')).length;
    // 3 rows from a window of at most 32 in flight, plus the refills started while yielding.
    expect(gets).toBeLessThanOrEqual(3 + 32);
  });
});

describe('streamRecords', () => {
  const types = ['item', 'log', 'item', 'artifact', 'log', 'item', 'checkpoint', 'item', 'enqueue', 'item', 'log', 'item', 'run_complete'] as const;
  let manifest: RunManifest;
  beforeEach(async () => {
    manifest = (await writeRun(backend, { partition: part('s1'), outcome: 'success', events: eventsOf('s1', types), segmentSize: 2, artifacts: { a4: Buffer.from('PNG!') } }))!;
  });

  it('merges every event type in seq order across several segments per type', async () => {
    const recs = (await collect(streamRecords(backend, manifest))) as EventRecord[];
    expect(recs.map((r) => r.seq)).toEqual(types.map((_, i) => i + 1));
    expect(recs.map((r) => r.event_type)).toEqual([...types]);
    expect(recs.every((r) => r.run_id === 's1' && r.source === 'shop')).toBe(true);
    expect(recs.find((r) => r.event_type === 'artifact')).toMatchObject({ record_kind: 'artifact_event', artifact_path: 'artifacts/a4' });
  });

  it('keeps only the asked event types, still in seq order; metrics only when asked, last', async () => {
    const items = (await collect(streamRecords(backend, manifest, { eventTypes: ['item', 'checkpoint'] }))) as EventRecord[];
    expect(items.map((r) => r.seq)).toEqual([1, 3, 6, 7, 8, 10, 12]);
    const withMetrics = await collect(streamRecords(backend, manifest, { eventTypes: ['run_complete', 'metrics'] }));
    expect(withMetrics.map((r: StoredRecord) => r.record_kind)).toEqual(['event', 'metrics']);
    expect((await collect(streamRecords(backend, manifest))).some((r) => r.record_kind === 'metrics')).toBe(false);
  });

  it('reads only objects the manifest lists, never what else lies in the folder', async () => {
    const stray = part('s1');
    await backend.putNew(`${runPrefix(stray)}${segmentName('item', 99)}`, '{"seq":999,"record_kind":"event"}\n');
    expect((await collect(streamRecords(backend, manifest))).map((r) => (r as EventRecord).seq)).not.toContain(999);
  });

  it('a consumer that stops early does not read the rest of the run', async () => {
    const counting = new FaultyBackend(backend);
    for await (const r of streamRecords(counting, manifest)) {
      expect((r as EventRecord).seq).toBe(1);
      break;
    }
    // One open segment per event type at most: 6 types, far fewer than the 10 record objects.
    expect(counting.readCount).toBeLessThanOrEqual(6);
  });

  it('a segment out of seq order is an error naming the object and line', async () => {
    const p = part('bad-order');
    const m = (await writeRun(backend, { partition: p, outcome: 'success', events: eventsOf('bad-order', ['item', 'item']), segmentSize: 5 }))!;
    const line = (seq: number): string => `${JSON.stringify({ record_kind: 'event', event_type: 'item', seq })}\n`;
    const body = line(2) + line(1);
    const path = segmentName('item', 2);
    await backend.putNew(`${runPrefix(p)}${path}`, body);
    const broken: RunManifest = { ...m, objects: [{ path, kind: 'records', event_type: 'item', bytes: body.length, records: 2, sha256: createHash('sha256').update(body).digest('hex') }] };
    await expect(collect(streamRecords(backend, broken))).rejects.toThrow(ReaderError);
    await expect(collect(streamRecords(backend, broken))).rejects.toThrow(/part-000002.jsonl line 2: seq 1 does not follow 2/);
  });

  it('a line that is not JSON is an error naming the object and line', async () => {
    const p = part('bad-json');
    const m = (await writeRun(backend, { partition: p, outcome: 'success' }))!;
    const path = segmentName('log', 1);
    await backend.putNew(`${runPrefix(p)}${path}`, '{"seq":1}\n{oops\n');
    const broken: RunManifest = { ...m, objects: [{ path, kind: 'records', event_type: 'log', bytes: 17, records: 2, sha256: '0' }] };
    await expect(collect(streamRecords(backend, broken))).rejects.toThrow(/line 2: not valid JSON/);
  });

  it('streams a run of 60k records across large segments line by line', async () => {
    const p = part('large');
    const events = eventsOf('large', Array.from({ length: 60_000 }, (_, i) => (i % 3 === 0 ? 'log' : 'item')));
    const m = (await writeRun(backend, { partition: p, outcome: 'success', events, segmentSize: 25_000 }))!;
    let n = 0;
    let last = 0;
    for await (const r of streamRecords(backend, m)) {
      const seq = (r as EventRecord).seq;
      expect(seq).toBe(last + 1);
      last = seq;
      n++;
    }
    expect(n).toBe(60_000);
  });
});

describe('readArtifact', () => {
  it('streams a committed artifact and refuses an id the manifest does not list', async () => {
    const bytes = Buffer.alloc(3 * 1024 * 1024, 7);
    const m = (await writeRun(backend, { partition: part('art'), outcome: 'success', events: eventsOf('art', ['artifact']), artifacts: { 'odd id/1': bytes } }))!;
    const a = readArtifact(backend, m, 'odd id/1');
    expect(a.object).toMatchObject({ kind: 'artifact', artifact_id: 'odd id/1', bytes: bytes.length });
    expect(Buffer.concat(await collect(a.chunks)).equals(bytes)).toBe(true);
    let err: unknown;
    try {
      readArtifact(backend, m, 'missing');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe('not_found');
  });
});

describe('mapOrdered', () => {
  it('keeps input order and never runs more than the limit at once', async () => {
    let active = 0;
    let peak = 0;
    const out = await collect(
      mapOrdered(Array.from({ length: 50 }, (_, i) => i), 4, async (i) => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, (50 - i) % 7));
        active--;
        return i * 2;
      }),
    );
    expect(out).toEqual(Array.from({ length: 50 }, (_, i) => i * 2));
    expect(peak).toBeLessThanOrEqual(4);
  });
});

describe('scale', () => {
  it('lists 10k runs from their claims and manifests, unfinalized ones included (speed: bench/list-runs.mjs)', async () => {
    // Built with plain file writes, not putNew: 20k fsyncs would make the fixture, not the reader, the slow part.
    const manifest = (await writeRun(backend, { partition: part('tmpl'), outcome: 'success', events: eventsOf('tmpl', ['item', 'run_complete']) }))!;
    const claimDir = join(dir.path, 'datasets/quarry/runs');
    const writes: Array<Promise<void>> = [];
    for (let i = 0; i < 10_000; i++) {
      const p = part(`run-${String(i).padStart(5, '0')}`, { source: `s${i % 10}`, day: `2024-01-${String((i % 28) + 1).padStart(2, '0')}` });
      const claim = { claim_version: 1, ...p, started_at: new Date(Date.UTC(2024, 0, 1) + i * 1000).toISOString(), attempt: 1, root_run_id: p.run_id, depth: 0, script_path: 's.ts' };
      const runDir = join(dir.path, ...runPrefix(p).split('/').filter(Boolean));
      writes.push(
        (async () => {
          await mkdir(runDir, { recursive: true });
          await writeFile(join(claimDir, `${p.run_id}.json`), serializeManifest(claim));
          if (i % 5 !== 0) await writeFile(join(runDir, '_manifest.json'), serializeManifest({ ...manifest, ...p, outcome: i % 2 === 0 ? 'success' : 'script_error' }));
        })(),
      );
      if (writes.length >= 64) await Promise.all(writes.splice(0));
    }
    await Promise.all(writes);

    // Speed is measured by bench/list-runs.mjs, not asserted here.
    const rows = await listRuns(backend, 'quarry');
    expect(rows).toHaveLength(10_001);
    expect(rows.filter((r) => !r.finalized)).toHaveLength(2000);
  });
});
