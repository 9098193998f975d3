/**
 * What `exportPartitions` returns (the summary) and throws ({@link ExportError}).
 * Apart from export.ts so the warehouse sinks can throw it without an import cycle.
 */
import type { LogicalPartition } from '../storage/layout.js';

/** Rows written, per record table. */
export interface ExportRowCounts {
  quarry_events: number;
  quarry_items: number;
  quarry_artifacts: number;
}

/** One partition whose rows an export wrote. */
export interface PartitionExport extends LogicalPartition {
  /** The authoritative run whose records are now the partition's rows. */
  run_id: string;
  /** `loaded`: first export of the partition; `replaced`: its previous rows (of `previous_run_id`) were replaced. */
  action: 'loaded' | 'replaced';
  /** The run the partition's rows were of before (null when it had none). Same as `run_id` for a forced or re-filtered reload. */
  previous_run_id: string | null;
  rows: ExportRowCounts;
}

/** What an export did. */
export interface ExportSummary {
  /** The warehouse, as {@link ExportError.target} names it (no password). */
  target: string;
  /** `success` partitions matching the filters, at the start. */
  partitions_matched: number;
  /** Partitions whose rows were written (loaded or replaced). */
  partitions_loaded: number;
  /** Partitions already exported at their authoritative run, with the same event types: untouched. */
  partitions_skipped: number;
  /** The partitions written, in key order. */
  loaded: PartitionExport[];
  /** Rows written by this export, per table (rows of skipped partitions are not counted). */
  rows: ExportRowCounts;
  duration_ms: number;
}

/**
 * Why an export stopped, and so what to do:
 * - `invalid_option`: a bad target, batch size or event type (quoted): fix the option;
 * - `unavailable`: the warehouse cannot be opened or reached: check the file or URL and the server;
 * - `schema`: an existing table lacks columns the export writes: export into another database or drop it;
 * - `not_readable`: the ledger or storage refuses the partition (e.g. its manifest changed after validation): an operator must look;
 * - `load_failed`: reading records or writing rows failed; the partition's previous rows are unchanged: fix the cause and rerun;
 * - `ledger_moved`: the partition's authoritative run kept changing while it was loaded: rerun;
 * - `aborted`: the caller's signal fired; the partition in flight was rolled back.
 */
export type ExportErrorCode = 'invalid_option' | 'unavailable' | 'schema' | 'not_readable' | 'load_failed' | 'ledger_moved' | 'aborted';

/** Context of an {@link ExportError}. */
export interface ExportErrorContext {
  cause?: unknown;
  /** The partition being loaded when the export stopped (its transaction was rolled back). */
  partition?: LogicalPartition;
  /** The authoritative run being loaded. */
  runId?: string;
  /** What was committed before the export stopped: those partitions keep their new rows. */
  completed?: ExportSummary;
}

/**
 * An export that stopped. The message names the target (never with a
 * password), the partition when there is one, and what to fix. Partitions
 * committed before the failure stay loaded; rerunning skips them.
 */
export class ExportError extends Error {
  override readonly name = 'ExportError';
  /** The message without its `export to <target>: ` prefix. */
  readonly detail: string;
  readonly partition: LogicalPartition | undefined;
  readonly runId: string | undefined;
  readonly completed: ExportSummary | undefined;

  constructor(
    readonly code: ExportErrorCode,
    /** The warehouse, without password. */
    readonly target: string,
    message: string,
    context: ExportErrorContext = {},
  ) {
    super(`export to ${target}: ${message}`, context.cause === undefined ? undefined : { cause: context.cause });
    this.detail = message;
    this.partition = context.partition;
    this.runId = context.runId;
    this.completed = context.completed;
  }
}

/** A thrown value's message, for wrapping it in another. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
