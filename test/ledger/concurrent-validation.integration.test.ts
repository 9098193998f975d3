/**
 * Parallel safety of the validator (SPEC §8): several processes validating
 * the runs of one partition at once, against one SQLite file or one
 * PostgreSQL database, converge on the latest finalized valid run and never
 * lose (or duplicate) a history row.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLedger } from '../../src/ledger/ledger.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { createTestDatabase, type TestDatabase } from '../_harness/postgres.js';
import { writeRunFixture } from '../_harness/run-fixtures.js';

const run = promisify(execFile);
const CHILD = fileURLToPath(new URL('./fixtures/validate-runs.mjs', import.meta.url));
const PROCESSES = 8;

let dir: string;
let pgdb: TestDatabase;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'quarry-concurrent-'));
  pgdb = await createTestDatabase('quarry_ledger_conc');
});
afterAll(async () => {
  await pgdb?.drop();
  await rm(dir, { recursive: true, force: true });
});

/**
 * Eight runs of one partition, finalized at scrambled instants; the latest
 * finalized one is a script error and one is tampered-free but skipped, so
 * the winner is the latest *valid* run, not merely the latest.
 */
async function writeRuns(storageRoot: string, dataset: string): Promise<{ ids: string[]; winner: string }> {
  const storage = await FsBackend.create(storageRoot);
  const ids: string[] = [];
  const minutes = [5, 40, 17, 33, 59, 2, 41, 26];
  for (let i = 0; i < PROCESSES; i++) {
    const id = `${dataset}-run-${i}`;
    ids.push(id);
    await writeRunFixture(storage, {
      run_id: id, dataset, attempt: i + 1, items: 2, artifact: null,
      finalized_at: new Date(Date.UTC(2024, 5, 10, 1, minutes[i]!)).toISOString(),
      outcome: i === 4 ? 'script_error' : 'success', skipped: i === 6,
    });
  }
  await storage.close();
  // Valid runs: all but 4 (script_error, minute 59) and 6 (skipped, minute 41); the latest of the rest is run 1 (minute 40).
  return { ids, winner: `${dataset}-run-1` };
}

async function validateFromProcesses(storageRoot: string, ledgerTarget: string, dataset: string, ids: string[]): Promise<Array<Array<{ run_id: string; recorded: boolean }>>> {
  const startAt = Date.now() + 1500;
  // Every process validates every run, each starting at a different run: each run is raced by all eight.
  const children = Array.from({ length: PROCESSES }, (_, p) => {
    const order = [...ids.slice(p), ...ids.slice(0, p)];
    return run(process.execPath, [CHILD, JSON.stringify({ storageRoot, ledgerTarget, dataset, runIds: order, startAt })], { timeout: 60_000 });
  });
  const outs = await Promise.all(children);
  return outs.map((o) => JSON.parse(o.stdout) as Array<{ run_id: string; recorded: boolean }>);
}

describe.each([
  ['sqlite', () => join(dir, 'ledger.sqlite')],
  ['postgres', () => pgdb.url],
])('concurrent validation from %s-backed processes', (name, target) => {
  it(`8 processes validating 8 runs of one partition: one success row at the latest valid run, every run recorded once`, async () => {
    const dataset = `conc-${name}`;
    const storageRoot = join(dir, 'data');
    const { ids, winner } = await writeRuns(storageRoot, dataset);
    const t0 = performance.now();
    const results = await validateFromProcesses(storageRoot, target(), dataset, ids);
    process.stdout.write(`[perf ${name}] ${PROCESSES} processes x ${ids.length} runs validated concurrently in ${(performance.now() - t0 - 1500).toFixed(0)} ms after the start barrier (incl. process start)\n`);

    // Each run was recorded by exactly one process; the others saw it recorded.
    for (const id of ids) {
      const recorders = results.flat().filter((r) => r.run_id === id && r.recorded);
      expect(recorders, `run ${id}`).toHaveLength(1);
    }
    const ledger = await openLedger(target());
    try {
      const rows = await ledger.listPartitions({ dataset });
      expect(rows).toHaveLength(1);
      const history = await ledger.runsOfPartition(rows[0]!);
      // `attempts` counts the runs recorded once the partition has a row (promotion.ts): a skipped
      // run recorded before any other creates none, so run 6 winning the race to be first counts 7.
      const uncounted = history[0]?.run_id === `${dataset}-run-6` ? 1 : 0;
      expect(rows[0]).toMatchObject({ status: 'success', current_run_id: winner, attempts: PROCESSES - uncounted });
      expect(history.map((h) => h.run_id).sort()).toEqual([...ids].sort());
      expect(history.filter((h) => h.validation_status === 'invalid').map((h) => h.run_id).sort()).toEqual([`${dataset}-run-4`, `${dataset}-run-6`]);
    } finally {
      await ledger.close();
    }
  });
});
