/**
 * The command table: words, one-line help, and a lazy loader per command.
 */
import type { Readable } from 'node:stream';
import type { CliIO } from './io.js';

export interface CommandEntry {
  words: readonly string[];
  summary: string;
  run(argv: readonly string[], io: CliIO, stdin: Readable): Promise<number>;
}

export const COMMANDS: readonly CommandEntry[] = [
  {
    words: ['run'],
    summary: 'Run a script; store what it emits in a run-fenced partition',
    run: async (argv, io) => (await import('./commands/run.js')).runCommand(argv, io),
  },
  {
    words: ['worker'],
    summary: 'Run the runs of trees submitted with quarry run --queue, from a BullMQ queue (S3 storage, PostgreSQL ledger)',
    run: async (argv, io) => (await import('./commands/worker.js')).workerCommand(argv, io),
  },
  {
    words: ['list', 'runs'],
    summary: 'List stored runs, newest first (filters: source, category, day, outcome, state)',
    run: async (argv, io) => (await import('./commands/list.js')).listRunsCommand(argv, io),
  },
  {
    words: ['list', 'jobs'],
    summary: 'List jobs (runs grouped by job id) and their latest attempt',
    run: async (argv, io) => (await import('./commands/list.js')).listJobsCommand(argv, io),
  },
  {
    words: ['list', 'pools'],
    summary: 'List the configured proxy pools and how often each was used',
    run: async (argv, io) => (await import('./commands/proxy-views.js')).listPoolsCommand(argv, io),
  },
  {
    words: ['inspect', 'run'],
    summary: 'Show one run: lineage, outcome, policy counters, objects, files',
    run: async (argv, io) => (await import('./commands/inspect.js')).inspectRunCommand(argv, io),
  },
  {
    words: ['inspect', 'job'],
    summary: 'Show one job: its runs and attempts, latest outcome',
    run: async (argv, io) => (await import('./commands/inspect.js')).inspectJobCommand(argv, io),
  },
  {
    words: ['inspect', 'proxy'],
    summary: 'Show a proxy pool: endpoints (no passwords), selection state, uses',
    run: async (argv, io) => (await import('./commands/proxy-views.js')).inspectProxyCommand(argv, io),
  },
  {
    words: ['stats', 'runs'],
    summary: 'Count runs by state and outcome',
    run: async (argv, io) => (await import('./commands/stats.js')).statsRunsCommand(argv, io),
  },
  {
    words: ['stats', 'jobs'],
    summary: 'Count jobs by the state of their latest attempt',
    run: async (argv, io) => (await import('./commands/stats.js')).statsJobsCommand(argv, io),
  },
  {
    words: ['stats', 'metrics'],
    summary: 'Sum the run metrics over runs (filters: run id, source, category, day)',
    run: async (argv, io) => (await import('./commands/stats.js')).statsMetricsCommand(argv, io),
  },
  {
    words: ['stats', 'proxies'],
    summary: 'Uses, failures and rotations per proxy endpoint, from stored runs',
    run: async (argv, io) => (await import('./commands/proxy-views.js')).statsProxiesCommand(argv, io),
  },
  {
    words: ['state', 'inspect'],
    summary: 'Show the ledger: which run of each partition is authoritative (read-only)',
    run: async (argv, io) => (await import('./commands/state.js')).stateInspectCommand(argv, io),
  },
  {
    words: ['validate'],
    summary: 'Check finalized runs and record them in the ledger (--run ID | --pending)',
    run: async (argv, io) => (await import('./commands/validate.js')).validateCommand(argv, io),
  },
  {
    words: ['read'],
    summary: 'Stream the authoritative records of success partitions as JSON lines',
    run: async (argv, io) => (await import('./commands/read.js')).readCommand(argv, io),
  },
  {
    words: ['export'],
    summary: 'Load authoritative records into DuckDB or PostgreSQL, idempotently, per partition',
    run: async (argv, io) => (await import('./commands/export.js')).exportCommand(argv, io),
  },
  {
    words: ['retry'],
    summary: 'Re-run failed (and expected pending, or --reprocess success) partitions as new runs',
    run: async (argv, io) => (await import('./commands/retry.js')).retryCommand(argv, io),
  },
  {
    words: ['report'],
    summary: 'Write a static HTML page: partitions by status per day, recent runs, trees (read-only)',
    run: async (argv, io) => (await import('./commands/report.js')).reportCommand(argv, io),
  },
  {
    words: ['adapter', 'drain'],
    summary: 'Send the pending run/tree notifications of the ledger outbox, once each (SPEC §11)',
    run: async (argv, io) => (await import('./commands/adapter-drain.js')).adapterDrainCommand(argv, io),
  },
  {
    words: ['debug', 'ipc'],
    summary: 'Describe the executor pipe; --decode a captured frame stream',
    run: async (argv, io, stdin) => (await import('./commands/debug-ipc.js')).debugIpcCommand(argv, io, stdin),
  },
  {
    words: ['debug', 'resolve', 'proxy'],
    summary: 'Which endpoint the next run would get from a pool (stores nothing)',
    run: async (argv, io) => (await import('./commands/proxy-views.js')).debugResolveProxyCommand(argv, io),
  },
  {
    words: ['version'],
    summary: 'Print the quarry and contract versions',
    run: async (argv, io) => (await import('./commands/version.js')).versionCommand(argv, io),
  },
];

/** Longest match of command words at the start of argv. */
export function findCommand(argv: readonly string[]): { command: CommandEntry; rest: string[] } | undefined {
  let best: CommandEntry | undefined;
  for (const c of COMMANDS) {
    if (c.words.every((w, i) => argv[i] === w) && (!best || c.words.length > best.words.length)) best = c;
  }
  return best ? { command: best, rest: argv.slice(best.words.length) } : undefined;
}

export function topLevelHelp(): string {
  const rows = COMMANDS.map((c) => `  ${c.words.join(' ').padEnd(22)} ${c.summary}`);
  return `Usage: quarry <command> [flags]

Browser-driven extraction whose output is safe to build pipelines on.

Commands:
${rows.join('\n')}

Run "quarry <command> --help" for the flags of a command.
Exit codes: 0 success, 1 script error, 2 executor crash or usage error,
3 policy failure or version mismatch, 130/143 interrupted, 70 internal error.
`;
}
