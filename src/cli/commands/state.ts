/**
 * `quarry state inspect` (SPEC §8): the ledger's partition states, read-only.
 * With `--expect-days FROM..TO`, days with no row are listed as `pending`.
 */
import type { LedgerReader } from '../../ledger/ledger.js';
import type { PartitionFilters, PartitionState, PendingSkip } from '../../ledger/types.js';
import { UsageError, type ParsedFlags } from '../flags.js';
import { daysOf, describeGaps, EXIT_INCOMPLETE, formatDuration, skipReason, staleGaps, type Gap } from './completeness.js';
import type { CliIO } from '../io.js';
import { expectedDays, LEDGER_FLAG, ledgerFilters, ledgerTargetFrom, openLedgerReaderAt, OLD_RANGE_ALIASES } from './ledger-common.js';
import { PARTITION_FILTER_FLAGS, READ_FLAGS, runReadCommand, stringFlag } from './read-common.js';

const USAGE = `Usage: quarry state inspect [filters] [--from-day FROM --to-day TO --expect-all [--stale-after D]]

Shows, for each logical partition (source, category, day), what the ledger
says: success at which run, or failed, with attempts and the last error.
Read-only. Partitions with no validated run are pending; one whose only runs
were skipped by prepare is always listed, as "pending, skipped: <reason>"
(retry leaves it alone unless --include-skipped). --expect-all lists
the missing days of the range as pending too (--expect-days FROM..TO is the
same). For alerting from cron, --stale-after D exits 4 when a day that ended
more than D ago is still not success; partitions whose runs were all skipped
by prepare count as complete unless --include-skipped.`;

/** One row: the ledger's state, or a pending day with no row. */
export interface StateRow {
  dataset: string;
  source: string;
  category: string;
  day: string;
  status: 'success' | 'failed' | 'pending';
  /** The status as the table shows it: `status`, or "pending, skipped: <reason>" when every run was a skip (SPEC §8). */
  state: string;
  current_run_id: string | null;
  /** What `current_run_id` names: a `run`, or a fan-out `tree` (SPEC §8 run trees); null when pending. */
  authority: 'run' | 'tree' | null;
  attempts: number;
  last_run_id: string | null;
  last_error: string | null;
  updated_at: string | null;
  /** Why every run of this not-success partition was a `prepare` skip; null otherwise (SPEC §8). */
  skipped: string | null;
}

const toRow = (p: PartitionState): StateRow => ({
  dataset: p.dataset, source: p.source, category: p.category, day: p.day, status: p.status, state: p.status,
  current_run_id: p.current_run_id, authority: p.authority, attempts: p.attempts, last_run_id: p.last_run_id, last_error: p.last_error, updated_at: p.updated_at, skipped: null,
});

/** A pending partition (no row) whose only recorded runs were skipped by `prepare`. */
const skippedRow = (k: PendingSkip): StateRow => ({
  dataset: k.dataset, source: k.source, category: k.category, day: k.day, status: 'pending', state: 'pending',
  current_run_id: null, authority: null, attempts: 0, last_run_id: k.run_id, last_error: null, updated_at: null, skipped: k.reason === null ? 'skipped' : `skipped: ${k.reason}`,
});

/** "pending, skipped: <reason>" for a partition whose runs were all skips, else the status. */
const stateOf = (r: StateRow): string => (r.skipped === null ? r.status : `${r.status}, ${r.skipped.startsWith('skipped') ? r.skipped : `skipped: ${r.skipped}`}`);

const asGap = (r: StateRow): Gap => ({
  source: r.source, category: r.category, day: r.day, status: r.status === 'failed' ? 'failed' : 'pending', ...(r.skipped !== null ? { skipped: r.skipped } : {}), last_error: r.last_error,
});

/**
 * The ledger rows for the filters plus, for `days`, a pending row for every
 * expected (source, category) that has no row that day. Expected pairs: the
 * one named by `--source` and `--category`; else every pair the rows hold
 * (`rows` are already filtered); a `--source` with no row at all in the range
 * expects its `default` category, the only one a run without `--category` writes.
 */
export function withPendingDays(rows: StateRow[], days: string[] | undefined, dataset: string, named: { source?: string; category?: string }): StateRow[] {
  if (!days) return rows;
  const pairs = new Map<string, { source: string; category: string }>();
  if (named.source && named.category) pairs.set(`${named.source}\u0000${named.category}`, { source: named.source, category: named.category });
  else for (const r of rows) pairs.set(`${r.source}\u0000${r.category}`, { source: r.source, category: r.category });
  if (named.source && pairs.size === 0) pairs.set(`${named.source}\u0000default`, { source: named.source, category: 'default' });
  const have = new Set(rows.map((r) => `${r.source}\u0000${r.category}\u0000${r.day}`));
  const out = [...rows];
  for (const { source, category } of pairs.values()) {
    for (const day of days) {
      if (!have.has(`${source}\u0000${category}\u0000${day}`)) {
        out.push({ dataset, source, category, day, status: 'pending', state: 'pending', current_run_id: null, authority: null, attempts: 0, last_run_id: null, last_error: null, updated_at: null, skipped: null });
      }
    }
  }
  return sortRows(out);
}

function sortRows(rows: StateRow[]): StateRow[] {
  const key = (r: StateRow): string => `${r.source}\u0000${r.category}\u0000${r.day}`;
  return rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/**
 * The rows `state inspect` shows for `filters`: the ledger's rows, the pending
 * partitions whose runs were all skipped, and with `days` a pending row for
 * every expected day with no row; sorted by (source, category, day). `quarry
 * report` draws its calendar from the same rows, so their counts agree.
 */
export async function loadStateRows(ledger: LedgerReader, filters: PartitionFilters, days: string[] | undefined, dataset: string): Promise<StateRow[]> {
  const range = days ? { ...filters, from: days[0]!, to: days[days.length - 1]! } : filters;
  // Skipped-only partitions have no row (they stay pending) but are always shown, with why.
  const ledgerRows = sortRows([...(await ledger.listPartitions(range)).map(toRow), ...(await ledger.pendingSkips(range)).map(skippedRow)]);
  const rows = withPendingDays(ledgerRows, days, dataset, { ...(filters.source ? { source: filters.source } : {}), ...(filters.category ? { category: filters.category } : {}) });
  for (const r of rows) {
    if (r.status !== 'success') r.skipped = skipReason(await ledger.runsOfPartition(r)) ?? null;
    r.state = stateOf(r);
  }
  return rows;
}

export function stateInspectCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand({
    name: 'state inspect',
    usage: USAGE,
    flags: [
      ...READ_FLAGS,
      LEDGER_FLAG,
      ...PARTITION_FILTER_FLAGS,
      ...OLD_RANGE_ALIASES,
      { name: 'status', type: 'string', arg: 'success|failed|pending', choices: ['success', 'failed', 'pending'], help: 'Only partitions in this state', group: 'Filters' },
      { name: 'expect-all', type: 'bool', help: 'Every day of --from-day/--to-day is expected: days with no row are listed as pending', group: 'Completeness' },
      { name: 'expect-days', type: 'string', arg: 'FROM..TO', help: 'Same as --from-day FROM --to-day TO --expect-all', group: 'Completeness' },
      { name: 'stale-after', type: 'duration', arg: 'DURATION', help: 'With --expect-all: exit 4 when a day that ended more than this ago (e.g. 36h, 2d) is not success', group: 'Completeness' },
      { name: 'include-skipped', type: 'bool', help: 'Count partitions whose runs were all skipped by prepare as not complete', group: 'Completeness' },
      { name: 'limit', type: 'int', help: 'At most N rows', group: 'Filters' },
    ],
    opensStorage: false,
    body: async ({ values, dataset, io: ctxIo }) => {
      const filters = ledgerFilters(values, dataset);
      const days = expectedRange(values, filters);
      const status = stringFlag(values, 'status') as StateRow['status'] | undefined;
      if (status === 'pending' && !days) throw new UsageError('--status pending needs --from-day/--to-day --expect-all: a pending partition has no ledger row, so only a range of expected days can list it');
      const staleAfter = values['stale-after'] as number | undefined;
      if (staleAfter !== undefined && !days) throw new UsageError('--stale-after needs --from-day FROM --to-day TO --expect-all: the days that are expected');
      const includeSkipped = values['include-skipped'] === true;
      const limit = values.limit as number | undefined;
      if (limit !== undefined && limit < 1) throw new UsageError(`--limit must be 1 or more, got ${limit}`);
      const ledger = await openLedgerReaderAt(ledgerTargetFrom(values, ctxIo.cwd));
      try {
        let rows = await loadStateRows(ledger, filters, days, dataset);
        const notComplete = rows.filter((r) => r.status !== 'success' && (r.skipped === null || includeSkipped));
        const stale = staleAfter === undefined ? [] : staleGaps(notComplete, staleAfter, new Date());
        if (status) rows = rows.filter((r) => r.status === status);
        if (limit !== undefined) rows = rows.slice(0, limit);
        const table = { columns: ['source', 'category', 'day', 'state', 'current_run_id', 'authority', 'attempts', 'last_error'], empty: '(no partitions match)' };
        if (stale.length === 0 || staleAfter === undefined) return { data: rows, table };
        return {
          data: rows, table, exitCode: EXIT_INCOMPLETE,
          notice: `--stale-after: ${stale.length} partition(s) are not success more than ${formatDuration(staleAfter)} after their day ended\n${describeGaps(stale.map(asGap))}`.trimEnd(),
        };
      } finally {
        await ledger.close();
      }
    },
  }, argv, io);
}

/** The expected days: `--expect-days FROM..TO`, or `--from-day/--to-day` with `--expect-all`. @throws UsageError */
function expectedRange(values: Record<string, unknown>, filters: PartitionFilters): string[] | undefined {
  const alias = expectedDays(stringFlag(values as ParsedFlags['values'], 'expect-days'));
  if (alias && (values['expect-all'] === true || filters.from || filters.to)) throw new UsageError('use --expect-days FROM..TO or --from-day/--to-day --expect-all, not both');
  if (alias) return alias;
  if (values['expect-all'] !== true) return undefined;
  if (!filters.from || !filters.to) throw new UsageError('--expect-all needs --from-day and --to-day: the range of days that are expected');
  return daysOf(filters.from, filters.to);
}
