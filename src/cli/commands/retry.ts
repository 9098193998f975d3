/**
 * `quarry retry` (SPEC §8 state-driven retry): re-runs `failed` partitions
 * with the script and job their last run recorded, as new runs (same job id,
 * attempt + 1, parent = that run). `--expect-days FROM..TO` adds the days that
 * never ran (`pending`), which take `--script` and a `--job` template whose
 * `{day}` is replaced; `--reprocess` adds `success` partitions, explicitly.
 * Nothing stored is touched: every retry writes its own run partition, and
 * the validator decides whether it becomes authoritative.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ulid } from 'ulid';
import type { Ledger, LedgerReader } from '../../ledger/ledger.js';
import type { LogicalPartition } from '../../storage/layout.js';
import type { PartitionFilters, RunHistoryRow } from '../../ledger/types.js';
import { STORAGE_FLAGS, OUTPUT_FLAGS } from '../common-flags.js';
import { parseFlags, renderFlagHelp, UsageError, type FlagSpec } from '../flags.js';
import type { CliIO } from '../io.js';
import { render, renderOptionsFrom } from '../render.js';
import { daysOf } from './completeness.js';
import { expectedDays, LEDGER_FLAG, ledgerFilters, ledgerTargetFrom, requireLedgerFile, OLD_RANGE_ALIASES } from './ledger-common.js';
import { PARTITION_FILTER_FLAGS, ReadCommandError, stringFlag, EXIT_NOT_FOUND } from './read-common.js';
import { checkScript, compileStorage, type RunPlan } from './run.js';

export const RETRY_FLAGS: readonly FlagSpec[] = [
  ...STORAGE_FLAGS,
  LEDGER_FLAG,
  ...PARTITION_FILTER_FLAGS,
  ...OLD_RANGE_ALIASES,
  { name: 'expect-all', type: 'bool', help: 'Also run the days of --from-day/--to-day that never ran (need --source, --script, --job)', group: 'Retry' },
  { name: 'expect-days', type: 'string', arg: 'FROM..TO', help: 'Same as --from-day FROM --to-day TO --expect-all', group: 'Retry' },
  { name: 'script', type: 'string', arg: 'PATH', help: 'Script for pending days (and, if given, for every retry)', group: 'Retry' },
  { name: 'job', type: 'string', arg: 'JSON', help: 'Job template for pending days; {day} is replaced by the day', group: 'Retry' },
  { name: 'include-skipped', type: 'bool', help: 'Also re-run pending partitions whose only runs were skipped by prepare', group: 'Retry' },
  { name: 'reprocess', type: 'bool', help: 'Also re-run success partitions (a new run; the old one stays until the new one validates)', group: 'Retry' },
  { name: 'limit', type: 'int', help: 'At most N runs', group: 'Retry' },
  { name: 'dry-run', type: 'bool', help: 'List what would run, run nothing', group: 'Retry' },
  { name: 'quiet', type: 'bool', help: 'No per-run summary lines', group: 'Retry' },
  { name: 'chromium-path', type: 'string', arg: 'PATH', help: 'Chromium binary (default $QUARRY_CHROMIUM_PATH or /usr/bin/chromium)', group: 'Retry' },
  ...OUTPUT_FLAGS,
];

const USAGE = `Usage: quarry retry [filters] [--from-day FROM --to-day TO --expect-all --script S --job '{"day":"{day}"}'] [--reprocess] [--include-skipped] [--dry-run]

Re-runs failed partitions (and pending days, and with --reprocess success
ones) as new runs, each validated into the ledger. A partition whose only runs
were skipped by prepare stays pending and is left alone unless --include-skipped. Exit 0 when every run
succeeded, else the highest exit code of the runs.`;

/** One run retry would start. */
export interface RetryTarget {
  source: string;
  category: string;
  day: string;
  reason: 'failed' | 'pending' | 'skipped' | 'reprocess';
  script: string;
  job: unknown;
  job_id: string | null;
  /** SHA-256 the last run recorded for `script`, checked before re-running it; null when `--script` was given (or none was recorded). */
  script_sha256: string | null;
  attempt: number;
  parent_run_id: string | null;
}

/** Replaces `{day}` in every string of a job template. */
export function fillTemplate(template: unknown, day: string): unknown {
  if (typeof template === 'string') return template.replaceAll('{day}', day);
  if (Array.isArray(template)) return template.map((v) => fillTemplate(v, day));
  if (template && typeof template === 'object') return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, fillTemplate(v, day)]));
  return template;
}

/** What to run, from the ledger: pure but for ledger reads. @throws UsageError */
export async function planRetries(ledger: LedgerReader, filters: PartitionFilters, opts: { days?: string[]; script?: string; job?: unknown; reprocess: boolean; includeSkipped?: boolean; limit?: number }): Promise<RetryTarget[]> {
  const targets: RetryTarget[] = [];
  const statuses: Array<'failed' | 'success'> = opts.reprocess ? ['failed', 'success'] : ['failed'];
  const rows: Array<LogicalPartition & { status: 'failed' | 'success' | 'skipped'; current_run_id: string | null }> =
    (await Promise.all(statuses.map((status) => ledger.listPartitions({ ...filters, status })))).flat();
  // A skip leaves its partition pending; retry leaves it alone unless asked (SPEC §8 skip rule).
  const skips = await ledger.pendingSkips(filters);
  const skipped = new Set(skips.map((k) => `${k.source}\u0000${k.category}\u0000${k.day}`));
  if (opts.includeSkipped) rows.push(...skips.map((k) => ({ ...k, status: 'skipped' as const, current_run_id: null })));
  for (const p of rows.sort((a, b) => (a.source + a.category + a.day < b.source + b.category + b.day ? -1 : 1))) {
    if (opts.days && !opts.days.includes(p.day)) continue;
    const history = await ledger.runsOfPartition(p);
    const last: RunHistoryRow | undefined = history[history.length - 1];
    const script = opts.script ?? last?.script_path ?? undefined;
    if (!script) throw new UsageError(`partition ${p.source}/${p.category}/${p.day}: its last run recorded no script; give --script`);
    const parent = p.status === 'success' ? p.current_run_id : last?.run_id ?? null;
    targets.push({
      source: p.source,
      category: p.category,
      day: p.day,
      reason: p.status === 'success' ? 'reprocess' : p.status,
      script,
      job: last?.job ?? {},
      // §5: a retry keeps the job id of the run it retries, or none when that run had none.
      job_id: last?.job_id ?? null,
      script_sha256: opts.script === undefined ? (last?.script_sha256 ?? null) : null,
      attempt: Math.max(0, ...history.map((h) => h.attempt ?? 0)) + 1,
      parent_run_id: parent,
    });
  }
  if (opts.days) {
    if (!filters.source) throw new UsageError('--expect-all (or --expect-days) needs --source (and --category unless it is default): which partitions are expected');
    if (!opts.script) throw new UsageError('--expect-all (or --expect-days) needs --script: a day that never ran has no recorded script');
    if (opts.job === undefined) throw new UsageError('--expect-all (or --expect-days) needs --job: a template in which {day} is replaced, e.g. --job \'{"date":"{day}"}\'');
    const category = filters.category ?? 'default';
    for (const day of opts.days) {
      const state = await ledger.getPartition({ dataset: filters.dataset!, source: filters.source, category, day });
      if (state || skipped.has(`${filters.source}\u0000${category}\u0000${day}`)) continue;
      targets.push({ source: filters.source, category, day, reason: 'pending', script: opts.script, job: fillTemplate(opts.job, day), job_id: null, script_sha256: null, attempt: 1, parent_run_id: null });
    }
  }
  return opts.limit !== undefined ? targets.slice(0, opts.limit) : targets;
}

export async function retryCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const p = parseFlags(argv, RETRY_FLAGS);
  if (p.help) {
    io.stdout(`${USAGE}\n${renderFlagHelp(RETRY_FLAGS)}\n`);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(p.positionals[0])}`);
  const dataset = stringFlag(p.values, 'storage-dataset') ?? 'quarry';
  const filters = ledgerFilters(p.values, dataset);
  let days = expectedDays(stringFlag(p.values, 'expect-days'));
  if (p.values['expect-all'] === true) {
    if (days) throw new UsageError('use --expect-days FROM..TO or --from-day/--to-day --expect-all, not both');
    if (!filters.from || !filters.to) throw new UsageError('--expect-all needs --from-day and --to-day: the range of days that are expected');
    days = daysOf(filters.from, filters.to);
  }
  const rawScript = stringFlag(p.values, 'script');
  const script = rawScript ? resolve(io.cwd, rawScript) : undefined;
  if (script) checkScript(rawScript!, script);
  let job: unknown;
  const rawJob = stringFlag(p.values, 'job');
  if (rawJob !== undefined) {
    try {
      job = JSON.parse(rawJob) as unknown;
    } catch (err) {
      throw new UsageError(`--job is not valid JSON: ${(err as Error).message}`);
    }
  }
  const limit = p.values.limit as number | undefined;
  if (limit !== undefined && limit < 1) throw new UsageError(`--limit must be 1 or more, got ${limit}`);
  const options = renderOptionsFrom(p.values, io);

  const { openRunLedger, openStorage, runAndValidate, LedgerUnreachableError } = await import('./run-execute.js');
  const storageOpts = compileStorage(p.values, io.cwd);
  let ledger: Ledger | undefined;
  let backend;
  try {
    const target = ledgerTargetFrom(p.values, io.cwd);
    // A retry writes: it opens the ledger as a writer (SPEC §8 "Binding and writers"), but never creates one.
    requireLedgerFile(target);
    ledger = await openRunLedger(target);
    const targets = await planRetries(ledger, filters, { ...(days ? { days } : {}), ...(script ? { script } : {}), ...(job !== undefined ? { job } : {}), reprocess: p.values.reprocess === true, includeSkipped: p.values['include-skipped'] === true, ...(limit !== undefined ? { limit } : {}) });
    if (p.values['dry-run'] === true || targets.length === 0) {
      io.stdout(render(targets, options, { columns: ['source', 'category', 'day', 'reason', 'attempt', 'parent_run_id', 'script'], empty: '(nothing to retry)' }));
      return 0;
    }
    backend = await openStorage({ storage: storageOpts });
    let worst = 0;
    let succeeded = 0;
    for (const t of targets) {
      if (io.signal.aborted) break;
      if (!existsSync(t.script)) {
        io.stderr(`quarry retry: ${t.source}/${t.category}/${t.day}: recorded script ${t.script} no longer exists; give --script\n`);
        worst = Math.max(worst, 2);
        continue;
      }
      if (t.script_sha256 !== null) {
        const now = createHash('sha256').update(readFileSync(t.script)).digest('hex');
        if (now !== t.script_sha256) {
          io.stderr(`quarry retry: ${t.source}/${t.category}/${t.day}: recorded script ${t.script} changed since its last run (SHA-256 then ${t.script_sha256}, now ${now}); not re-run: give --script to run the current file\n`);
          worst = Math.max(worst, 2);
          continue;
        }
      }
      const plan: RunPlan = {
        scriptPath: t.script, attempt: t.attempt, job: t.job, source: t.source, category: t.category, day: t.day, dataset,
        storage: storageOpts, policy: { name: 'strict' }, dryRun: false, quiet: p.values.quiet === true, retries: 0,
        ...(t.job_id ? { jobId: t.job_id } : {}),
        ...(t.parent_run_id ? { parentRunId: t.parent_run_id } : {}),
        ...(stringFlag(p.values, 'chromium-path') ?? io.env.QUARRY_CHROMIUM_PATH ? { chromiumPath: (stringFlag(p.values, 'chromium-path') ?? io.env.QUARRY_CHROMIUM_PATH)! } : {}),
      };
      const report = await runAndValidate(plan, ulid(), backend, ledger, io);
      if (report.exit_code === 0) succeeded++;
      worst = Math.max(worst, report.exit_code);
    }
    io.stderr(`quarry retry: ${succeeded} of ${targets.length} run(s) succeeded\n`);
    return worst;
  } catch (err) {
    if (err instanceof ReadCommandError) {
      io.stderr(`quarry retry: ${err.message}\n`);
      return EXIT_NOT_FOUND;
    }
    if (err instanceof LedgerUnreachableError) {
      io.stderr(`quarry retry: ${err.message}\n`);
      return 3;
    }
    throw err;
  } finally {
    await backend?.close();
    await ledger?.close();
  }
}
