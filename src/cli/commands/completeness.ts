/**
 * Gap detection for consumers and alerting (SPEC §8 consumers, §9 exit code 4):
 * which expected partitions of a day range are not complete. `read` and
 * `export --require-complete` refuse to output anything when a gap exists;
 * `state inspect --expect-all --stale-after D` exits 4 when a day older than D
 * past its end is still not complete, so cron can alert.
 *
 * Complete means `success`, or pending because every run it had was a
 * `prepare` skip (SPEC §8: skipped counts complete unless `--include-skipped`).
 */
import type { LedgerReader } from '../../ledger/ledger.js';
import type { PartitionFilters, RunHistoryRow } from '../../ledger/types.js';
import { UsageError, type FlagSpec, type ParsedFlags } from '../flags.js';

/** Exit code when `--require-complete` or `--stale-after` found incomplete partitions (SPEC §9). */
export const EXIT_INCOMPLETE = 4;

const DAY_MS = 86_400_000;

/** An expected partition that is not complete. */
export interface Gap {
  source: string;
  category: string;
  day: string;
  /** `pending` (no row: never ran, or only skipped or interrupted runs) or `failed`. */
  status: 'pending' | 'failed';
  /** Why every run of the partition was skipped, when that is the case. */
  skipped?: string;
  last_error: string | null;
}

/** Every day from `from` to `to` inclusive (both checked `YYYY-MM-DD`). @throws UsageError past ten years */
export function daysOf(from: string, to: string): string[] {
  const days: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += DAY_MS) days.push(new Date(t).toISOString().slice(0, 10));
  if (days.length > 3660) throw new UsageError(`the day range ${from}..${to} spans ${days.length} days; at most 10 years`);
  return days;
}

/**
 * The skip reason when every run of a partition was a `prepare` skip (or an
 * interrupted run, which never counts) and at least one was a skip; else undefined.
 * Works whether a skip leaves the partition pending (SPEC §8) or, as ledgers
 * written before that rule did, `failed`.
 */
export function skipReason(history: readonly RunHistoryRow[]): string | undefined {
  const counted = history.filter((h) => h.outcome !== 'interrupted');
  if (counted.length === 0 || !counted.every((h) => h.skipped === true)) return undefined;
  return counted[counted.length - 1]!.message ?? 'skipped by prepare';
}

/** What to check: one or more (source, category) pairs over a day range. */
export interface CompletenessQuery {
  dataset: string;
  pairs: ReadonlyArray<{ source: string; category: string }>;
  days: readonly string[];
  /** Count skipped partitions as gaps too. */
  includeSkipped: boolean;
}

/** The gaps of the query, in (source, category, day) order. Reads the ledger only. */
export async function findGaps(ledger: LedgerReader, q: CompletenessQuery): Promise<Gap[]> {
  const gaps: Gap[] = [];
  if (q.days.length === 0) return gaps;
  const from = q.days[0]!;
  const to = q.days[q.days.length - 1]!;
  for (const { source, category } of q.pairs) {
    const rows = await ledger.listPartitions({ dataset: q.dataset, source, category, from, to });
    const byDay = new Map(rows.map((r) => [r.day, r]));
    for (const day of q.days) {
      const row = byDay.get(day);
      if (row?.status === 'success') continue;
      const history = await ledger.runsOfPartition({ dataset: q.dataset, source, category, day });
      const skipped = skipReason(history);
      if (skipped !== undefined && !q.includeSkipped) continue;
      gaps.push({
        source, category, day,
        status: row?.status === 'failed' && skipped === undefined ? 'failed' : 'pending',
        ...(skipped !== undefined ? { skipped } : {}),
        last_error: row?.last_error ?? null,
      });
    }
  }
  return gaps;
}

/** The gaps whose day ended more than `staleAfterMs` before `now`. */
export function staleGaps<T extends { day: string }>(gaps: readonly T[], staleAfterMs: number, now: Date): T[] {
  return gaps.filter((g) => now.getTime() - (Date.parse(`${g.day}T00:00:00Z`) + DAY_MS) > staleAfterMs);
}

/** A duration in the largest whole unit (`2d`, `36h`, `90m`, `45s`, `500ms`), for messages. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', DAY_MS], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** One line per gap, for stderr: `source/category/day: status (why)`. */
export function describeGaps(gaps: readonly Gap[], limit = 50): string {
  const lines = gaps.slice(0, limit).map((g) => `  ${g.source}/${g.category}/${g.day}: ${g.status}${g.skipped ? `, skipped: ${g.skipped}` : ''}${g.last_error ? ` (${g.last_error})` : ''}`);
  if (gaps.length > limit) lines.push(`  … and ${gaps.length - limit} more (quarry state inspect --expect-all lists them all)`);
  return `${lines.join('\n')}\n`;
}

/** `--require-complete` and `--include-skipped`, as `read` and `export` take them. */
export const REQUIRE_COMPLETE_FLAGS: readonly FlagSpec[] = [
  { name: 'require-complete', type: 'bool', help: 'Refuse (exit 4, nothing output) unless every day of the range is success; needs --source, --category and --from-day/--to-day', group: 'Completeness' },
  { name: 'include-skipped', type: 'bool', help: 'Count partitions whose runs were all skipped by prepare as incomplete too', group: 'Completeness' },
];

/**
 * The query `--require-complete` asks for, from the filters already checked:
 * one source, one category, a day range. Undefined without the flag.
 * @throws UsageError naming what is missing.
 */
export function requireCompleteQuery(values: ParsedFlags['values'], filters: PartitionFilters): CompletenessQuery | undefined {
  if (values['include-skipped'] === true && values['require-complete'] !== true) throw new UsageError('--include-skipped only changes --require-complete; add --require-complete');
  if (values['require-complete'] !== true) return undefined;
  const from = filters.day ?? filters.from;
  const to = filters.day ?? filters.to;
  const missing = [!filters.source && '--source', !filters.category && '--category', !(from && to) && '--from-day/--to-day (or --day)'].filter(Boolean);
  if (missing.length > 0) throw new UsageError(`--require-complete needs ${missing.join(', ')}: which partitions are expected`);
  return {
    dataset: filters.dataset ?? 'quarry',
    pairs: [{ source: filters.source!, category: filters.category! }],
    days: daysOf(from!, to!),
    includeSkipped: values['include-skipped'] === true,
  };
}
