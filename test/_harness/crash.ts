/**
 * The crash campaign's tools (issue 8, SPEC §5): run `quarry run` until it is
 * SIGKILLed (at a test-only kill point, or by the test after a delay), then
 * check what a real crash must leave: no process of the run, every finalized
 * run recorded by `validate --pending`, `read` giving exactly the
 * authoritative runs' records, and a re-run that works.
 */
import type { ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { openLedgerReader } from '../../src/ledger/ledger.js';
import { manifestKey } from '../../src/storage/layout.js';
import { quarry, REPO_ROOT, type CliResult } from './cli.js';
import { killTagged, newTag, waitUntilGone } from './proc-tag.js';

export const ROWS_SCRIPT = join(REPO_ROOT, 'test/fixtures/crash/rows.ts');
export const BROWSER_ROWS_SCRIPT = join(REPO_ROOT, 'test/fixtures/crash/browser-rows.ts');
/** Rows each run of the fixtures emits (their default job). */
export const ROWS = 30;
export const DAY = '2026-11-01';
export const SOURCE = 'crash';

/** Policy flags of the campaign: buffered and streaming flush every 5 events, so several segments are published mid-run. */
export const POLICY_FLAGS = {
  strict: ['--policy', 'strict'],
  buffered: ['--policy', 'buffered', '--buffer-events', '5'],
  streaming: ['--policy', 'streaming', '--flush-count', '5'],
} as const;
export type CampaignPolicy = keyof typeof POLICY_FLAGS;

/** Where a run's data goes: fs storage (and its default SQLite ledger unless `ledger` is given). */
export interface Place {
  /** fs: the storage folder. */
  storage: string;
  ledger?: string;
  /** Storage flags instead of `--storage-path <storage>` (S3). */
  storageFlags?: string[];
}

const placeFlags = (p: Place): string[] => [...(p.storageFlags ?? ['--storage-path', p.storage]), ...(p.ledger ? ['--ledger', p.ledger] : [])];

/** Every tag handed out, so an afterAll can kill what a failed test left. */
export const allTags: string[] = [];

export interface RunSpec {
  place: Place;
  runId: string;
  category: string;
  policy: CampaignPolicy;
  script?: string;
  env?: Record<string, string>;
  /** Arms `QUARRY_TEST_KILL_POINT`. */
  killPoint?: string;
  /** The test SIGKILLs `quarry run` this long after spawning it. */
  killAfterMs?: number;
  /** Spawn hook (to stop a server mid-run, for instance). */
  onSpawn?: (child: ChildProcess) => void;
  extra?: string[];
}

export interface RunOutcomeSeen {
  spec: RunSpec;
  res: CliResult;
  /** Processes carrying the run's tag still running 1 s after the runtime ended, or not gone 10 s after (must be empty). */
  left: string[];
  /** Milliseconds until the last process of the run was gone. */
  goneMs: number;
  /** Pid of `quarry run` (owner tags of what it left carry it). */
  pid: number;
}

/** Runs `quarry run` once with its own process tag; then checks that nothing of the run runs 1 s after it ended, and that all is gone within 10 s. */
export async function runTagged(spec: RunSpec): Promise<RunOutcomeSeen> {
  const { tag, env } = newTag();
  allTags.push(tag);
  const args = [
    'run', '--script', spec.script ?? ROWS_SCRIPT, '--source', SOURCE, '--category', spec.category, '--day', DAY,
    '--run-id', spec.runId, ...POLICY_FLAGS[spec.policy], ...placeFlags(spec.place), ...(spec.extra ?? []),
  ];
  let pid = 0;
  const res = await quarry(args, {
    env: { ...env, ...(spec.env ?? {}), ...(spec.killPoint ? { QUARRY_TEST_KILL_POINT: spec.killPoint } : {}) },
    timeoutMs: 120_000,
    onSpawn: (child) => {
      pid = child.pid ?? 0;
      if (spec.killAfterMs !== undefined) {
        const t = setTimeout(() => child.kill('SIGKILL'), spec.killAfterMs);
        child.once('exit', () => clearTimeout(t));
      }
      spec.onSpawn?.(child);
    },
  });
  // SPEC §5: a second after the kill nothing of the run still runs (the runtime's reaper SIGKILLed
  // it: a process with SIGKILL pending or being torn down runs no more code of its own), and soon
  // after all are gone (the kernel's teardown of a Chromium takes up to ~1 s more under load).
  // Timed from the runtime's end as seen here, a little after the kill itself.
  const running = await waitUntilGone(tag, 1_000, { orDying: true });
  const gone = await waitUntilGone(tag, 10_000);
  const left = [...new Set([...running.left, ...gone.left])];
  // Whatever the assertions say next, nothing of this run may outlive the test.
  if (left.length > 0) killTagged(tag);
  return { spec, res, left, goneMs: running.ms + gone.ms, pid };
}

/** True when the run's `_manifest.json` exists in fs storage (read straight from disk, not through Quarry). */
export async function hasManifest(place: Place, category: string, runId: string): Promise<boolean> {
  const key = manifestKey({ dataset: 'quarry', source: SOURCE, category, day: DAY, run_id: runId });
  return stat(join(place.storage, ...key.split('/'))).then(() => true, () => false);
}

/** `quarry validate --pending`, parsed. */
export async function validatePending(place: Place, env: Record<string, string> = {}): Promise<{ validated: string[]; unfinalized: string[] }> {
  const res = await quarry(['validate', '--pending', '--format', 'json', ...placeFlags(place)], { env });
  expect(res.code, res.stderr).toBe(0);
  const out = JSON.parse(res.stdout) as { validated: Array<{ run_id: string }>; unfinalized: string[] };
  return { validated: out.validated.map((v) => v.run_id), unfinalized: out.unfinalized };
}

/** The run ids the ledger has recorded, among `runIds`. */
export async function recordedRuns(place: Place, runIds: readonly string[]): Promise<Set<string>> {
  const ledger = await openLedgerReader(place.ledger ?? join(place.storage, 'ledger.sqlite'));
  try {
    return new Set(await ledger.recordedRunIds(runIds));
  } finally {
    await ledger.close();
  }
}

/**
 * Reads every vetted `item` record with `quarry read` and checks it is exactly
 * what `expected` says: for each category, the rows 0..ROWS-1 in order of the
 * one authoritative run named, or nothing when it names none; nothing of any
 * other category or run. At least one category must expect a run, so a read
 * of nothing cannot pass.
 */
export async function expectRead(place: Place, expected: ReadonlyMap<string, string | undefined>, env: Record<string, string> = {}): Promise<void> {
  const wanted = [...expected.values()].filter((r) => r !== undefined);
  expect(wanted.length, 'a campaign read must expect some records').toBeGreaterThan(0);
  const res = await quarry(['read', '--type', 'item', '--source', SOURCE, ...placeFlags(place)], { env });
  expect(res.code, res.stderr).toBe(0);
  const lines = res.stdout.split('\n').filter((l) => l !== '');
  const byCategory = new Map<string, Array<{ run_id: string; i: number; seq: number }>>();
  for (const line of lines) {
    const r = JSON.parse(line) as { category: string; run_id: string; seq: number; payload: { data: { i: number } } };
    const list = byCategory.get(r.category) ?? [];
    list.push({ run_id: r.run_id, i: r.payload.data.i, seq: r.seq });
    byCategory.set(r.category, list);
  }
  for (const category of byCategory.keys()) expect(expected.has(category), `read returned records of unexpected category ${category}`).toBe(true);
  for (const [category, runId] of expected) {
    const got = byCategory.get(category) ?? [];
    if (runId === undefined) {
      expect(got, `category ${category} must read nothing`).toEqual([]);
      continue;
    }
    expect(new Set(got.map((g) => g.run_id)), `category ${category} must read only run ${runId}`).toEqual(new Set([runId]));
    expect(got.map((g) => g.i), `category ${category}: rows of run ${runId}`).toEqual(Array.from({ length: ROWS }, (_, i) => i));
    expect(got.map((g) => g.seq)).toEqual(Array.from({ length: ROWS }, (_, i) => i + 1));
  }
  expect(lines.length).toBe(wanted.length * ROWS);
}

/** A small deterministic PRNG (mulberry32): the same seed gives the same campaign. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
