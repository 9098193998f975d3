/**
 * SQL shared by the two ledger backends: column lists, WHERE building from
 * compiled filters, and row decoding helpers. Dialects differ only in
 * placeholders (`?` vs `$n`) and in value types, handled by each backend.
 */
import type { CompiledFilter } from './types.js';

/** run_history columns written on insert, in parameter order. */
export const HISTORY_COLUMNS = [
  'run_id', 'dataset', 'source', 'category', 'day', 'job_id', 'attempt', 'parent_run_id', 'root_run_id', 'depth',
  'job', 'script_path', 'script_sha256', 'manifest_sha256', 'outcome', 'message', 'skipped', 'started_at',
  'finalized_at', 'validation_status', 'validation_reasons', 'validated_at',
] as const;

/** partition_state columns, in parameter order. */
export const PARTITION_COLUMNS = [
  'dataset', 'source', 'category', 'day', 'status', 'current_run_id', 'attempts', 'last_run_id', 'last_error', 'updated_at',
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
 * the i-th (from 1) parameter marker of the dialect, after `offset` earlier ones.
 */
export function whereSql(filter: CompiledFilter, placeholder: (i: number) => string, offset = 0): WhereSql {
  const parts: string[] = [];
  const params: Array<string | number> = [];
  for (const c of filter.clauses) {
    // Column names come from compile*Filters, never from input; checked anyway because they are spliced in.
    if (!FILTER_COLUMNS.has(c.column)) throw new Error(`ledger: unexpected filter column ${c.column}`);
    params.push(c.value);
    parts.push(`${c.column} ${c.op} ${placeholder(offset + params.length)}`);
  }
  return { sql: parts.length === 0 ? '' : `WHERE ${parts.join(' AND ')}`, params };
}

/** Parses a JSON text column that the ledger itself wrote. */
export function parseJsonColumn(text: string | null): unknown {
  return text === null ? null : (JSON.parse(text) as unknown);
}
