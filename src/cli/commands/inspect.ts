/**
 * `quarry inspect run|job|proxy` (SPEC §9): the deep, read-only view of one
 * run, one job, or one proxy pool.
 */
import type { CliIO } from '../io.js';
import { inspectJobView } from './inspect-job.js';
import { inspectRunView } from './inspect-run.js';
import { checkRunId, PROXY_NOTICE, READ_FLAGS, runReadCommand, type ReadCommandSpec } from './read-common.js';

/** `quarry inspect run <run-id>`: one run in depth; exit 1 when it does not exist. */
export const INSPECT_RUN: ReadCommandSpec = {
  name: 'inspect run',
  usage: `Usage: quarry inspect run <run-id> [flags]

Shows one run from its claim and manifest: identity and partition, lineage,
outcome and message, policy counters, events by type, artifacts, every
published object, sidecar files, orphaned artifacts, superseded objects and
timestamps. A run without a manifest is shown as unfinalized.
Exit code: 0, 1 when the run does not exist, 2 for a bad command line.`,
  flags: READ_FLAGS,
  positionals: ['run-id'],
  opensStorage: true,
  body: async ({ backend, dataset, positionals }) => {
    const runId = positionals[0]!;
    checkRunId('run id', runId);
    const view = await inspectRunView(backend, dataset, runId);
    return { data: view, ...(view.finalized ? {} : { notice: `run ${runId} is ${view.note!}` }) };
  },
};

/** `quarry inspect job <job-id>`: a job's runs and attempts; exit 1 when no run has that job id. */
export const INSPECT_JOB: ReadCommandSpec = {
  name: 'inspect job',
  usage: `Usage: quarry inspect job <job-id> [flags]

Shows every run carrying this job id (each attempt is its own run), oldest
attempt first, and the job's state: the state of its latest attempt.
Exit code: 0, 1 when no run has that job id, 2 for a bad command line.`,
  flags: READ_FLAGS,
  positionals: ['job-id'],
  opensStorage: true,
  body: async ({ backend, dataset, positionals }) => ({ data: await inspectJobView(backend, dataset, positionals[0]!) }),
};

/** `quarry inspect proxy <pool>`: an empty object and a plain notice; proxy pools are not built yet. */
export const INSPECT_PROXY: ReadCommandSpec = {
  name: 'inspect proxy',
  usage: `Usage: quarry inspect proxy <pool> [flags]

Proxy pools are not configured in this version of quarry: this prints an
empty object ({} in JSON) and says so on stderr. Exit code 0.`,
  flags: READ_FLAGS,
  positionals: ['pool'],
  opensStorage: false,
  body: async ({ positionals }) => ({ data: {}, notice: `${PROXY_NOTICE} for pool ${JSON.stringify(positionals[0])}` }),
};

/** Entry of `quarry inspect run`. */
export function inspectRunCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(INSPECT_RUN, argv, io);
}

/** Entry of `quarry inspect job`. */
export function inspectJobCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(INSPECT_JOB, argv, io);
}

/** Entry of `quarry inspect proxy`. */
export function inspectProxyCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(INSPECT_PROXY, argv, io);
}
