/**
 * The consumer API (SPEC §8, seed consumer contract): downstream code asks the
 * ledger which partitions are `success` and reads the run it names — never
 * raw directories, never a pending or failed partition, never a run the
 * ledger does not name. Read-only: it takes a {@link LedgerReader}.
 */
import { createHash } from 'node:crypto';
import { StorageError, type StorageBackend } from '../storage/backend.js';
import { manifestKey, type LogicalPartition, type RunPartition } from '../storage/layout.js';
import { parseManifest, type RunManifest } from '../storage/manifest.js';
import { streamRecords } from '../storage/reader.js';
import type { StoredRecord } from '../storage/records.js';
import type { LedgerReader } from './ledger.js';
import { checkLogicalPartition, type PartitionFilters, type PartitionStatusOrPending, type RunId } from './types.js';

/** A partition a consumer may read: `success` in the ledger, at its authoritative run. */
export interface AuthoritativePartition extends LogicalPartition {
  run_id: RunId;
  /** When the ledger last changed this partition (ISO 8601 UTC). */
  updated_at: string;
}

/** Filters of {@link Consumer.partitions}: those of the ledger, without `status` (always `success`). */
export type ConsumerFilters = Omit<PartitionFilters, 'status'>;

/** The authoritative run of a partition, opened: what {@link Consumer.records} streams. */
export interface AuthoritativeRun {
  partition: AuthoritativePartition;
  manifest: RunManifest;
}

/** Options of {@link Consumer.records}. */
export interface ConsumerRecordsOptions {
  /** Only these event types (`item`, `artifact` …; `metrics` for the metrics record). Absent: every event type. */
  eventTypes?: readonly string[];
}

/** Why a consumer may not read a partition. */
export type NotReadableReason = 'not_success' | 'run_not_valid' | 'manifest_missing' | 'manifest_changed';

/**
 * A partition that is not readable: it is `pending` or `failed` (wait or retry
 * it), or its authoritative run no longer matches what the validator vetted
 * (an operator must look: storage was changed behind Quarry's back).
 */
export class PartitionNotReadableError extends Error {
  override readonly name = 'PartitionNotReadableError';
  constructor(
    readonly reason: NotReadableReason,
    readonly partition: LogicalPartition,
    readonly status: PartitionStatusOrPending,
    message: string,
  ) {
    super(message);
  }
}

/** Reads only what the ledger vouches for. */
export interface Consumer {
  /** `success` partitions matching the filters, each with its authoritative run id, in key order. */
  partitions(filters?: ConsumerFilters): Promise<AuthoritativePartition[]>;
  /**
   * The partition's authoritative run as the ledger names it now, with its
   * manifest, checked to be the very manifest the validator vetted.
   * @throws PartitionNotReadableError when the partition is pending or failed, or its manifest changed.
   */
  open(partition: LogicalPartition): Promise<AuthoritativeRun>;
  /**
   * Streams the authoritative run's records, merged in seq order (the reader's
   * `streamRecords`). Follows the ledger's current run at call time.
   * @throws PartitionNotReadableError as {@link Consumer.open}; ReaderError, StorageError while streaming.
   */
  records(partition: LogicalPartition, options?: ConsumerRecordsOptions): AsyncIterable<StoredRecord>;
}

function describe(p: LogicalPartition): string {
  return `${p.dataset}/source=${p.source}/category=${p.category}/day=${p.day}`;
}

/** Opens a consumer over `storage` that trusts only `ledger` (SPEC §8 consumers). */
export function openConsumer({ storage, ledger }: { storage: StorageBackend; ledger: LedgerReader }): Consumer {
  const open = async (partition: LogicalPartition): Promise<AuthoritativeRun> => {
    checkLogicalPartition(partition);
    const key = { dataset: partition.dataset, source: partition.source, category: partition.category, day: partition.day };
    const state = await ledger.getPartition(key);
    if (state === undefined || state.status !== 'success' || state.current_run_id === null) {
      const status = state?.status ?? 'pending';
      throw new PartitionNotReadableError('not_success', key, status, `partition ${describe(key)} is ${status}, not success: consumers read only success partitions`);
    }
    const runId = state.current_run_id;
    const history = await ledger.getRun(runId);
    if (history === undefined || history.validation_status !== 'valid') {
      throw new PartitionNotReadableError('run_not_valid', key, state.status, `partition ${describe(key)} names run ${runId}, which the ledger does not record as valid`);
    }
    const run: RunPartition = { ...key, run_id: runId };
    let bytes: Buffer;
    try {
      bytes = await storage.get(manifestKey(run));
    } catch (err) {
      if (err instanceof StorageError && err.code === 'not_found') {
        throw new PartitionNotReadableError('manifest_missing', key, state.status, `the manifest of run ${runId} in ${describe(key)} is gone from ${storage.location}`);
      }
      throw err;
    }
    // The manifest lists every object with its SHA-256, so pinning its hash pins what was vetted.
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (history.manifest_sha256 !== null && sha !== history.manifest_sha256) {
      throw new PartitionNotReadableError('manifest_changed', key, state.status, `the manifest of run ${runId} in ${describe(key)} changed after validation (SHA-256 ${sha}, vetted ${history.manifest_sha256})`);
    }
    return { partition: { ...key, run_id: runId, updated_at: state.updated_at }, manifest: parseManifest(bytes, `${storage.location}/${manifestKey(run)}`) };
  };

  return {
    async partitions(filters: ConsumerFilters = {}): Promise<AuthoritativePartition[]> {
      const rows = await ledger.listPartitions({ ...filters, status: 'success' });
      return rows.flatMap((r) => (r.current_run_id === null ? [] : [{ dataset: r.dataset, source: r.source, category: r.category, day: r.day, run_id: r.current_run_id, updated_at: r.updated_at }]));
    },
    open,
    async *records(partition: LogicalPartition, options: ConsumerRecordsOptions = {}): AsyncIterable<StoredRecord> {
      const { manifest } = await open(partition);
      yield* streamRecords(storage, manifest, options.eventTypes === undefined ? {} : { eventTypes: options.eventTypes });
    },
  };
}
