/**
 * `quarry inspect run|job` (SPEC §9): the deep, read-only view of one
 * run or one job (`inspect proxy`: proxy-views.ts).
 */
import type { CliIO } from '../io.js';
import { inspectJobView } from './inspect-job.js';
import type { LedgerReader } from '../../ledger/ledger.js';
import { inspectRunView } from './inspect-run.js';
import { inspectTreeView } from './inspect-tree.js';
import { LEDGER_FLAG, ledgerTargetFrom, openLedgerReaderAt } from './ledger-common.js';
import { checkRunId, READ_FLAGS, runReadCommand, stringFlag, type ReadCommandSpec } from './read-common.js';
import type { FlagSpec, ParsedFlags } from '../flags.js';

/** `--queue`, `--queue-name`, `--no-follow` of `inspect run` (read by run-queue.ts, loaded only with --queue). */
const INSPECT_QUEUE_FLAGS: readonly FlagSpec[] = [
  { name: 'queue', type: 'string', arg: 'URL', help: 'Follow a tree submitted with quarry run --queue: its live state from Redis until a worker finalized it', group: 'Queue' },
  { name: 'queue-name', type: 'string', arg: 'NAME', default: 'quarry', help: 'Queue name (with --queue)', group: 'Queue' },
  { name: 'no-follow', type: 'bool', help: 'With --queue: show the state once instead of following the tree to its end', group: 'Queue' },
];

/** The ledger to ask, read-only; null when there is none. Never creates one. */
async function openLedgerIfAny(values: ParsedFlags['values'], cwd: string): Promise<LedgerReader | null> {
  if ((stringFlag(values, 'storage-backend') ?? 'fs') !== 'fs' && !stringFlag(values, 'ledger')) return null;
  try {
    return await openLedgerReaderAt(ledgerTargetFrom(values, cwd));
  } catch {
    return null;
  }
}

/** What the ledger recorded of a run; null when there is no ledger to ask. */
async function ledgerView(ledger: LedgerReader | null, runId: string): Promise<Record<string, unknown> | null> {
  if (ledger === null) return null;
  const h = await ledger.getRun(runId);
  if (!h) return { location: ledger.location, recorded: false, note: 'not validated yet (quarry validate --run or --pending records it)' };
  const state = await ledger.getPartition(h);
  return {
    location: ledger.location,
    recorded: true,
    validation_status: h.validation_status,
    validation_reasons: h.validation_reasons,
    validated_at: h.validated_at,
    partition_status: state?.status ?? 'pending',
    authoritative_run_id: state?.current_run_id ?? null,
    partition_authority: state?.authority ?? null,
    // A tree member is authoritative through its tree (SPEC §8 run trees).
    authoritative: state?.current_run_id === runId || (state?.authority === 'tree' && state.current_run_id === h.root_run_id),
  };
}

/** `quarry inspect run <run-id>`: one run in depth; exit 1 when it does not exist. */
export const INSPECT_RUN: ReadCommandSpec = {
  name: 'inspect run',
  usage: `Usage: quarry inspect run <run-id> [flags]

Shows one run from its claim and manifest: identity and partition, lineage,
outcome and message, policy counters, events by type, artifacts, every
published object, sidecar files, orphaned artifacts, superseded objects and
timestamps, and what the ledger recorded of it (validation result and
reasons, whether it is authoritative), when a ledger exists. A run without a
manifest is shown as unfinalized. Given a tree id (a fan-out root's run id),
it also shows the tree: its options, counters, every work item with its
attempts, its validation and the authority of each partition it wrote in.
With --queue, shows a tree submitted with quarry run --queue from Redis
instead, following it (a line on stderr per change) until a worker
finalized it; --no-follow shows its state once.
Exit code: 0, 1 when the run does not exist, 2 for a bad command line.`,
  flags: [...READ_FLAGS, LEDGER_FLAG, ...INSPECT_QUEUE_FLAGS],
  positionals: ['run-id'],
  opensStorage: true,
  body: async ({ backend, dataset, positionals, values, io }) => {
    const runId = positionals[0]!;
    checkRunId('run id', runId);
    const view = await inspectRunView(backend, dataset, runId);
    const reader = await openLedgerIfAny(values, io.cwd);
    try {
      const ledger = await ledgerView(reader, runId);
      const tree = await inspectTreeView(backend, dataset, runId, view.lineage.fanout, reader);
      return { data: { ...view, ledger, ...(tree === undefined ? {} : { tree }) }, ...(view.finalized ? {} : { notice: `run ${runId} is ${view.note!}` }) };
    } finally {
      await reader?.close();
    }
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

/** Entry of `quarry inspect run`. */
export async function inspectRunCommand(argv: readonly string[], io: CliIO): Promise<number> {
  if (argv.some((a) => a === '--queue' || a.startsWith('--queue='))) {
    const { inspectQueuedTree } = await import('./run-queue.js');
    return inspectQueuedTree(argv, INSPECT_RUN.flags, io);
  }
  return runReadCommand(INSPECT_RUN, argv, io);
}

/** Entry of `quarry inspect job`. */
export function inspectJobCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(INSPECT_JOB, argv, io);
}
