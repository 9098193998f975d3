import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CONTRACT_VERSION, type AnyEventEnvelope } from '../../src/protocol/envelope.js';
import { createPolicy, type FlushMode, type PolicyConfig } from '../../src/runtime/policies/index.js';
import { PolicyFailureError } from '../../src/runtime/policies/policy.js';
import type { StorageBackend } from '../../src/storage/backend.js';
import { FS_TMP_DIR, FsBackend } from '../../src/storage/fs-backend.js';
import { RunWriter } from '../../src/storage/run-writer.js';
import { FaultyBackend } from '../_harness/faulty-backend.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

let tmp: TempDir;
let fs: FsBackend;
beforeEach(async () => {
  tmp = await makeTempDir('policy');
  fs = await FsBackend.create(tmp.path);
});
afterEach(async () => {
  await fs.close();
  await tmp.remove();
});

let runCounter = 0;
async function writerFor(backend: StorageBackend, runId = `run-${++runCounter}`): Promise<RunWriter> {
  return RunWriter.claim(backend, {
    dataset: 'quarry', source: 'test', category: 'default', day: '2026-11-22', run_id: runId,
    claim_version: 1, started_at: '2026-11-22T00:00:00.000Z', attempt: 1, root_run_id: runId, depth: 0, script_path: '/x.ts',
  });
}

/** A deterministic stream: items, logs, checkpoints, an enqueue, then run_complete. */
function stream(runId: string, items: number, logsPerItem = 1): AnyEventEnvelope[] {
  const out: AnyEventEnvelope[] = [];
  let seq = 0;
  const env = (type: AnyEventEnvelope['type'], payload: unknown): AnyEventEnvelope =>
    ({ contract_version: CONTRACT_VERSION, event_id: `e${seq + 1}`, run_id: runId, seq: ++seq, type, ts: `2026-11-22T00:00:${String(seq % 60).padStart(2, '0')}.000Z`, payload, attempt: 1 }) as AnyEventEnvelope;
  for (let i = 0; i < items; i++) {
    out.push(env('item', { item_type: 'book', data: { i, title: `t${i} é😀 ${'x'.repeat(i % 300)}` } }));
    for (let l = 0; l < logsPerItem; l++) out.push(env('log', { level: 'info', message: `seen ${i}` }));
    if (i % 10 === 9) out.push(env('checkpoint', { checkpoint_id: `c${i}` }));
  }
  out.push(env('enqueue', { target: 'next.ts', params: { page: 2 } }));
  out.push(env('run_complete', { summary: { items } }));
  return out;
}

async function ingestAll(cfg: PolicyConfig, backend: StorageBackend, runId: string, events: AnyEventEnvelope[]) {
  const writer = await writerFor(backend, runId);
  const policy = createPolicy(cfg, writer, () => undefined, { sleep: async () => undefined });
  for (const e of events) await policy.ingest(e);
  await policy.close();
  return { writer, counters: policy.counters() };
}

/** Every listed record line, parsed, in seq order, with run identity blanked. */
async function listedRecords(backend: StorageBackend, writer: RunWriter): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = [];
  for (const o of writer.objects.filter((x) => x.kind === 'records')) {
    const text = (await backend.get(writer.keyOf(o.path))).toString('utf8');
    for (const line of text.split('\n').filter(Boolean)) out.push(JSON.parse(line) as Record<string, unknown>);
  }
  return out.sort((a, b) => (a.seq as number) - (b.seq as number));
}

const strip = (r: Record<string, unknown>) => ({ ...r, run_id: '<run>' });
const folders = (w: RunWriter) => [...new Set(w.objects.filter((o) => o.kind === 'records').map((o) => o.path.split('/')[0]))].sort();

describe('the three policies on the same stream', () => {
  it('store the same records in the same order and the same partition folders', async () => {
    const configs: PolicyConfig[] = [
      { name: 'strict' },
      { name: 'buffered', bufferEvents: 1_000_000, flushMode: 'at_least_once' },
      { name: 'streaming', flushCount: 7, flushMode: 'at_least_once' },
    ];
    const results = [];
    for (const [i, cfg] of configs.entries()) {
      const runId = `same-${i}`;
      const { writer } = await ingestAll(cfg, fs, runId, stream(runId, 50));
      results.push({ records: (await listedRecords(fs, writer)).map(strip), folders: folders(writer) });
    }
    expect(results[0]!.records).toHaveLength(50 + 50 + 5 + 2);
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
  });
});

describe('buffered', () => {
  it('drops only droppable events when full, and every drop is counted', async () => {
    const events = stream('buf', 100_000);
    const { writer, counters } = await ingestAll({ name: 'buffered', bufferEvents: 500, flushMode: 'at_least_once' }, fs, 'buf', events);
    const stored = await listedRecords(fs, writer);
    const storedItems = stored.filter((r) => r.event_type === 'item').length;
    const storedLogs = stored.filter((r) => r.event_type === 'log').length;
    expect(storedItems).toBe(100_000);
    expect(stored.filter((r) => r.event_type === 'checkpoint')).toHaveLength(10_000);
    expect(stored.filter((r) => r.event_type === 'run_complete')).toHaveLength(1);
    expect(counters.events_received).toBe(events.length);
    expect(counters.events_persisted + counters.events_dropped).toBe(counters.events_received);
    expect(counters.events_persisted).toBe(stored.length);
    expect(counters.events_dropped).toBeGreaterThan(0);
    expect(Object.keys(counters.dropped_by_type).every((t) => ['log', 'enqueue', 'rotate_proxy'].includes(t))).toBe(true);
    expect((counters.dropped_by_type.log ?? 0) + storedLogs).toBe(100_000);
  });

  it('never holds more than --buffer-events events between flushes', async () => {
    const { writer } = await ingestAll({ name: 'buffered', bufferEvents: 64, flushMode: 'two_phase' }, fs, 'cap', stream('cap', 1000, 0));
    for (const o of writer.objects.filter((x) => x.kind === 'records')) expect(o.records).toBeLessThanOrEqual(64);
  });

  it('bounds the buffer by bytes as well', async () => {
    const { writer } = await ingestAll({ name: 'buffered', bufferBytes: 4096, flushMode: 'at_least_once' }, fs, 'bytes', stream('bytes', 500, 0));
    for (const o of writer.objects.filter((x) => x.kind === 'records')) expect(o.bytes).toBeLessThanOrEqual(4096);
  });
});

describe('streaming', () => {
  it('flushes on count and termination as the settings imply', async () => {
    // 25 items, no logs: 25 items + 2 checkpoints + enqueue + run_complete = 29 events.
    const { counters } = await ingestAll({ name: 'streaming', flushCount: 10, flushMode: 'at_least_once' }, fs, 'cnt', stream('cnt', 25, 0));
    expect(counters.events_received).toBe(29);
    expect(counters.events_persisted).toBe(29);
    expect(counters.flush_triggers).toEqual({ count: 2, termination: 1 });
  });

  it('flushes on a real interval timer', async () => {
    const writer = await writerFor(fs, 'interval');
    const policy = createPolicy({ name: 'streaming', flushIntervalMs: 50, flushMode: 'at_least_once' }, writer);
    const events = stream('interval', 3, 0);
    for (const e of events.slice(0, 3)) await policy.ingest(e);
    // The 50 ms timer alone must flush (no count or termination trigger is near); polled, since
    // a loaded machine may take far longer than 50 ms to write the segment.
    await vi.waitFor(() => {
      expect(policy.counters().flush_triggers?.interval).toBeGreaterThanOrEqual(1);
      expect(writer.objects.filter((o) => o.kind === 'records').length).toBeGreaterThanOrEqual(1);
    }, { timeout: 60_000, interval: 20 });
    for (const e of events.slice(3)) await policy.ingest(e);
    await policy.close();
    expect(policy.counters().events_persisted).toBe(events.length);
  });

  it('blocks ingestion on a slow backend instead of growing its buffer', async () => {
    const slow = new FaultyBackend(fs, { delayMs: 40 });
    const writer = await writerFor(slow, 'slow');
    const policy = createPolicy({ name: 'streaming', flushCount: 5, flushMode: 'at_least_once' }, writer);
    const started = Date.now();
    for (const e of stream('slow', 20, 0)) await policy.ingest(e);
    const elapsed = Date.now() - started;
    await policy.close();
    // 23 events at 5 per flush: 4 count flushes, two writing at once (≥ 40 ms writes): the third count flush
    // waits inside ingest for the first to end, so at most three batches are ever held.
    expect(elapsed).toBeGreaterThanOrEqual(40);
    for (const o of writer.objects.filter((x) => x.kind === 'records')) expect(o.records).toBeLessThanOrEqual(5);
  });
});

describe('streaming: two flushes writing at once', () => {
  it('a flush failing for good stops the one writing after it: nothing of either is listed, the later one is superseded', async () => {
    // Every write fails except the second flush's segment: flush 1 fails all its attempts while flush 2 is durable.
    const backend = new FaultyBackend(fs, { delayMs: 20, fault: { failAt: 1, mode: 'from', match: (k) => k.includes('event_type=item/') && !k.endsWith('part-000002.jsonl') } });
    const writer = await writerFor(backend, 'overlap-fail');
    const policy = createPolicy({ name: 'streaming', flushCount: 5, flushMode: 'at_least_once' }, writer, () => undefined, { sleep: async () => undefined, setInterval: () => ({}), clearInterval: () => undefined });
    const events = stream('overlap-fail', 30, 0);
    await expect((async () => {
      for (const e of events) await policy.ingest(e);
    })()).rejects.toBeInstanceOf(PolicyFailureError);
    await expect(policy.close()).rejects.toBeInstanceOf(PolicyFailureError);
    expect(writer.objects.filter((o) => o.kind === 'records')).toEqual([]);
    expect(writer.superseded.map((o) => o.path)).toContain('event_type=item/part-000002.jsonl');
  });

  it('lists segments in the order the batches were taken while two flushes write at once', async () => {
    const backend = new FaultyBackend(fs, { delayMs: 15 });
    const writer = await writerFor(backend, 'overlap-order');
    const policy = createPolicy({ name: 'streaming', flushCount: 7, flushMode: 'two_phase' }, writer, () => undefined, { sleep: async () => undefined, setInterval: () => ({}), clearInterval: () => undefined });
    const events = stream('overlap-order', 60, 1);
    for (const e of events) await policy.ingest(e);
    await policy.close();
    const listed = await listedRecords(backend, writer);
    expect(listed.map((r) => r.seq)).toEqual(events.map((e) => e.seq));
    const firsts = writer.objects.filter((o) => o.kind === 'records' && o.event_type === 'item').map((o) => o.first_seq!);
    expect(firsts).toEqual([...firsts].sort((a, b) => a - b));
  });
});

/** A streaming policy with an interval whose ticks the test fires, over a backend taking `delayMs` per write. */
async function slowIntervalPolicy(delayMs: number, runId: string) {
  const writer = await writerFor(new FaultyBackend(fs, { delayMs }), runId);
  let fire: (() => void) | undefined;
  const policy = createPolicy({ name: 'streaming', flushIntervalMs: 1, flushMode: 'at_least_once' }, writer, () => undefined, {
    sleep: async () => undefined,
    setInterval: (fn: () => void) => {
      fire = fn;
      return {};
    },
    clearInterval: () => undefined,
  });
  return { writer, policy, tick: () => fire!() };
}

describe('streaming interval on a backend slower than the interval', () => {
  it('queues no batch per tick: at most one flush in flight and one batch filling, the rest waits for the flush', async () => {
    const { writer, policy, tick } = await slowIntervalPolicy(30, 'slow-interval');
    const events = stream('slow-interval', 200, 0);
    for (const e of events) {
      await policy.ingest(e);
      // The interval fires far more often than a write completes (1 tick per event, 30 ms per write).
      tick();
    }
    const segmentsBeforeClose = writer.objects.filter((o) => o.kind === 'records').length;
    await policy.close();
    const segments = writer.objects.filter((o) => o.kind === 'records');
    // Unbounded, every tick queued its own one-event batch: ~200 flushes held in memory, then written.
    expect(policy.counters().flush_triggers?.interval ?? 0).toBeLessThanOrEqual(3);
    expect(segments.length).toBeLessThanOrEqual(4 * 4);
    expect(segmentsBeforeClose).toBeLessThanOrEqual(segments.length);
    expect(policy.counters().events_persisted).toBe(events.length);
    expect((await listedRecords(fs, writer)).map((r) => r.seq)).toEqual(events.map((e) => e.seq));
  });

  it('flushes the batch whose interval came due during a flush as soon as that flush ends', async () => {
    const { policy, tick } = await slowIntervalPolicy(40, 'due-interval');
    const [a, b, ...rest] = stream('due-interval', 2, 0);
    await policy.ingest(a!);
    tick(); // flush of [a] starts
    await policy.ingest(b!);
    tick(); // due: a flush is in flight
    // No further tick: the due flush must follow the slow one by itself. Polled, not a fixed
    // sleep, so a loaded machine (slow fs writes) cannot fail it; it still fails if it never comes.
    await vi.waitFor(() => {
      expect(policy.counters().flush_triggers?.interval).toBe(2);
      expect(policy.counters().events_persisted).toBe(2);
    }, { timeout: 60_000, interval: 20 });
    for (const e of rest) await policy.ingest(e);
    await policy.close();
  });
});

describe('strict, a write failing part-way through a pipe read', () => {
  /** Two pipe reads of item + log each; returns the events. */
  async function twoReads(policy: ReturnType<typeof createPolicy>, runId: string) {
    const events = stream(runId, 2, 1).slice(0, 4); // item 1, log 2, item 3, log 4
    const reads = [events.slice(0, 2), events.slice(2, 4)];
    let failure: unknown;
    for (const read of reads) {
      for (const e of read) await policy.ingest(e);
      try {
        await policy.beforeNextRead!();
      } catch (err) {
        failure = err;
        break;
      }
    }
    return { events, failure };
  }

  it('never re-appends on close the lines already written before the failure (no duplicate record)', async () => {
    // Appends: item(read 1), log(read 1), item(read 2), log(read 2) fails once.
    const faulty = new FaultyBackend(fs, { fault: { on: 'append', failAt: 4 } });
    const writer = await writerFor(faulty, 'strict-dup');
    const policy = createPolicy({ name: 'strict' }, writer);
    const { failure } = await twoReads(policy, 'strict-dup');
    expect(failure).toBeInstanceOf(PolicyFailureError);
    await policy.close().catch(() => undefined);
    const seqs = (await listedRecords(fs, writer)).map((r) => r.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    // The items are listed once; the log segment, whose append failed, is discarded with its earlier line.
    expect(seqs).toEqual([1, 3]);
    expect(policy.counters().events_persisted).toBe(2);
  });

  it('leaves no temporary file and no open file handle when the writes keep failing', async () => {
    const faulty = new FaultyBackend(fs, { fault: { on: 'append', failAt: 3, mode: 'from' } });
    const writer = await writerFor(faulty, 'strict-leak');
    const policy = createPolicy({ name: 'strict' }, writer);
    const { failure } = await twoReads(policy, 'strict-leak');
    expect(failure).toBeInstanceOf(PolicyFailureError);
    await expect(policy.close()).rejects.toBeInstanceOf(PolicyFailureError);
    const tmpDir = join(tmp.path, FS_TMP_DIR);
    expect(await readdir(tmpDir)).toEqual([]);
    const fds = await readdir('/proc/self/fd');
    const open = (await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')))).filter((l) => l.startsWith(tmpDir));
    expect(open).toEqual([]);
    // The log segment was sealed and listed; the item segment, whose append failed, was discarded.
    expect((await listedRecords(fs, writer)).map((r) => r.seq)).toEqual([2]);
    expect(policy.counters().events_persisted).toBe(1);
  });
});

describe('failed flushes', () => {
  const modes: FlushMode[] = ['at_least_once', 'chunks_first', 'two_phase'];
  // 30 items + 30 logs + 3 checkpoints + enqueue + run_complete = 65 events; one flush of 3-5 segments.
  const events = () => stream('f', 30);
  const isSegment = (key: string) => key.includes('/event_type=') && key.endsWith('.jsonl');

  for (const mode of modes) {
    it(`${mode}: a write failing once is retried and the run has no duplicate and no gap`, async () => {
      const faulty = new FaultyBackend(fs, { fault: { failAt: 2, match: isSegment } });
      const { writer, counters } = await ingestAll({ name: 'buffered', bufferEvents: 10_000, flushMode: mode }, faulty, `f-${mode}`, events());
      const seqs = (await listedRecords(fs, writer)).map((r) => r.seq);
      expect(seqs).toEqual(Array.from({ length: 65 }, (_, i) => i + 1));
      expect(counters.events_persisted).toBe(65);
      expect(writer.writes.retry).toBe(1);
    });
  }

  it('the modes differ in what a retry rewrites', async () => {
    const rewritten: Record<string, number> = {};
    for (const mode of modes) {
      const faulty = new FaultyBackend(fs, { fault: { failAt: 2, match: isSegment } });
      const { writer } = await ingestAll({ name: 'buffered', bufferEvents: 10_000, flushMode: mode }, faulty, `d-${mode}`, events());
      rewritten[mode] = faulty.log.filter((w) => isSegment(w.key)).length;
      if (mode === 'at_least_once') expect(writer.superseded.length).toBe(1);
      else expect(writer.superseded.length).toBe(0);
    }
    // 4 segment types (item, log, checkpoint, enqueue+run_complete → 5): at_least_once rewrites the one that had succeeded.
    expect(rewritten.at_least_once).toBeGreaterThan(rewritten.two_phase!);
    expect(rewritten.chunks_first).toBe(rewritten.two_phase);
  });

  for (const mode of modes) {
    it(`${mode}: a backend that keeps failing ends in policy_failure and lists only what was published`, async () => {
      const faulty = new FaultyBackend(fs, { fault: { failAt: 2, mode: 'from', match: isSegment } });
      const writer = await writerFor(faulty, `p-${mode}`);
      const policy = createPolicy({ name: 'buffered', bufferEvents: 10_000, flushMode: mode }, writer, () => undefined, { sleep: async () => undefined });
      for (const e of events()) await policy.ingest(e);
      await expect(policy.close()).rejects.toBeInstanceOf(PolicyFailureError);
      for (const o of writer.objects) expect(await fs.stat(writer.keyOf(o.path))).toBeDefined();
      const listed = await listedRecords(fs, writer);
      expect(new Set(listed.map((r) => r.seq)).size).toBe(listed.length);
      expect(policy.counters().events_persisted).toBe(listed.length);
      if (mode !== 'chunks_first') expect(listed).toHaveLength(0);
    });
  }
});
