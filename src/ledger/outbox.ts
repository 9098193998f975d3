/**
 * The notification outbox (SPEC §8 "Notifications", §11 "Adapters"): one row
 * per standalone run and per tree whose manifest names an adapter, inserted
 * by the validator in the SAME transaction that records the validation, so a
 * validated run can never lose its notification. The adapter that sends a row
 * writes only its delivery columns (status, attempts, lease, errors); the
 * schema refuses any other change and any delete.
 *
 * Pure: the row shapes, the draft a validator builds from a manifest, and the
 * payload the ledger completes inside its transaction (where "became
 * authoritative" is known).
 */
import { monotonicFactory } from 'ulid';
import type { RunManifest } from '../storage/manifest.js';
import { manifestKey, runPrefix, treeManifestKey, type RunPartition } from '../storage/layout.js';
import type { TreeManifest } from '../storage/tree-manifest.js';

/**
 * Ids that sort in creation order within a process, even within one
 * millisecond: `listNotifications` and the drain go oldest first by
 * (created_at, notification_id), and rows of one validation share created_at.
 */
const ulid = monotonicFactory();

/** Adapter kinds (SPEC §11). */
export type AdapterKind = 'webhook' | 'redis';

/** Every adapter kind. */
export const ADAPTER_KINDS: readonly AdapterKind[] = ['webhook', 'redis'];

/** Where a notification goes: a URL without credentials or query (webhook), or a channel (redis). Never headers. */
export interface AdapterTarget {
  kind: AdapterKind;
  target: string;
}

/** Delivery state of an outbox row. `superseded`: a later attempt of the same `--retries` invocation notified instead. */
export type DeliveryStatus = 'pending' | 'delivered' | 'superseded';

/** What a notification is about. */
export type NotificationSubject = 'run' | 'tree';

/** The JSON body a receiver gets (SPEC §11): one per standalone run or tree, none per child. */
export interface NotificationPayload {
  event_type: 'run_completed' | 'tree_completed';
  /** Receivers dedupe by it: a notification sent twice (a drain after a crash) carries the same id. */
  notification_id: string;
  /** The run id, or the tree id for a tree. */
  run_id: string;
  tree_id: string | null;
  dataset: string;
  source: string;
  category: string;
  day: string;
  job_id: string | null;
  attempt: number | null;
  parent_run_id: string | null;
  root_run_id: string;
  depth: number;
  outcome: string;
  /** The run (or tree) became the authority of its partition (or of at least one partition). */
  authoritative: boolean;
  /** promoted | superseded | skipped | rejected */
  authority_reason: string;
  storage: { backend: string; location: string; partition: string; manifest: string };
  counts: { events: number; records: number; dropped: number; items?: number; failed_items?: number; runs?: number };
  duration_ms: number | null;
  started_at: string | null;
  finalized_at: string | null;
}

/** The payload without what only the ledger transaction knows. */
export type NotificationFields = Omit<NotificationPayload, 'notification_id' | 'authoritative' | 'authority_reason'>;

/** What a validator hands the ledger with a run or a tree: where to send, and what to say. */
export interface NotificationDraft {
  adapter: AdapterTarget;
  fields: NotificationFields;
}

/** One outbox row as stored. */
export interface NotificationRow {
  notification_id: string;
  dataset: string;
  subject: NotificationSubject;
  /** The run id or tree id: one notification per subject. */
  subject_id: string;
  job_id: string | null;
  adapter: AdapterTarget;
  payload: NotificationPayload;
  created_at: string;
  status: DeliveryStatus;
  attempts: number;
  last_attempt_at: string | null;
  last_error: string | null;
  delivered_at: string | null;
  superseded_by: string | null;
}

/** Filters of `listNotifications`. */
export interface NotificationFilters {
  dataset?: string;
  status?: DeliveryStatus;
  job_id?: string;
  subject_ids?: readonly string[];
}

/** Which rows `claimNotifications` leases: pending ones, optionally only these ids or this dataset. */
export interface NotificationClaim {
  dataset?: string;
  ids?: readonly string[];
  /** At most this many rows. Default 100. */
  limit?: number;
}

/** A lease on claimed rows: no other sender takes them before `until`. */
export interface DeliveryLease {
  owner: string;
  until: Date;
}

/** What one delivery did, written to the row's delivery columns. */
export interface DeliveryResult {
  delivered: boolean;
  /** HTTP/Redis attempts made by this delivery (added to the row's count). */
  attempts: number;
  error: string | null;
}

/** A new lease owner id (one per sending process). */
export function newLeaseOwner(): string {
  return `${process.pid}-${ulid()}`;
}

/** outbox columns written on insert, in parameter order. */
export const OUTBOX_COLUMNS = [
  'notification_id', 'dataset', 'subject', 'subject_id', 'job_id', 'adapter_kind', 'adapter_target', 'payload', 'created_at',
] as const;

/** Builds the row the validator inserts, completing the draft with what the transaction decided. */
export function outboxRow(draft: NotificationDraft, subject: NotificationSubject, authoritative: boolean, reason: string, nowIso: string): { values: Record<(typeof OUTBOX_COLUMNS)[number], string | null>; payload: NotificationPayload } {
  const id = ulid();
  const f = draft.fields;
  const { event_type, ...rest } = f;
  // Field order: what and which notification first, as receivers read it.
  const payload: NotificationPayload = { event_type, notification_id: id, ...rest, authoritative, authority_reason: reason };
  return {
    payload,
    values: {
      notification_id: id,
      dataset: f.dataset,
      subject,
      subject_id: subject === 'tree' ? f.tree_id! : f.run_id,
      job_id: f.job_id,
      adapter_kind: draft.adapter.kind,
      adapter_target: draft.adapter.target,
      payload: JSON.stringify(payload),
      created_at: nowIso,
    },
  };
}

/** Why a run did or did not become authoritative, in the report's words (SPEC §8). */
export function runAuthorityReason(valid: boolean, skipped: boolean, promoted: boolean): string {
  if (!valid) return 'rejected';
  if (promoted) return 'promoted';
  return skipped ? 'skipped' : 'superseded';
}

const isAdapter = (v: unknown): v is AdapterTarget =>
  typeof v === 'object' && v !== null && ADAPTER_KINDS.includes((v as { kind?: unknown }).kind as AdapterKind) && typeof (v as { target?: unknown }).target === 'string';

/** The adapter a manifest names, or undefined. */
export function manifestAdapter(m: Pick<RunManifest, 'settings'> | undefined): AdapterTarget | undefined {
  const a = m?.settings?.adapter;
  return isAdapter(a) ? { kind: a.kind, target: a.target } : undefined;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** Start, end and duration of a run or tree, from its manifest's instants (null where one does not parse). */
function timing(startedAt: string, finalizedAt: string): Pick<NotificationFields, 'duration_ms' | 'started_at' | 'finalized_at'> {
  const started = Date.parse(startedAt);
  const finalized = Date.parse(finalizedAt);
  return {
    duration_ms: Number.isNaN(started) || Number.isNaN(finalized) ? null : finalized - started,
    started_at: Number.isNaN(started) ? null : new Date(started).toISOString(),
    finalized_at: Number.isNaN(finalized) ? null : new Date(finalized).toISOString(),
  };
}

/** A standalone run's draft, from its (parsed) manifest; undefined when the manifest names no adapter. */
export function runNotificationDraft(run: RunPartition, m: RunManifest | undefined, location: string): NotificationDraft | undefined {
  const adapter = manifestAdapter(m);
  if (adapter === undefined || m === undefined) return undefined;
  const records = (m.objects ?? []).filter((o) => o.kind === 'records').reduce((n, o) => n + num(o.records), 0);
  return {
    adapter,
    fields: {
      event_type: 'run_completed',
      run_id: run.run_id,
      tree_id: null,
      dataset: run.dataset, source: run.source, category: run.category, day: run.day,
      job_id: typeof m.job_id === 'string' ? m.job_id : null,
      attempt: typeof m.attempt === 'number' ? m.attempt : null,
      parent_run_id: typeof m.parent_run_id === 'string' ? m.parent_run_id : null,
      root_run_id: typeof m.root_run_id === 'string' ? m.root_run_id : run.run_id,
      depth: num(m.depth),
      outcome: String(m.outcome),
      storage: { backend: String(m.storage_backend), location, partition: runPrefix(run), manifest: manifestKey(run) },
      counts: { events: num(m.event_count), records, dropped: num(m.policy?.events_dropped) },
      ...timing(m.started_at, m.finalized_at),
    },
  };
}

/** A tree's draft: the adapter its root's manifest names; undefined when none. */
export function treeNotificationDraft(m: TreeManifest, adapter: AdapterTarget | undefined, backend: string, location: string, failures: number): NotificationDraft | undefined {
  if (adapter === undefined) return undefined;
  const root = m.items.find((it) => it.depth === 0);
  const rootPart = root?.attempts[0]?.partition;
  const runs = m.items.reduce((n, it) => n + it.attempts.length, 0);
  return {
    adapter,
    fields: {
      event_type: 'tree_completed',
      run_id: m.tree_id,
      tree_id: m.tree_id,
      dataset: m.dataset,
      source: rootPart?.source ?? '',
      category: rootPart?.category ?? '',
      day: rootPart?.day ?? '',
      job_id: m.job_id,
      attempt: null,
      parent_run_id: null,
      root_run_id: m.tree_id,
      depth: 0,
      outcome: failures === 0 ? 'success' : 'partial_failure',
      storage: { backend, location, partition: '', manifest: treeManifestKey(m.dataset, m.tree_id) },
      counts: { events: 0, records: 0, dropped: 0, items: m.items.length, failed_items: failures, runs },
      ...timing(m.started_at, m.finalized_at),
    },
  };
}
