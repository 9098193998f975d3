/**
 * Jobs as the read commands see them (SPEC §5, §9): a job is every run whose
 * claim carries its `job_id` — the first attempt and each retry (`attempt + 1`,
 * a new run). A job's state is the state of its latest attempt. Used by
 * `inspect job`, `list jobs` and `stats jobs`.
 */
import type { StorageBackend } from '../../storage/backend.js';
import type { RunOutcome } from '../../storage/manifest.js';
import { ReadCommandError, readRuns, runRow, runState, type RunRow, type RunState, type StoredRun } from './read-common.js';

/** One row of `list jobs`. */
export interface JobSummary {
  job_id: string;
  /** State of the latest attempt. */
  state: RunState;
  /** Runs that carry this job id. */
  runs: number;
  latest_attempt: number;
  latest_run_id: string;
  latest_outcome: RunOutcome | null;
  latest_started_at: string;
}

/** JSON shape of `quarry inspect job`. */
export interface JobView {
  job_id: string;
  state: RunState;
  latest_outcome: RunOutcome | null;
  latest_run_id: string;
  /** Highest attempt number seen. */
  attempts: number;
  run_count: number;
  /** Every run of the job, oldest attempt first. */
  run_ids: string[];
  runs: RunRow[];
}

/** Attempt order: attempt, then start time, then run_id (ULIDs sort by time). */
function byAttempt(a: StoredRun, b: StoredRun): number {
  if (a.claim.attempt !== b.claim.attempt) return a.claim.attempt - b.claim.attempt;
  if (a.claim.started_at !== b.claim.started_at) return a.claim.started_at < b.claim.started_at ? -1 : 1;
  return a.claim.run_id < b.claim.run_id ? -1 : a.claim.run_id > b.claim.run_id ? 1 : 0;
}

/** Runs grouped by job id, each group in attempt order; runs without a job id are left out. */
export function groupJobs(runs: readonly StoredRun[]): Map<string, StoredRun[]> {
  const jobs = new Map<string, StoredRun[]>();
  for (const r of runs) {
    const id = r.claim.job_id;
    if (id === undefined) continue;
    const list = jobs.get(id) ?? [];
    list.push(r);
    jobs.set(id, list);
  }
  for (const list of jobs.values()) list.sort(byAttempt);
  return jobs;
}

/** The summary row of one job; `runs` must be in attempt order and non-empty. */
export function jobSummary(jobId: string, runs: readonly StoredRun[]): JobSummary {
  const latest = runs[runs.length - 1]!;
  return {
    job_id: jobId,
    state: runState(latest.manifest?.outcome, latest.manifest !== undefined),
    runs: runs.length,
    latest_attempt: latest.claim.attempt,
    latest_run_id: latest.claim.run_id,
    latest_outcome: latest.manifest?.outcome ?? null,
    latest_started_at: latest.claim.started_at,
  };
}

/**
 * Reads every run of one job.
 * @throws ReadCommandError when no run in the dataset carries that job id.
 */
export async function inspectJobView(backend: StorageBackend, dataset: string, jobId: string): Promise<JobView> {
  const runs = (await readRuns(backend, dataset, {}, (c) => c.job_id === jobId)).sort(byAttempt);
  if (runs.length === 0) throw new ReadCommandError(`job ${JSON.stringify(jobId)} not found: no run in dataset ${JSON.stringify(dataset)} at ${backend.location} has that job_id; see quarry list jobs`);
  const s = jobSummary(jobId, runs);
  return {
    job_id: jobId,
    state: s.state,
    latest_outcome: s.latest_outcome,
    latest_run_id: s.latest_run_id,
    attempts: Math.max(...runs.map((r) => r.claim.attempt)),
    run_count: runs.length,
    run_ids: runs.map((r) => r.claim.run_id),
    runs: runs.map(runRow),
  };
}
