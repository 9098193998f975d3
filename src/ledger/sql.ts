/**
 * SQL shared by the two ledger backends: column lists, WHERE building from
 * compiled filters, and row decoding helpers. Dialects differ only in
 * placeholders (`?` vs `$n`) and in value types, handled by each backend.
 */
import type { AdapterKind, DeliveryStatus, NotificationFilters, NotificationPayload, NotificationRow, NotificationSubject } from './outbox.js';
import { compilePartitionFilters, LedgerError, skipReason, type CompiledFilter, type PartitionFilters, type PendingSkip, type RunId } from './types.js';

/** run_history columns written on insert, in parameter order. */
export const HISTORY_COLUMNS = [
  'run_id', 'dataset', 'source', 'category', 'day', 'job_id', 'attempt', 'parent_run_id', 'root_run_id', 'depth', 'fanout',
  'job', 'script_path', 'script_sha256', 'manifest_sha256', 'outcome', 'message', 'skipped', 'started_at',
  'finalized_at', 'validation_status', 'validation_reasons', 'validated_at',
] as const;

/** partition_state columns, in parameter order. */
export const PARTITION_COLUMNS = [
  'dataset', 'source', 'category', 'day', 'status', 'current_run_id', 'attempts', 'last_run_id', 'last_error', 'updated_at',
  'authority', 'tree_manifest_sha256',
] as const;

/** partition_state columns a promotion rewrites (all but the key), in {@link PARTITION_COLUMNS} order. */
export const PARTITION_VALUE_COLUMNS = PARTITION_COLUMNS.slice(4);

/** tree_validation columns written on insert, in parameter order. */
export const TREE_COLUMNS = [
  'tree_id', 'dataset', 'job_id', 'manifest_sha256', 'started_at', 'finalized_at', 'valid', 'failures', 'allowed', 'items',
  'reason', 'failed_items', 'validated_at',
] as const;

/** Column names a compiled filter may use; anything else is a programming error. */
const FILTER_COLUMNS = new Set(['dataset', 'source', 'category', 'day', 'status', 'job_id', 'root_run_id', 'outcome', 'validation_status']);

/** A WHERE clause (empty when no conditions) and its parameters. */
export interface WhereSql {
  sql: string;
  params: Array<string | number>;
}

/**
 * Builds `WHERE a = ? AND …` from a compiled filter. `placeholder(i)` gives
 * the i-th (from 1) parameter marker of the dialect, after `offset` earlier ones;
 * `alias` (e.g. `h.`) qualifies every column.
 */
export function whereSql(filter: CompiledFilter, placeholder: (i: number) => string, offset = 0, alias = ''): WhereSql {
  const parts: string[] = [];
  const params: Array<string | number> = [];
  for (const c of filter.clauses) {
    // Column names come from compile*Filters, never from input; checked anyway because they are spliced in.
    if (!FILTER_COLUMNS.has(c.column)) throw new Error(`ledger: unexpected filter column ${c.column}`);
    params.push(c.value);
    parts.push(`${alias}${c.column} ${c.op} ${placeholder(offset + params.length)}`);
  }
  return { sql: parts.length === 0 ? '' : `WHERE ${parts.join(' AND ')}`, params };
}

/** Parses a JSON text column that the ledger itself wrote. */
export function parseJsonColumn(text: string | null): unknown {
  return text === null ? null : (JSON.parse(text) as unknown);
}

/** The columns {@link pendingSkipsQuery} selects, as either driver returns them. */
export interface PendingSkipRowSql {
  dataset: string; source: string; category: string; day: string; run_id: string; message: string | null; finalized_at: string | Date | null;
}

/**
 * The query behind `LedgerReader.pendingSkips`: skipped history rows of
 * partitions that have no state row, in key then recording order.
 * `isTrue` is the dialect's test of the boolean `skipped` column.
 * @throws LedgerError `invalid_argument` for a bad filter, or for `status`/`limit`.
 */
export function pendingSkipsQuery(filters: Omit<PartitionFilters, 'status' | 'limit'>, placeholder: (i: number) => string, isTrue: string): WhereSql {
  const given = filters as PartitionFilters;
  if (given.status !== undefined || given.limit !== undefined) throw new LedgerError('invalid_argument', 'pendingSkips takes key and day filters only (no status, no limit)');
  const w = whereSql(compilePartitionFilters(filters), placeholder, 0, 'h.');
  const cond = [`h.${isTrue}`, 'NOT EXISTS (SELECT 1 FROM partition_state p WHERE p.dataset = h.dataset AND p.source = h.source AND p.category = h.category AND p.day = h.day)'];
  if (w.sql !== '') cond.push(w.sql.slice('WHERE '.length));
  return {
    sql: `SELECT h.dataset, h.source, h.category, h.day, h.run_id, h.message, h.finalized_at FROM run_history h WHERE ${cond.join(' AND ')} ORDER BY h.dataset, h.source, h.category, h.day, h.history_id`,
    params: w.params,
  };
}

/** One {@link PendingSkip} per partition (its latest skip) from rows in {@link pendingSkipsQuery}'s order. */
export function latestSkips(rows: readonly PendingSkipRowSql[]): PendingSkip[] {
  const out = new Map<string, PendingSkip>();
  for (const r of rows) {
    const finalized = r.finalized_at === null ? null : new Date(r.finalized_at).toISOString();
    out.set(JSON.stringify([r.dataset, r.source, r.category, r.day]), {
      dataset: r.dataset, source: r.source, category: r.category, day: r.day,
      run_id: r.run_id as RunId, reason: skipReason(r.message), finalized_at: finalized,
    });
  }
  return [...out.values()];
}

/** A notification_outbox row as either driver returns it (PostgreSQL gives Dates for timestamps). */
export interface OutboxRowSql {
  notification_id: string; dataset: string; subject: string; subject_id: string; job_id: string | null;
  adapter_kind: string; adapter_target: string; payload: string; created_at: string | Date; status: string; attempts: number;
  last_attempt_at: string | Date | null; last_error: string | null; delivered_at: string | Date | null; superseded_by: string | null;
}

const instant = (v: string | Date | null): string | null => (v === null ? null : v instanceof Date ? v.toISOString() : v);

/** Decodes an outbox row (SPEC §11). */
export function decodeOutboxRow(r: OutboxRowSql): NotificationRow {
  return {
    notification_id: r.notification_id, dataset: r.dataset, subject: r.subject as NotificationSubject, subject_id: r.subject_id,
    job_id: r.job_id, adapter: { kind: r.adapter_kind as AdapterKind, target: r.adapter_target },
    payload: parseJsonColumn(r.payload) as NotificationPayload, created_at: instant(r.created_at)!,
    status: r.status as DeliveryStatus, attempts: r.attempts, last_attempt_at: instant(r.last_attempt_at), last_error: r.last_error,
    delivered_at: instant(r.delivered_at), superseded_by: r.superseded_by,
  };
}

/** The SELECT of `listNotifications`, oldest first. */
export function outboxListQuery(f: NotificationFilters, placeholder: (i: number) => string): WhereSql {
  const conds: string[] = [];
  const params: Array<string | number> = [];
  const add = (sql: (p: string) => string, v: string): void => {
    params.push(v);
    conds.push(sql(placeholder(params.length)));
  };
  if (f.dataset !== undefined) add((p) => `dataset = ${p}`, f.dataset);
  if (f.status !== undefined) add((p) => `status = ${p}`, f.status);
  if (f.job_id !== undefined) add((p) => `job_id = ${p}`, f.job_id);
  if (f.subject_ids !== undefined) {
    if (f.subject_ids.length === 0) conds.push('1 = 0');
    else conds.push(`subject_id IN (${f.subject_ids.map((id) => { params.push(id); return placeholder(params.length); }).join(', ')})`);
  }
  return { sql: `SELECT * FROM notification_outbox${conds.length > 0 ? ` WHERE ${conds.join(' AND ')}` : ''} ORDER BY created_at, notification_id`, params };
}
