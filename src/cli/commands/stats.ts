/**
 * `quarry stats runs|jobs|metrics` (SPEC §9): aggregates derived from
 * the stored claims and manifests, never from a live process (`stats
 * proxies`: proxy-views.ts).
 */
import { sumMetrics } from '../../runtime/metrics.js';
import { RUN_OUTCOMES, type RunMetrics, type RunOutcome } from '../../storage/manifest.js';
import { claimMatches, readManifest, readRunClaim } from '../../storage/reader.js';
import type { CliIO } from '../io.js';
import { groupJobs, jobSummary } from './inspect-job.js';
import { checkRunId, PARTITION_FILTER_FLAGS, ReadCommandError, partitionFilters, READ_FLAGS, readRuns, runReadCommand, runState, stringFlag, type ReadCommandSpec, type StoredRun } from './read-common.js';

/** JSON shape of `quarry stats runs`. */
export interface RunStats {
  total: number;
  finalized: number;
  unfinalized: number;
  succeeded: number;
  /** Finalized with any outcome but success (interrupted included). */
  failed: number;
  /** Finalized runs a `prepare` hook skipped (counted in succeeded too: their outcome is success). */
  skipped: number;
  by_outcome: Record<RunOutcome, number>;
}

/** Counts runs by state and outcome. */
export function runStats(runs: readonly StoredRun[]): RunStats {
  const by = Object.fromEntries(RUN_OUTCOMES.map((o) => [o, 0])) as Record<RunOutcome, number>;
  const s: RunStats = { total: runs.length, finalized: 0, unfinalized: 0, succeeded: 0, failed: 0, skipped: 0, by_outcome: by };
  for (const { manifest } of runs) {
    if (manifest === undefined) {
      s.unfinalized++;
      continue;
    }
    s.finalized++;
    by[manifest.outcome]++;
    if (manifest.skipped) s.skipped++;
    if (runState(manifest.outcome, true) === 'succeeded') s.succeeded++;
    else s.failed++;
  }
  return s;
}

/** `quarry stats runs`: runs counted by state and outcome. */
export const STATS_RUNS: ReadCommandSpec = {
  name: 'stats runs',
  usage: `Usage: quarry stats runs [flags]

Counts the runs of a dataset: total, finalized and unfinalized, succeeded and
failed (finalized with any other outcome), skipped, and per outcome.`,
  flags: [...PARTITION_FILTER_FLAGS, ...READ_FLAGS],
  opensStorage: true,
  body: async ({ backend, dataset, values }) => ({ data: runStats(await readRuns(backend, dataset, partitionFilters(values))) }),
};

/** JSON shape of `quarry stats jobs`. */
export interface JobStats {
  total: number;
  succeeded: number;
  failed: number;
  unfinalized: number;
  /** Runs that carry a job id. */
  runs: number;
  runs_without_job: number;
}

/** `quarry stats jobs`: jobs counted by the state of their latest attempt. */
export const STATS_JOBS: ReadCommandSpec = {
  name: 'stats jobs',
  usage: `Usage: quarry stats jobs [flags]

Counts jobs (runs grouped by job_id) by the state of their latest attempt.`,
  flags: [...PARTITION_FILTER_FLAGS, ...READ_FLAGS],
  opensStorage: true,
  body: async ({ backend, dataset, values }) => {
    const runs = await readRuns(backend, dataset, partitionFilters(values));
    const jobs = groupJobs(runs);
    const s: JobStats = { total: jobs.size, succeeded: 0, failed: 0, unfinalized: 0, runs: 0, runs_without_job: 0 };
    for (const [id, list] of jobs) {
      s[jobSummary(id, list).state]++;
      s.runs += list.length;
    }
    s.runs_without_job = runs.length - s.runs;
    return { data: s };
  },
};

/** Counters of SPEC §9 summed over runs. */
export type SummedMetrics = Omit<RunMetrics, 'dimensions'>;

/** JSON shape of `quarry stats metrics`. */
export type MetricsStats = {
  filters: { run_id?: string; source?: string; category?: string; day?: string };
  /** Finalized runs whose metrics were summed. */
  runs_summed: number;
  /** Matching runs without a manifest: their metrics are written at finalize, so none are counted. */
  runs_unfinalized: number;
} & SummedMetrics & {
    /** Runs summed, per value of each §9 dimension. */
    dimensions: { policy: Record<string, number>; executor: Record<string, number>; storage_backend: Record<string, number> };
  };

/** Sums the metrics of the finalized runs among `runs` (the manifest carries each run's §9 counters). */
export function metricsStats(runs: readonly StoredRun[], filters: MetricsStats['filters']): MetricsStats {
  const all: RunMetrics[] = [];
  const dimensions: MetricsStats['dimensions'] = { policy: {}, executor: {}, storage_backend: {} };
  for (const { manifest } of runs) {
    if (manifest === undefined) continue;
    all.push(manifest.metrics);
    for (const d of ['policy', 'executor', 'storage_backend'] as const) {
      const v = String(manifest.metrics.dimensions[d]);
      dimensions[d][v] = (dimensions[d][v] ?? 0) + 1;
    }
  }
  return { filters, runs_summed: all.length, runs_unfinalized: runs.length - all.length, ...sumMetrics(all), dimensions };
}

/** `quarry stats metrics`: §9 counters summed over the finalized runs matching the filters. */
export const STATS_METRICS: ReadCommandSpec = {
  name: 'stats metrics',
  usage: `Usage: quarry stats metrics [flags]

Sums the §9 metrics (runs_*_total, events_*_total, executor_*, ipc, lode_write_*,
flush triggers, drops by type) of the finalized runs that match the filters,
and counts the summed runs per policy, executor and storage backend.
Unfinalized runs have no metrics yet and are counted apart.
Exit code: 0, 1 when --run-id names no run, 2 for a bad command line.`,
  flags: [{ name: 'run-id', type: 'string', arg: 'ID', help: 'Only this run', group: 'Filters' }, ...PARTITION_FILTER_FLAGS, ...READ_FLAGS],
  opensStorage: true,
  body: async ({ backend, dataset, values }) => {
    const partition = partitionFilters(values);
    const runId = stringFlag(values, 'run-id');
    const filters: MetricsStats['filters'] = { ...(runId !== undefined ? { run_id: runId } : {}), ...partition };
    if (runId === undefined) return { data: metricsStats(await readRuns(backend, dataset, partition), filters) };
    checkRunId('--run-id', runId);
    const claim = await readRunClaim(backend, dataset, runId);
    if (claim === undefined) throw new ReadCommandError(`run ${JSON.stringify(runId)} not found in dataset ${JSON.stringify(dataset)} at ${backend.location}; see quarry list runs`);
    const matches = claimMatches(claim, partition);
    const runs: StoredRun[] = [];
    if (matches) {
      const manifest = await readManifest(backend, claim);
      runs.push(manifest === undefined ? { claim } : { claim, manifest });
    }
    const stats = metricsStats(runs, filters);
    return { data: stats, ...(stats.runs_unfinalized > 0 ? { notice: `run ${runId} is not finalized: it has no metrics yet (they are written at finalize)` } : {}) };
  },
};

/** Entry of `quarry stats runs`. */
export function statsRunsCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(STATS_RUNS, argv, io);
}

/** Entry of `quarry stats jobs`. */
export function statsJobsCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(STATS_JOBS, argv, io);
}

/** Entry of `quarry stats metrics`. */
export function statsMetricsCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(STATS_METRICS, argv, io);
}
