/**
 * The validator (SPEC §8) against real run partitions on the real FsBackend
 * and a real SQLite ledger: what passes, what fails and why, and what becomes
 * authoritative.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/ledger.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { RunNotFinalizedError, RunNotFoundError, validatePending, validateRun } from '../../src/ledger/validator.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { segmentName, type LogicalPartition } from '../../src/storage/layout.js';
import { appendBytes, deleteObject, flipByte, rewriteManifest, truncateManifest, writeRunFixture } from '../_harness/run-fixtures.js';

let dir: string;
let storage: FsBackend;
let ledger: Ledger;
const NOW = new Date('2024-06-11T00:00:00.000Z');
const opts = { now: () => NOW };
const PART: LogicalPartition = { dataset: 'quarry', source: 'shop', category: 'default', day: '2024-06-10' };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'quarry-validator-'));
  storage = await FsBackend.create(join(dir, 'data'));
  ledger = await SqliteLedger.create(join(dir, 'ledger.sqlite'));
});
afterEach(async () => {
  await ledger.close();
  await storage.close();
  await rm(dir, { recursive: true, force: true });
});

const codes = (v: { reasons: Array<{ code: string }> }): string[] => v.reasons.map((r) => r.code);

describe('validateRun: a clean run', () => {
  it('a valid finalized run becomes authoritative and its history row says why', async () => {
    const f = await writeRunFixture(storage, { run_id: 'r1', job_id: 'j1', droppedLogs: 2 });
    const v = await validateRun(storage, ledger, f.partition, opts);
    expect(v).toMatchObject({ run_id: 'r1', status: 'valid', reasons: [], recorded: true, promoted: true, role: 'standalone' });
    expect(v.partition_state).toMatchObject({ status: 'success', current_run_id: 'r1', attempts: 1, last_error: null, updated_at: NOW.toISOString() });
    const h = await ledger.getRun('r1');
    expect(h).toMatchObject({
      run_id: 'r1', job_id: 'j1', attempt: 1, root_run_id: 'r1', depth: 0, outcome: 'success', skipped: false,
      finalized_at: '2024-06-10T01:00:00.000Z', validation_status: 'valid', validation_reasons: [], validated_at: NOW.toISOString(),
      script_path: 'scripts/fixture.ts', job: { url: 'https://example.test/r1' },
    });
    expect(h?.manifest_sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('objects spanning many read chunks are hashed and counted right (records split across chunk edges)', async () => {
    const big = Buffer.alloc(5 * 1024 * 1024 + 3, 7);
    const f = await writeRunFixture(storage, { run_id: 'big', items: 3000, itemsPerSegment: 3000, logs: 0, artifact: big });
    expect(f.manifest.objects.find((o) => o.path === segmentName('item', 1))!.bytes).toBeGreaterThan(256 * 1024);
    const v = await validateRun(storage, ledger, f.partition, opts);
    expect(v.reasons).toEqual([]);
    expect(v.status).toBe('valid');
  });

  it('a run is found by its id through its claim', async () => {
    await writeRunFixture(storage, { run_id: 'by-id', dataset: 'ds2' });
    expect(await validateRun(storage, ledger, { dataset: 'ds2', run_id: 'by-id' }, opts)).toMatchObject({ status: 'valid', partition: { dataset: 'ds2', source: 'shop' } });
    await expect(validateRun(storage, ledger, { dataset: 'ds2', run_id: 'nope' }, opts)).rejects.toBeInstanceOf(RunNotFoundError);
  });

  it('validating a run twice writes nothing the second time', async () => {
    const f = await writeRunFixture(storage, { run_id: 'twice' });
    await validateRun(storage, ledger, f.partition, opts);
    const again = await validateRun(storage, ledger, f.partition, { now: () => new Date('2030-01-01T00:00:00Z') });
    expect(again).toMatchObject({ recorded: false, promoted: false, status: 'valid' });
    expect(await ledger.runsOfPartition(PART)).toHaveLength(1);
    expect((await ledger.getPartition(PART))?.attempts).toBe(1);
  });

  it('a run id already recorded in another dataset is a conflict, not a silent "already validated"', async () => {
    const a = await writeRunFixture(storage, { run_id: 'same', dataset: 'ds-a' });
    const b = await writeRunFixture(storage, { run_id: 'same', dataset: 'ds-b' });
    await validateRun(storage, ledger, a.partition, opts);
    await expect(validateRun(storage, ledger, b.partition, opts)).rejects.toMatchObject({ name: 'LedgerError', code: 'run_id_conflict' });
    expect(await ledger.getPartition({ ...PART, dataset: 'ds-b' })).toBeUndefined();
  });

  it('a run without a manifest is refused and nothing is written', async () => {
    const f = await writeRunFixture(storage, { run_id: 'running', finalize: false });
    await expect(validateRun(storage, ledger, f.partition, opts)).rejects.toBeInstanceOf(RunNotFinalizedError);
    expect(await ledger.getRun('running')).toBeUndefined();
    expect(await ledger.getPartition(PART)).toBeUndefined();
  });
});

describe('validateRun: promotion rules', () => {
  it('a later valid run wins, an earlier one validated afterwards does not displace it', async () => {
    const late = await writeRunFixture(storage, { run_id: 'late', finalized_at: '2024-06-10T05:00:00.000Z' });
    const early = await writeRunFixture(storage, { run_id: 'early', finalized_at: '2024-06-10T02:00:00.000Z' });
    expect((await validateRun(storage, ledger, late.partition, opts)).promoted).toBe(true);
    const v = await validateRun(storage, ledger, early.partition, opts);
    expect(v).toMatchObject({ status: 'valid', promoted: false });
    expect(await ledger.getPartition(PART)).toMatchObject({ status: 'success', current_run_id: 'late', attempts: 2, last_run_id: 'early' });
  });

  it('a reprocess finalized later takes over', async () => {
    const first = await writeRunFixture(storage, { run_id: 'first', finalized_at: '2024-06-10T01:00:00.000Z' });
    const again = await writeRunFixture(storage, { run_id: 'again', finalized_at: '2024-06-12T01:00:00.000Z', attempt: 2 });
    await validateRun(storage, ledger, first.partition, opts);
    expect((await validateRun(storage, ledger, again.partition, opts)).promoted).toBe(true);
    expect((await ledger.getPartition(PART))?.current_run_id).toBe('again');
  });

  it('a failed retry never demotes good data', async () => {
    const good = await writeRunFixture(storage, { run_id: 'good' });
    const retry = await writeRunFixture(storage, { run_id: 'retry', outcome: 'script_error', attempt: 2, parent_run_id: 'good', finalized_at: '2024-06-10T09:00:00.000Z' });
    await validateRun(storage, ledger, good.partition, opts);
    const v = await validateRun(storage, ledger, retry.partition, opts);
    expect(v).toMatchObject({ status: 'invalid', promoted: false });
    expect(codes(v)).toContain('outcome_not_success');
    expect(await ledger.getPartition(PART)).toMatchObject({ status: 'success', current_run_id: 'good', attempts: 2, last_run_id: 'retry' });
    expect((await ledger.getRun('retry'))?.parent_run_id).toBe('good');
  });

  it('a failed run alone makes the partition failed; a later good run fixes it', async () => {
    const bad = await writeRunFixture(storage, { run_id: 'bad', outcome: 'executor_crash' });
    await validateRun(storage, ledger, bad.partition, opts);
    expect(await ledger.getPartition(PART)).toMatchObject({ status: 'failed', current_run_id: null });
    expect((await ledger.getPartition(PART))?.last_error).toMatch(/outcome_not_success: outcome is executor_crash/);
    const fix = await writeRunFixture(storage, { run_id: 'fix', finalized_at: '2024-06-10T00:30:00.000Z' });
    await validateRun(storage, ledger, fix.partition, opts);
    expect(await ledger.getPartition(PART)).toMatchObject({ status: 'success', current_run_id: 'fix', attempts: 2, last_error: null });
  });

  it('a skipped run is recorded and never promoted', async () => {
    const s = await writeRunFixture(storage, { run_id: 'skip', skipped: true, items: 0, logs: 0, artifact: null });
    const v = await validateRun(storage, ledger, s.partition, opts);
    expect(v).toMatchObject({ status: 'invalid', promoted: false });
    expect(codes(v)).toEqual(['skipped']);
    expect(await ledger.getPartition(PART)).toBeUndefined();
    expect(await ledger.pendingSkips({ dataset: PART.dataset })).toMatchObject([{ ...PART, run_id: 'skip' }]);
    expect((await ledger.getRun('skip'))?.skipped).toBe(true);
  });

  it('an interrupted run is recorded and never promoted, even when it is the latest', async () => {
    const good = await writeRunFixture(storage, { run_id: 'good', finalized_at: '2024-06-10T01:00:00.000Z' });
    const intr = await writeRunFixture(storage, { run_id: 'intr', outcome: 'interrupted', finalized_at: '2024-06-10T08:00:00.000Z' });
    await validateRun(storage, ledger, intr.partition, opts);
    // Interrupted is never promoted and never marks the partition failed (§8): it stays pending.
    expect(await ledger.getPartition(PART)).toBeUndefined();
    await validateRun(storage, ledger, good.partition, opts);
    expect(await ledger.getPartition(PART)).toMatchObject({ status: 'success', current_run_id: 'good' });
    expect((await ledger.getRun('intr'))?.validation_reasons[0]?.message).toMatch(/interrupted \(never promotable\)/);
  });

  it('equal finalized_at: the larger run_id wins, whichever is validated first', async () => {
    for (const [i, order] of [['tie-a', 'tie-b'], ['tie-b', 'tie-a']].entries()) {
      const ds = `tie${i}`;
      // Run ids are unique across one ledger, so each round gets its own pair.
      const runs = await Promise.all(order.map((id) => writeRunFixture(storage, { run_id: `${id}-${i}`, dataset: ds, finalized_at: '2024-06-10T03:00:00.000Z' })));
      for (const r of runs) await validateRun(storage, ledger, r.partition, opts);
      expect((await ledger.getPartition({ ...PART, dataset: ds }))?.current_run_id).toBe(`tie-b-${i}`);
    }
  });

  it('a fan-out child is recorded in its tree and leaves the partition pending', async () => {
    const child = await writeRunFixture(storage, { run_id: 'child', root_run_id: 'root', parent_run_id: 'root', depth: 1 });
    const v = await validateRun(storage, ledger, child.partition, opts);
    expect(v).toMatchObject({ status: 'valid', role: 'tree_member', promoted: false, partition_state: undefined });
    expect(await ledger.getPartition(PART)).toBeUndefined();
    expect((await ledger.getRun('child'))?.root_run_id).toBe('root');
  });
});

describe('validateRun: tampering and malformed runs fail with a named reason', () => {
  async function expectRejected(runId: string, code: string): Promise<void> {
    const v = await validateRun(storage, ledger, { ...PART, run_id: runId }, opts);
    expect(v.status).toBe('invalid');
    expect(codes(v)).toContain(code);
    expect(v.promoted).toBe(false);
    const p = await ledger.getPartition(PART);
    expect(p?.current_run_id).not.toBe(runId);
    expect((await ledger.getRun(runId))?.validation_reasons.map((r) => r.code)).toContain(code);
  }

  it('one flipped byte in a record segment: object_sha256_mismatch, naming the object', async () => {
    const f = await writeRunFixture(storage, { run_id: 'flip' });
    const seg = segmentName('item', 1);
    await flipByte(storage.location, f.keys[seg]!, 40);
    await expectRejected('flip', 'object_sha256_mismatch');
    expect((await ledger.getRun('flip'))?.validation_reasons).toEqual([expect.objectContaining({ code: 'object_sha256_mismatch', object: seg })]);
  });

  it('one flipped byte in an artifact: object_sha256_mismatch', async () => {
    const f = await writeRunFixture(storage, { run_id: 'flip-art' });
    const art = Object.keys(f.keys).find((k) => k.startsWith('artifacts/'))!;
    await flipByte(storage.location, f.keys[art]!, 3);
    await expectRejected('flip-art', 'object_sha256_mismatch');
  });

  it('a deleted data file: object_missing', async () => {
    const f = await writeRunFixture(storage, { run_id: 'gone' });
    await deleteObject(storage.location, f.keys[segmentName('log', 1)]!);
    await expectRejected('gone', 'object_missing');
  });

  it('bytes appended to a data file: object_size_mismatch', async () => {
    const f = await writeRunFixture(storage, { run_id: 'grown' });
    await appendBytes(storage.location, f.keys[segmentName('item', 2)]!, '{"extra":1}\n');
    await expectRejected('grown', 'object_size_mismatch');
  });

  it('a truncated manifest: manifest_malformed, recorded with lineage from the claim', async () => {
    const f = await writeRunFixture(storage, { run_id: 'cut', job_id: 'jc' });
    await truncateManifest(storage.location, f.partition);
    await expectRejected('cut', 'manifest_malformed');
    expect(await ledger.getRun('cut')).toMatchObject({ outcome: null, finalized_at: null, job_id: 'jc', root_run_id: 'cut', script_path: 'scripts/fixture.ts' });
    expect(await ledger.getPartition(PART)).toMatchObject({ status: 'failed' });
  });

  it('a tampered run next to a good one never displaces it, even when finalized later', async () => {
    const good = await writeRunFixture(storage, { run_id: 'good', finalized_at: '2024-06-10T01:00:00.000Z' });
    const evil = await writeRunFixture(storage, { run_id: 'evil', finalized_at: '2024-06-10T09:00:00.000Z' });
    await validateRun(storage, ledger, good.partition, opts);
    await flipByte(storage.location, evil.keys[segmentName('item', 1)]!, 10);
    await expectRejected('evil', 'object_sha256_mismatch');
    expect(await ledger.getPartition(PART)).toMatchObject({ status: 'success', current_run_id: 'good' });
  });

  it('a manifest whose counts were edited to match nothing: record_count_mismatch', async () => {
    const f = await writeRunFixture(storage, { run_id: 'count' });
    const m = structuredClone(f.manifest);
    const seg = m.objects.find((o) => o.path === segmentName('item', 1))!;
    seg.records = 5;
    await rewriteManifest(storage.location, f.partition, m);
    await expectRejected('count', 'record_count_mismatch');
  });

  it('a gap the policy did not count: seq_inconsistent', async () => {
    const f = await writeRunFixture(storage, { run_id: 'gap', droppedLogs: 1 });
    const m = structuredClone(f.manifest);
    m.policy.events_dropped = 0;
    m.policy.dropped_by_type = {};
    await rewriteManifest(storage.location, f.partition, m);
    await expectRejected('gap', 'seq_inconsistent');
  });

  it('an object seq range outside the run range: seq_inconsistent', async () => {
    const f = await writeRunFixture(storage, { run_id: 'range' });
    const m = structuredClone(f.manifest);
    m.seq.last = m.seq.last! - 1;
    m.policy.events_persisted -= 1;
    await rewriteManifest(storage.location, f.partition, m);
    await expectRejected('range', 'seq_inconsistent');
  });

  it('a success with no run_complete: terminal_event_missing', async () => {
    await writeRunFixture(storage, { run_id: 'noterm', terminal: 'none' });
    await expectRejected('noterm', 'terminal_event_missing');
  });

  it('an unknown contract major: contract_version_unknown', async () => {
    await writeRunFixture(storage, { run_id: 'v2', contract_version: '2.0.0' });
    await expectRejected('v2', 'contract_version_unknown');
  });

  it('a manifest naming another partition: manifest_identity_mismatch', async () => {
    const f = await writeRunFixture(storage, { run_id: 'moved' });
    await rewriteManifest(storage.location, f.partition, { ...f.manifest, day: '2024-06-11' });
    await expectRejected('moved', 'manifest_identity_mismatch');
  });

  it('a listed object path escaping the run folder: manifest_malformed', async () => {
    const f = await writeRunFixture(storage, { run_id: 'escape' });
    const m = structuredClone(f.manifest);
    m.objects[0]!.path = '../run_id=other/_manifest.json';
    await rewriteManifest(storage.location, f.partition, m);
    await expectRejected('escape', 'manifest_malformed');
  });
});

describe('validatePending', () => {
  it('validates finalized runs never validated, ignores runs that died without a manifest, batches promotions', async () => {
    const done = await writeRunFixture(storage, { run_id: 'p-done', finalized_at: '2024-06-10T01:00:00.000Z' });
    await writeRunFixture(storage, { run_id: 'p-later', finalized_at: '2024-06-10T02:00:00.000Z' });
    await writeRunFixture(storage, { run_id: 'p-other-day', day: '2024-06-09' });
    await writeRunFixture(storage, { run_id: 'p-dead', finalize: false, finalized_at: '2024-06-10T09:00:00.000Z' });
    await validateRun(storage, ledger, done.partition, opts);

    const r = await validatePending(storage, ledger, 'quarry', opts);
    expect(r.already_recorded).toBe(1);
    expect(r.unfinalized).toEqual(['p-dead']);
    expect(r.validated.map((v) => [v.run_id, v.status, v.promoted]).sort()).toEqual([['p-later', 'valid', true], ['p-other-day', 'valid', true]]);
    expect(await ledger.getPartition(PART)).toMatchObject({ status: 'success', current_run_id: 'p-later', attempts: 2 });
    expect(await ledger.getRun('p-dead')).toBeUndefined();

    const again = await validatePending(storage, ledger, 'quarry', opts);
    expect(again).toEqual({ validated: [], unfinalized: ['p-dead'], already_recorded: 3, trees: { validated: [], errors: [], already_recorded: 0 } });
  });

  it('many pending runs go through in batches', async () => {
    for (let i = 0; i < 120; i++) await writeRunFixture(storage, { run_id: `b-${String(i).padStart(3, '0')}`, day: `2024-05-${String((i % 28) + 1).padStart(2, '0')}`, items: 1, artifact: null, finalized_at: new Date(Date.UTC(2024, 5, 10, 0, i)).toISOString() });
    const r = await validatePending(storage, ledger, 'quarry', opts);
    expect(r.validated).toHaveLength(120);
    const parts = await ledger.listPartitions({ dataset: 'quarry', status: 'success' });
    expect(parts).toHaveLength(28);
    // Each day's latest run (largest i with that day) is current.
    for (const p of parts) {
      const day = Number(p.day.slice(8)) - 1;
      const last = [...Array(120).keys()].filter((i) => i % 28 === day).pop()!;
      expect(p.current_run_id).toBe(`b-${String(last).padStart(3, '0')}`);
    }
  });
});
