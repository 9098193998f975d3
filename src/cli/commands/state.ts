/**
 * `quarry state inspect` (SPEC §8): the ledger's partition states, read-only.
 * With `--expect-days FROM..TO`, days with no row are listed as `pending`.
 */
import type { PartitionState } from '../../ledger/types.js';
import { UsageError } from '../flags.js';
import type { CliIO } from '../io.js';
import { expectedDays, LEDGER_FLAG, ledgerFilters, ledgerTargetFrom, openLedgerAt, RANGE_FLAGS } from './ledger-common.js';
import { PARTITION_FILTER_FLAGS, READ_FLAGS, runReadCommand, stringFlag } from './read-common.js';

const USAGE = `Usage: quarry state inspect [filters] [--expect-days FROM..TO]

Shows, for each logical partition (source, category, day), what the ledger
says: success at which run, or failed, with attempts and the last error.
Read-only. Partitions with no validated run are pending; --expect-days lists
the missing days of a range as pending too.`;

/** One row: the ledger's state, or a pending day with no row. */
export interface StateRow {
  dataset: string;
  source: string;
  category: string;
  day: string;
  status: 'success' | 'failed' | 'pending';
  current_run_id: string | null;
  attempts: number;
  last_run_id: string | null;
  last_error: string | null;
  updated_at: string | null;
}

const toRow = (p: PartitionState): StateRow => ({
  dataset: p.dataset, source: p.source, category: p.category, day: p.day, status: p.status,
  current_run_id: p.current_run_id, attempts: p.attempts, last_run_id: p.last_run_id, last_error: p.last_error, updated_at: p.updated_at,
});

/**
 * The ledger rows for the filters plus, for `days`, a pending row for every
 * (source, category) known or named that has no row that day.
 */
export function withPendingDays(rows: StateRow[], days: string[] | undefined, dataset: string, named: { source?: string; category?: string }): StateRow[] {
  if (!days) return rows;
  const pairs = new Map<string, { source: string; category: string }>();
  if (named.source) pairs.set(`${named.source}\u0000${named.category ?? 'default'}`, { source: named.source, category: named.category ?? 'default' });
  for (const r of rows) if (!named.source) pairs.set(`${r.source}\u0000${r.category}`, { source: r.source, category: r.category });
  const have = new Set(rows.map((r) => `${r.source}\u0000${r.category}\u0000${r.day}`));
  const out = [...rows];
  for (const { source, category } of pairs.values()) {
    for (const day of days) {
      if (!have.has(`${source}\u0000${category}\u0000${day}`)) {
        out.push({ dataset, source, category, day, status: 'pending', current_run_id: null, attempts: 0, last_run_id: null, last_error: null, updated_at: null });
      }
    }
  }
  return out.sort((a, b) => (a.source + a.category + a.day < b.source + b.category + b.day ? -1 : 1));
}

export function stateInspectCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand({
    name: 'state inspect',
    usage: USAGE,
    flags: [
      ...READ_FLAGS,
      LEDGER_FLAG,
      ...PARTITION_FILTER_FLAGS,
      ...RANGE_FLAGS,
      { name: 'status', type: 'string', arg: 'success|failed|pending', choices: ['success', 'failed', 'pending'], help: 'Only partitions in this state', group: 'Filters' },
      { name: 'expect-days', type: 'string', arg: 'FROM..TO', help: 'List days of this range that have no row as pending', group: 'Filters' },
      { name: 'limit', type: 'int', help: 'At most N rows', group: 'Filters' },
    ],
    opensStorage: false,
    body: async ({ values, dataset, io: ctxIo }) => {
      const filters = ledgerFilters(values, dataset);
      const days = expectedDays(stringFlag(values, 'expect-days'));
      const status = stringFlag(values, 'status') as StateRow['status'] | undefined;
      if (status === 'pending' && !days) throw new UsageError('--status pending needs --expect-days FROM..TO: a pending partition has no ledger row, so only a range of expected days can list it');
      const limit = values.limit as number | undefined;
      if (limit !== undefined && limit < 1) throw new UsageError(`--limit must be 1 or more, got ${limit}`);
      const ledger = await openLedgerAt(ledgerTargetFrom(values, ctxIo.cwd), true);
      try {
        const ledgerRows = (await ledger.listPartitions(days ? { ...filters, from: days[0]!, to: days[days.length - 1]! } : filters)).map(toRow);
        let rows = withPendingDays(ledgerRows, days, dataset, { ...(filters.source ? { source: filters.source } : {}), ...(filters.category ? { category: filters.category } : {}) });
        if (status) rows = rows.filter((r) => r.status === status);
        if (limit !== undefined) rows = rows.slice(0, limit);
        return { data: rows, table: { columns: ['source', 'category', 'day', 'status', 'current_run_id', 'attempts', 'last_error'], empty: '(no partitions match)' } };
      } finally {
        await ledger.close();
      }
    },
  }, argv, io);
}
