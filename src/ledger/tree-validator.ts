/**
 * The tree validator (SPEC §8 run trees): judges a published fan-out tree as
 * one unit of authority and records it through {@link Ledger.recordTree}.
 *
 * Rules kept here:
 * - every attempt with a manifest is checked and recorded as a tree member
 *   (history only; a member is never promoted alone);
 * - failures are counted per work item by its FINAL attempt: replaced and
 *   retried attempts never count; an interrupted attempt is never final; a
 *   target that does not exist is a failed item with no run; items refused
 *   by depth or cap are not items at all; a `prepare` skip is not a failure
 *   (and not readable);
 * - the tree passes when failures ≤ the allowance (the tree manifest's
 *   `allow_failed_children` unless the caller gives one);
 * - a passing tree competes, in each partition where it has a readable member
 *   (final, valid, success), with its manifest's `finalized_at` as its instant.
 */
import type { StorageBackend } from '../storage/backend.js';
import { DEFAULT_DATASET, type LogicalPartition, type RunPartition } from '../storage/layout.js';
import { ManifestError } from '../storage/manifest.js';
import { readManifest, readRunClaim } from '../storage/reader.js';
import { listTreeIds, readTreeManifest, type TreeItem, type TreeManifest } from '../storage/tree-manifest.js';
import type { Ledger, RecordedTree, TreePartitionInput } from './ledger.js';
import { manifestAdapter, treeNotificationDraft, type AdapterTarget } from './outbox.js';
import type { TreePartitionOutcome } from './promotion.js';
import { CHECK_CONCURRENCY, mapLimit } from './run-checks.js';
import { inspectRun } from './run-record.js';
import { toRunId, type RunHistoryInput, type RunHistoryRow, type RunId, type TreeItemFailure, type TreeValidationRow } from './types.js';

/** A tree to validate: its id (the first root attempt's run_id) in a dataset (default `quarry`). */
export interface TreeRef {
  dataset?: string;
  tree_id: string;
}

/** Options of {@link validateTree}. */
export interface ValidateTreeOptions {
  /** `--allow-failed-children`; default: the tree manifest's `options.allow_failed_children`. */
  allowFailedChildren?: number;
  now?: () => Date;
  /** Objects of one run checked at once. */
  concurrency?: number;
}

/** Why a tree is or is not authoritative (the report's `tree.reason`, SPEC §10). */
export type TreeAuthorityReason =
  /** It became the authority of at least one partition. */
  | 'promoted'
  /** It passed, but every partition where it had data is held by a later candidate. */
  | 'superseded'
  /** It passed with no readable member and no failure: every final attempt was a `prepare` skip. */
  | 'skipped'
  /** More failed items than allowed, or nothing readable: not authoritative. */
  | 'rejected';

/** One partition the tree touched, and what the tree did there. */
export interface TreePartitionResult extends LogicalPartition {
  outcome: TreePartitionOutcome;
  /** Readable members of the tree here. */
  readable: number;
  failed: number;
}

/** What validating a tree did (everything the CLI needs for the exit code and the report). */
export interface TreeValidation {
  tree_id: RunId;
  dataset: string;
  /** Failures ≤ allowed. */
  valid: boolean;
  /** The tree is the authority of at least one partition now. */
  authoritative: boolean;
  reason: TreeAuthorityReason;
  /** The command to run next, when something is left to do; null otherwise. */
  next: string | null;
  /** 0 when the tree's data is settled (promoted, superseded by a later instant, skipped); 3 when not authoritative (SPEC §8). */
  exit_code: 0 | 3;
  failures: number;
  allowed: number;
  failed_items: TreeItemFailure[];
  /** False when the tree was validated before: nothing was checked or written this time. */
  recorded: boolean;
  manifest_sha256: string;
  partitions: TreePartitionResult[];
  /** Member runs newly recorded in the history by this call. */
  members_recorded: number;
  /** The stored validation row. */
  row: TreeValidationRow;
  /** The outbox row inserted with the validation (SPEC §11), for `quarry run` to send; null: none. */
  notification_id: string | null;
}

/** The tree has no published manifest: it is still running, was interrupted, or does not exist. Nothing was written. */
export class TreeNotFinalizedError extends Error {
  override readonly name = 'TreeNotFinalizedError';
  constructor(readonly dataset: string, readonly treeId: string) {
    super(`tree ${treeId} has no tree manifest in dataset ${JSON.stringify(dataset)}: it is still running or was interrupted; resume it with quarry run --resume ${treeId}`);
  }
}

/** The published tree manifest is not the one the ledger validated (storage changed behind Quarry's back). */
export class TreeManifestChangedError extends Error {
  override readonly name = 'TreeManifestChangedError';
  constructor(readonly treeId: string, readonly sha256: string, readonly vetted: string) {
    super(`the tree manifest of ${treeId} changed after validation (SHA-256 ${sha256}, vetted ${vetted}): an operator must look`);
  }
}

const NON_FINAL = new Set(['interrupted', 'expired', 'abandoned']);

/** The history rows of every attempt of the tree: recorded ones from the ledger, the others checked now. */
async function memberRows(storage: StorageBackend, ledger: Ledger, m: TreeManifest, now: Date, concurrency: number): Promise<{ rows: Map<string, RunHistoryRow | RunHistoryInput>; fresh: RunHistoryInput[] }> {
  const attempts = m.items.flatMap((it) => it.attempts.map((a) => ({ ...a.partition, dataset: m.dataset, run_id: a.run_id })));
  const rows = new Map<string, RunHistoryRow | RunHistoryInput>();
  const recorded = await ledger.recordedRunIds(attempts.map((a) => a.run_id));
  if (recorded.size > 0) {
    for (const r of await ledger.listRuns({ root_run_id: m.tree_id })) if (recorded.has(r.run_id)) rows.set(r.run_id, r);
    for (const id of recorded) {
      if (rows.has(id)) continue;
      const r = await ledger.getRun(id);
      if (r !== undefined) rows.set(id, r);
    }
  }
  const todo = attempts.filter((a) => !recorded.has(a.run_id as RunId));
  const checked = await mapLimit(todo, 4, async (run: RunPartition) => {
    const claim = await readRunClaim(storage, run.dataset, run.run_id).catch(() => undefined);
    return inspectRun(storage, run, claim, now, concurrency);
  });
  const fresh: RunHistoryInput[] = [];
  for (const row of checked) {
    if (row === undefined) continue;
    rows.set(row.run_id, row);
    fresh.push(row);
  }
  return { rows, fresh };
}

/** Why an item's final attempt makes it a failure, or 'readable' / 'skipped'. */
function judgeItem(m: TreeManifest, it: TreeItem, rows: Map<string, RunHistoryRow | RunHistoryInput>): { verdict: 'readable' | 'skipped' | 'failed'; why: string } {
  if (it.final_run_id === null) return { verdict: 'failed', why: it.reason ?? 'no run' };
  const final = it.attempts.find((a) => a.run_id === it.final_run_id)!;
  if (NON_FINAL.has(final.outcome)) return { verdict: 'failed', why: `final attempt ${final.run_id} is ${final.outcome}, which is never final` };
  const row = rows.get(final.run_id);
  if (row === undefined) return { verdict: 'failed', why: `final attempt ${final.run_id} has no manifest (not finalized)` };
  if (row.root_run_id !== m.tree_id) return { verdict: 'failed', why: `run ${final.run_id} belongs to tree ${row.root_run_id}, not ${m.tree_id}` };
  const p = final.partition;
  if (row.source !== p.source || row.category !== p.category || row.day !== p.day || row.dataset !== m.dataset) {
    return { verdict: 'failed', why: `run ${final.run_id} is recorded in ${row.dataset}/${row.source}/${row.category}/${row.day}, not where the tree lists it` };
  }
  if (row.validation_status === 'valid') return { verdict: 'readable', why: '' };
  if (row.skipped === true && row.validation_reasons.every((r) => r.code === 'skipped')) return { verdict: 'skipped', why: 'skipped' };
  const first = row.validation_reasons[0];
  return { verdict: 'failed', why: row.outcome !== 'success' && row.outcome !== null ? `${row.outcome}${row.message ? `: ${row.message}` : ''}` : `${first?.code ?? 'invalid'}: ${first?.message ?? ''}` };
}

const partitionKey = (p: { source: string; category: string; day: string }): string => `${p.source}\u0000${p.category}\u0000${p.day}`;

/**
 * Validates a published tree and records it (SPEC §8 run trees): checks every
 * attempt not yet recorded, counts failures by final attempt, and records the
 * members, the tree validation and the partition promotions in ONE ledger
 * transaction. Idempotent: a tree validated before is returned as recorded,
 * without checking storage or writing anything.
 * @throws TreeNotFinalizedError when the tree manifest is not published (nothing is written);
 *   ManifestError when it does not parse; TreeManifestChangedError when it differs from the one validated;
 *   LedgerError; StorageError.
 */
export async function validateTree(storage: StorageBackend, ledger: Ledger, ref: TreeRef, options: ValidateTreeOptions = {}): Promise<TreeValidation> {
  const dataset = ref.dataset ?? DEFAULT_DATASET;
  const treeId = toRunId(ref.tree_id);
  const now = options.now ?? (() => new Date());
  const stored = await readTreeManifest(storage, dataset, treeId);
  if (stored === undefined) throw new TreeNotFinalizedError(dataset, treeId);
  const m = stored.manifest;
  const known = await ledger.getTree(treeId);
  if (known !== undefined && known.manifest_sha256 !== stored.sha256) throw new TreeManifestChangedError(treeId, stored.sha256, known.manifest_sha256);
  const allowed = known?.allowed ?? options.allowFailedChildren ?? m.options.allow_failed_children;
  if (!Number.isSafeInteger(allowed) || allowed < 0) throw new RangeError(`allowFailedChildren ${JSON.stringify(allowed)} must be an integer ≥ 0`);

  const { rows, fresh } = known === undefined
    ? await memberRows(storage, ledger, m, now(), options.concurrency ?? CHECK_CONCURRENCY)
    : { rows: new Map<string, RunHistoryRow | RunHistoryInput>((await ledger.listRuns({ root_run_id: treeId })).map((r) => [r.run_id, r])), fresh: [] };

  const parts = new Map<string, TreePartitionInput>();
  const failedItems: TreeItemFailure[] = [];
  let readable = 0;
  for (const it of m.items) {
    const { verdict, why } = judgeItem(m, it, rows);
    if (verdict === 'failed') failedItems.push({ key: it.key, run_id: it.final_run_id, reason: why });
    if (verdict === 'readable') readable++;
    for (const a of it.attempts) {
      const k = partitionKey(a.partition);
      if (!parts.has(k)) parts.set(k, { partition: { dataset, ...a.partition }, readable: 0, failed: 0, failure: null });
    }
    if (it.final_run_id === null) continue;
    const final = it.attempts.find((a) => a.run_id === it.final_run_id)!;
    const part = parts.get(partitionKey(final.partition))!;
    if (verdict === 'readable') part.readable++;
    if (verdict === 'failed') {
      part.failed++;
      part.failure ??= `${it.target} (${it.final_run_id}): ${why}`;
    }
  }
  const failures = failedItems.length;
  const valid = failures <= allowed;
  const reasonText = valid ? null : `${failures} failed work item(s), ${allowed} allowed; first: ${failedItems[0]!.key}: ${failedItems[0]!.reason}`;
  const row: TreeValidationRow = {
    tree_id: treeId,
    dataset,
    job_id: m.job_id,
    manifest_sha256: stored.sha256,
    started_at: new Date(m.started_at).toISOString(),
    finalized_at: new Date(m.finalized_at).toISOString(),
    valid,
    failures,
    allowed,
    items: m.items.length,
    reason: reasonText,
    failed_items: failedItems,
    validated_at: now().toISOString(),
  };
  // Only runs that belong to this tree are recorded with it; a stray run listed by a bad manifest is a failure above, not a member.
  const members = fresh.filter((r) => r.root_run_id === treeId);
  const notify = known === undefined ? treeNotificationDraft(m, await rootAdapter(storage, m), storage.kind, storage.location, failures) : undefined;
  const recorded: RecordedTree = await ledger.recordTree({ tree: row, members, partitions: [...parts.values()], ...(notify ? { notify } : {}) }, now());
  return summarize(recorded, [...parts.values()], readable);
}

/** The adapter the tree's first root attempt ran with (every run of a tree shares its settings); undefined when none or unreadable. */
async function rootAdapter(storage: StorageBackend, m: TreeManifest): Promise<AdapterTarget | undefined> {
  const root = m.items.flatMap((it) => it.attempts).find((a) => a.run_id === m.tree_id);
  if (root === undefined) return undefined;
  const manifest = await readManifest(storage, { dataset: m.dataset, ...root.partition, run_id: root.run_id }).catch(() => undefined);
  return manifestAdapter(manifest);
}

function summarize(r: RecordedTree, inputs: TreePartitionInput[], readable: number): TreeValidation {
  const t = r.tree;
  const partitions: TreePartitionResult[] = r.partitions.map((p, i) => ({ ...p.partition, outcome: p.outcome, readable: inputs[i]!.readable, failed: inputs[i]!.failed }));
  const promoted = partitions.some((p) => p.outcome === 'promoted');
  const superseded = partitions.some((p) => p.outcome === 'superseded');
  let reason: TreeAuthorityReason;
  if (!t.valid) reason = 'rejected';
  else if (promoted) reason = 'promoted';
  else if (superseded) reason = 'superseded';
  else if (readable === 0 && t.failures === 0) reason = 'skipped';
  else reason = 'rejected';
  const settled = reason !== 'rejected';
  return {
    tree_id: t.tree_id,
    dataset: t.dataset,
    valid: t.valid,
    authoritative: promoted,
    reason,
    next: settled ? null : `quarry inspect run ${t.tree_id} (see why), then quarry retry (re-runs the tree)`,
    exit_code: settled ? 0 : 3,
    failures: t.failures,
    allowed: t.allowed,
    failed_items: t.failed_items,
    recorded: r.recorded,
    manifest_sha256: t.manifest_sha256,
    partitions,
    members_recorded: r.members.filter((m) => m.recorded).length,
    row: t,
    notification_id: r.notification_id,
  };
}

/** Result of {@link validatePendingTrees}. */
export interface PendingTrees {
  /** Trees validated now. */
  validated: TreeValidation[];
  /** Published trees that could not be validated (a manifest that does not parse, one that changed): each with why. */
  errors: Array<{ tree_id: string; message: string }>;
  /** Trees validated before this call. */
  already_recorded: number;
}

/**
 * Validates every published tree of `dataset` the ledger has not recorded
 * (SPEC §10: `validate --pending` also picks up published, unvalidated trees,
 * e.g. after a kill between publishing the tree manifest and validating it).
 * A tree that cannot be validated is reported, never skipped silently.
 */
export async function validatePendingTrees(storage: StorageBackend, ledger: Ledger, dataset: string = DEFAULT_DATASET, options: Omit<ValidateTreeOptions, 'allowFailedChildren'> = {}): Promise<PendingTrees> {
  const ids = await listTreeIds(storage, dataset);
  const done = await ledger.recordedTreeIds(ids);
  const out: PendingTrees = { validated: [], errors: [], already_recorded: done.size };
  for (const id of ids) {
    if (done.has(id as RunId)) continue;
    try {
      out.validated.push(await validateTree(storage, ledger, { dataset, tree_id: id }, options));
    } catch (err) {
      // A bad tree is this tree's problem, reported; anything else (ledger, storage) stops the sweep.
      if (!(err instanceof ManifestError || err instanceof TreeManifestChangedError || err instanceof TreeNotFinalizedError)) throw err;
      out.errors.push({ tree_id: id, message: err.message });
    }
  }
  return out;
}
