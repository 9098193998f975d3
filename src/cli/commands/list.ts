/**
 * `quarry list runs|jobs` (SPEC §9): thin, filterable lists, newest
 * first, read from the stored claims and manifests (`list pools`: proxy-views.ts).
 */
import { RUN_OUTCOMES, type RunOutcome } from '../../storage/manifest.js';
import { listRuns, type RunFilters } from '../../storage/reader.js';
import { UsageError, type FlagSpec, type ParsedFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { groupJobs, jobSummary, type JobSummary } from './inspect-job.js';
import { PARTITION_FILTER_FLAGS, partitionFilters, READ_FLAGS, readRuns, runReadCommand, stringFlag, withState, type ReadCommandSpec, type RunRow } from './read-common.js';

const LIMIT_FLAG: FlagSpec = { name: 'limit', type: 'int', arg: 'N', help: 'At most N rows, newest first (0 = no limit)', group: 'Filters' };

/** Flags of `quarry list runs`: partition and state filters, limit, storage, output. */
export const LIST_RUNS_FLAGS: readonly FlagSpec[] = [
  ...PARTITION_FILTER_FLAGS,
  { name: 'outcome', type: 'string', arg: 'OUTCOME', choices: RUN_OUTCOMES, help: `Only finalized runs with this outcome (${RUN_OUTCOMES.join('|')})`, group: 'Filters' },
  { name: 'state', type: 'string', arg: 'STATE', choices: ['succeeded', 'failed', 'unfinalized', 'running'], help: 'succeeded|failed|unfinalized (running: same as unfinalized — a run in progress has no manifest yet, nor has one that died)', group: 'Filters' },
  { name: 'unfinalized', type: 'bool', help: 'Only runs that were claimed but have no manifest', group: 'Filters' },
  LIMIT_FLAG,
  ...READ_FLAGS,
];

/** Columns `list runs` shows in a table; JSON and YAML carry every field. */
export const LIST_RUNS_COLUMNS = ['run_id', 'state', 'outcome', 'source', 'category', 'day', 'attempt', 'job_id', 'started_at', 'event_count'] as const;

/** Reads `--limit`: 0 or absent is no limit. @throws UsageError for a negative value */
function limitOf(values: ParsedFlags['values']): number | undefined {
  const limit = values.limit;
  if (typeof limit !== 'number' || limit === 0) return undefined;
  if (limit < 0) throw new UsageError(`--limit must be 0 or more, got ${limit}`);
  return limit;
}

/**
 * Compiles the `list runs` filters into the reader's, plus whether only
 * failed runs are kept (the reader filters one outcome; failed is all but success).
 * @throws UsageError for filters that contradict each other.
 */
export function compileRunFilters(values: ParsedFlags['values']): { filters: RunFilters; onlyFailed: boolean } {
  const filters: RunFilters = { ...partitionFilters(values) };
  const outcome = stringFlag(values, 'outcome') as RunOutcome | undefined;
  const state = stringFlag(values, 'state');
  const unfinalized = values.unfinalized === true;
  if (unfinalized && outcome !== undefined) throw new UsageError('--unfinalized and --outcome contradict each other: an unfinalized run has no outcome yet');
  if (outcome !== undefined) filters.outcome = outcome;
  if (unfinalized) filters.unfinalized = true;
  let onlyFailed = false;
  if (state !== undefined) {
    const clash = (why: string): never => {
      throw new UsageError(`--state ${state} contradicts ${why}`);
    };
    if (state === 'succeeded') {
      if (unfinalized) clash('--unfinalized');
      if (outcome !== undefined && outcome !== 'success') clash(`--outcome ${outcome}`);
      filters.outcome = 'success';
    } else if (state === 'failed') {
      if (unfinalized) clash('--unfinalized');
      if (outcome === 'success') clash('--outcome success');
      filters.unfinalized = false;
      onlyFailed = outcome === undefined;
    } else {
      if (outcome !== undefined) clash(`--outcome ${outcome}`);
      filters.unfinalized = true;
    }
  }
  const limit = limitOf(values);
  if (limit !== undefined && !onlyFailed) filters.limit = limit;
  return { filters, onlyFailed };
}

/** `quarry list runs`: the runs of a dataset, newest first, with their state (docs/cli.md). */
export const LIST_RUNS: ReadCommandSpec = {
  name: 'list runs',
  usage: `Usage: quarry list runs [flags]

Lists the runs of a dataset, newest first: every claimed run, finalized or not,
with its state (succeeded, failed or unfinalized) and, once finalized, its
outcome, message, policy, event count and stored bytes.`,
  flags: LIST_RUNS_FLAGS,
  opensStorage: true,
  body: async ({ backend, dataset, values }) => {
    const { filters, onlyFailed } = compileRunFilters(values);
    let rows: RunRow[] = (await listRuns(backend, dataset, filters)).map(withState);
    if (onlyFailed) {
      rows = rows.filter((r) => r.state === 'failed');
      const limit = limitOf(values);
      if (limit !== undefined) rows = rows.slice(0, limit);
    }
    return { data: rows, table: { columns: LIST_RUNS_COLUMNS, empty: '(no runs)' } };
  },
};

/** Flags of `quarry list jobs`. */
export const LIST_JOBS_FLAGS: readonly FlagSpec[] = [...PARTITION_FILTER_FLAGS, LIMIT_FLAG, ...READ_FLAGS];

/** `quarry list jobs`: runs grouped by job id, latest attempt first. */
export const LIST_JOBS: ReadCommandSpec = {
  name: 'list jobs',
  usage: `Usage: quarry list jobs [flags]

Lists jobs (runs grouped by job_id; runs without one are not jobs), the one
with the most recently started latest attempt first. A job's state is the
state of its latest attempt. Filters select runs before they are grouped.`,
  flags: LIST_JOBS_FLAGS,
  opensStorage: true,
  body: async ({ backend, dataset, values }) => {
    const runs = await readRuns(backend, dataset, partitionFilters(values), (c) => c.job_id !== undefined);
    const rows: JobSummary[] = [...groupJobs(runs)].map(([id, list]) => jobSummary(id, list));
    rows.sort((a, b) => (a.latest_started_at === b.latest_started_at ? (a.job_id < b.job_id ? -1 : 1) : a.latest_started_at < b.latest_started_at ? 1 : -1));
    const limit = limitOf(values);
    return { data: limit === undefined ? rows : rows.slice(0, limit), table: { empty: '(no jobs)' } };
  },
};

/** Entry of `quarry list runs`. */
export function listRunsCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(LIST_RUNS, argv, io);
}

/** Entry of `quarry list jobs`. */
export function listJobsCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(LIST_JOBS, argv, io);
}
