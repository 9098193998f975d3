/**
 * The consumer API (SPEC §8, seed consumer contract): downstream code asks the
 * ledger which partitions are `success` and reads the run it names — never
 * raw directories, never a pending or failed partition, never a run the
 * ledger does not name. Read-only: it takes a {@link LedgerReader}.
 */
import { createHash } from 'node:crypto';
import { StorageError, type StorageBackend } from '../storage/backend.js';
import { manifestKey, treeManifestKey, type LogicalPartition, type RunPartition } from '../storage/layout.js';
import { parseManifest, type RunManifest } from '../storage/manifest.js';
import { streamRecords } from '../storage/reader.js';
import type { StoredRecord } from '../storage/records.js';
import { parseTreeManifest, type TreeManifest } from '../storage/tree-manifest.js';
import type { LedgerReader } from './ledger.js';
import { checkLogicalPartition, type PartitionAuthority, type PartitionFilters, type PartitionState, type PartitionStatusOrPending, type RunId } from './types.js';

/** A partition a consumer may read: `success` in the ledger, at its authoritative run or tree. */
export interface AuthoritativePartition extends LogicalPartition {
  /** The authoritative run, or the tree id when `authority` is `tree`. */
  run_id: RunId;
  authority: PartitionAuthority;
  /** When the ledger last changed this partition (ISO 8601 UTC). */
  updated_at: string;
}

/** One run whose records a consumer reads: the run itself, or a readable member of a tree. */
export interface AuthoritativeMember {
  run_id: RunId;
  /** 0 for a standalone run and a tree's root. */
  depth: number;
  /** Its manifest, checked to be the very one the validator vetted. */
  manifest: RunManifest;
}

/** Filters of {@link Consumer.partitions}: those of the ledger, without `status` (always `success`). */
export type ConsumerFilters = Omit<PartitionFilters, 'status'>;

/** The authoritative run (or tree) of a partition, opened: what {@link Consumer.records} streams. */
export interface AuthoritativeRun {
  partition: AuthoritativePartition;
  /** The run's manifest; for a tree partition, its first member's (read {@link members}). */
  manifest: RunManifest;
  /**
   * What is read, in order: the run alone, or a tree's readable members in
   * this partition ordered by (depth, run_id) (SPEC §8 consumers).
   */
  members: AuthoritativeMember[];
  /** For a tree partition: the pinned tree manifest. */
  tree?: TreeManifest;
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
   * `streamRecords`); for a tree partition, each readable member's records in
   * turn, members ordered by (depth, run_id). Follows the ledger's current run at call time.
   * @throws PartitionNotReadableError as {@link Consumer.open}; ReaderError, StorageError while streaming.
   */
  records(partition: LogicalPartition, options?: ConsumerRecordsOptions): AsyncIterable<StoredRecord>;
}

function describe(p: LogicalPartition): string {
  return `${p.dataset}/source=${p.source}/category=${p.category}/day=${p.day}`;
}

/** Opens a consumer over `storage` that trusts only `ledger` (SPEC §8 consumers). */
export function openConsumer({ storage, ledger }: { storage: StorageBackend; ledger: LedgerReader }): Consumer {
  /** A stored object's bytes, checked against the SHA-256 the ledger pinned. */
  const vetted = async (key: LogicalPartition, state: PartitionState, what: string, objectKey: string, pinned: string | null): Promise<Buffer> => {
    let bytes: Buffer;
    try {
      bytes = await storage.get(objectKey);
    } catch (err) {
      if (err instanceof StorageError && err.code === 'not_found') {
        throw new PartitionNotReadableError('manifest_missing', key, state.status, `the ${what} of ${describe(key)} is gone from ${storage.location}`);
      }
      throw err;
    }
    // A manifest lists every object with its SHA-256, so pinning its hash pins what was vetted.
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (pinned !== null && sha !== pinned) {
      throw new PartitionNotReadableError('manifest_changed', key, state.status, `the ${what} of ${describe(key)} changed after validation (SHA-256 ${sha}, vetted ${pinned})`);
    }
    return bytes;
  };

  /** A run the ledger records as valid, with its vetted manifest. */
  const member = async (key: LogicalPartition, state: PartitionState, runId: RunId, depth: number): Promise<AuthoritativeMember> => {
    const history = await ledger.getRun(runId);
    if (history === undefined || history.validation_status !== 'valid') {
      throw new PartitionNotReadableError('run_not_valid', key, state.status, `partition ${describe(key)} names run ${runId}, which the ledger does not record as valid`);
    }
    const run: RunPartition = { ...key, run_id: runId };
    const bytes = await vetted(key, state, `manifest of run ${runId}`, manifestKey(run), history.manifest_sha256);
    return { run_id: runId, depth, manifest: parseManifest(bytes, `${storage.location}/${manifestKey(run)}`) };
  };

  /**
   * A tree partition (SPEC §8 consumers): the pinned tree manifest, then its
   * readable members here — each item's final attempt, a `success` the ledger
   * records as valid — ordered by (depth, run_id). Failed, superseded,
   * interrupted and skipped attempts are listed in the tree manifest and never read.
   */
  const treeMembers = async (key: LogicalPartition, state: PartitionState, treeId: RunId): Promise<{ tree: TreeManifest; members: AuthoritativeMember[] }> => {
    const tkey = treeManifestKey(key.dataset, treeId);
    const tree = parseTreeManifest(await vetted(key, state, `tree manifest of ${treeId}`, tkey, state.tree_manifest_sha256), `${storage.location}/${tkey}`);
    const finals: Array<{ run_id: RunId; depth: number }> = [];
    for (const it of tree.items) {
      const final = it.attempts.find((a) => a.run_id === it.final_run_id);
      if (final === undefined || final.outcome !== 'success') continue;
      if (final.partition.source !== key.source || final.partition.category !== key.category || final.partition.day !== key.day) continue;
      const row = await ledger.getRun(final.run_id);
      if (row === undefined || row.validation_status !== 'valid' || row.root_run_id !== treeId) continue;
      finals.push({ run_id: final.run_id as RunId, depth: it.depth });
    }
    finals.sort((a, b) => a.depth - b.depth || (a.run_id < b.run_id ? -1 : a.run_id > b.run_id ? 1 : 0));
    if (finals.length === 0) {
      throw new PartitionNotReadableError('run_not_valid', key, state.status, `partition ${describe(key)} names tree ${treeId}, which has no readable member there`);
    }
    const members: AuthoritativeMember[] = [];
    for (const f of finals) members.push(await member(key, state, f.run_id, f.depth));
    return { tree, members };
  };

  const open = async (partition: LogicalPartition): Promise<AuthoritativeRun> => {
    checkLogicalPartition(partition);
    const key = { dataset: partition.dataset, source: partition.source, category: partition.category, day: partition.day };
    const state = await ledger.getPartition(key);
    if (state === undefined || state.status !== 'success' || state.current_run_id === null) {
      const status = state?.status ?? 'pending';
      throw new PartitionNotReadableError('not_success', key, status, `partition ${describe(key)} is ${status}, not success: consumers read only success partitions`);
    }
    const runId = state.current_run_id;
    const head = { partition: { ...key, run_id: runId, authority: state.authority, updated_at: state.updated_at } };
    if (state.authority === 'tree') {
      const { tree, members } = await treeMembers(key, state, runId);
      return { ...head, manifest: members[0]!.manifest, members, tree };
    }
    const only = await member(key, state, runId, 0);
    return { ...head, manifest: only.manifest, members: [only] };
  };

  return {
    async partitions(filters: ConsumerFilters = {}): Promise<AuthoritativePartition[]> {
      const rows = await ledger.listPartitions({ ...filters, status: 'success' });
      return rows.flatMap((r) => (r.current_run_id === null ? [] : [{ dataset: r.dataset, source: r.source, category: r.category, day: r.day, run_id: r.current_run_id, authority: r.authority, updated_at: r.updated_at }]));
    },
    open,
    async *records(partition: LogicalPartition, options: ConsumerRecordsOptions = {}): AsyncIterable<StoredRecord> {
      const { members } = await open(partition);
      // A tree partition: each member's records in seq order, members by (depth, run_id).
      for (const m of members) yield* streamRecords(storage, m.manifest, options.eventTypes === undefined ? {} : { eventTypes: options.eventTypes });
    },
  };
}
