/**
 * The tree manifest (SPEC §8 run trees): `datasets/<dataset>/trees/<tree_id>.json`,
 * published once by the scheduler when a fan-out tree is done, as its own
 * immutable object; the run partitions it lists stay untouched. It lists every
 * admitted work item with every attempt and the item's final attempt, so the
 * validator can judge the tree as a whole and a consumer can find a tree
 * partition's readable members.
 *
 * Invariant: created exclusively, like a run's `_manifest.json`; a create that
 * finds its own bytes is a success ({@link putNewOrOwn}); any other existing
 * object at the key is an error, never replaced.
 */
import { createHash } from 'node:crypto';
import { StorageError, type StorageBackend } from './backend.js';
import { putNewOrOwn } from './create-own.js';
import { checkDay, checkKeyValue, RUN_ID_RE, treeManifestKey } from './layout.js';
import { ManifestError, parseJsonObject, RUN_OUTCOMES, type RunOutcome } from './manifest.js';

/** The tree manifest format this Quarry writes and reads. */
export const TREE_MANIFEST_VERSION = 1;

/** An attempt's outcome as the tree lists it: a run's outcome, or a lease lost (`expired`, `abandoned`). */
export type TreeAttemptOutcome = RunOutcome | 'expired' | 'abandoned';

const ATTEMPT_OUTCOMES: readonly string[] = [...RUN_OUTCOMES, 'expired', 'abandoned'];

/** The logical partition an attempt writes, within the tree's dataset. */
export interface TreePartition {
  source: string;
  category: string;
  day: string;
}

/** One attempt of a work item. */
export interface TreeAttempt {
  run_id: string;
  attempt: number;
  /** Where the attempt's run partition is. */
  partition: TreePartition;
  outcome: TreeAttemptOutcome;
}

/** How a work item ended. */
export type TreeItemStatus = 'succeeded' | 'failed';

/** One admitted work item (SPEC §10: dedup key, target, params digest, depth, parent). */
export interface TreeItem {
  /** Dedup key: target path relative to the scripts root plus the params' canonical JSON. */
  key: string;
  target: string;
  params_digest: string;
  /** SHA-256 of the target when admitted; null when it was not found. */
  target_sha256: string | null;
  depth: number;
  /** The run that enqueued the item; null for the root. */
  parent_run_id: string | null;
  /** Per-enqueue overrides (null: inherited from the root). */
  source: string | null;
  category: string | null;
  status: TreeItemStatus;
  /** Why a failed item failed: `target_not_found` or its final attempt's outcome; null when it succeeded. */
  reason: string | null;
  attempts: TreeAttempt[];
  /** The attempt that decides the item (its success, or its last failure); null when it has no run. */
  final_run_id: string | null;
}

/** The tree's counters (SPEC §10 report `tree { … }`). */
export interface TreeCounters {
  admitted: number;
  succeeded: number;
  failed: number;
  retried: number;
  deduplicated: number;
  not_executed_cap: number;
  not_executed_depth: number;
  /** Attempts re-run without counting against retries (interrupted, expired, abandoned). */
  requeued: number;
}

/** The options the tree ran with (SPEC §8 retry re-runs a tree with them). */
export interface TreeManifestOptions {
  depth: number;
  max_runs: number;
  parallel: number;
  allow_failed_children: number;
  retries: number;
}

/** `datasets/<dataset>/trees/<tree_id>.json`. */
export interface TreeManifest {
  tree_manifest_version: number;
  /** Contract version of the runtime that wrote it. */
  contract_version: string;
  /** The first root attempt's run_id. */
  tree_id: string;
  dataset: string;
  job_id: string;
  options: TreeManifestOptions;
  started_at: string;
  /** The tree's instant in "who wins" (SPEC §8): the scheduler's clock when it finished. */
  finalized_at: string;
  /** Every admitted item, first admitted first. */
  items: TreeItem[];
  counters: TreeCounters;
}

/** A tree manifest read back, with the SHA-256 of its bytes (what the ledger pins). */
export interface StoredTreeManifest {
  manifest: TreeManifest;
  sha256: string;
  bytes: Buffer;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isInstant = (v: unknown): v is string => typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(Date.parse(v));
const isRunId = (v: unknown): v is string => typeof v === 'string' && RUN_ID_RE.test(v);
const isNullableString = (v: unknown): v is string | null => v === null || typeof v === 'string';

function checkPartition(v: unknown, where: string): void {
  if (typeof v !== 'object' || v === null) throw new ManifestError(`${where} is not an object`);
  const p = v as Record<string, unknown>;
  for (const k of ['source', 'category'] as const) {
    const why = typeof p[k] === 'string' ? checkKeyValue(k, p[k] as string) : `${k} is not a string`;
    if (why !== undefined) throw new ManifestError(`${where}: ${why}`);
  }
  const why = typeof p.day === 'string' ? checkDay(p.day) : 'day is not a string';
  if (why !== undefined) throw new ManifestError(`${where}: ${why}`);
}

function checkItem(v: unknown, where: string): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ManifestError(`${where} is not an object`);
  const it = v as Record<string, unknown>;
  for (const k of ['key', 'target', 'params_digest'] as const) if (typeof it[k] !== 'string') throw new ManifestError(`${where}.${k} missing or not a string`);
  if (!isCount(it.depth)) throw new ManifestError(`${where}.depth is not a non-negative integer`);
  for (const k of ['target_sha256', 'source', 'category', 'reason'] as const) if (!isNullableString(it[k])) throw new ManifestError(`${where}.${k} is not a string or null`);
  if (it.parent_run_id !== null && !isRunId(it.parent_run_id)) throw new ManifestError(`${where}.parent_run_id is not a run id or null`);
  if (it.final_run_id !== null && !isRunId(it.final_run_id)) throw new ManifestError(`${where}.final_run_id is not a run id or null`);
  if (it.status !== 'succeeded' && it.status !== 'failed') throw new ManifestError(`${where}.status ${JSON.stringify(it.status)} is not succeeded|failed`);
  if (!Array.isArray(it.attempts)) throw new ManifestError(`${where}.attempts is not a list`);
  const ids = new Set<string>();
  it.attempts.forEach((a: unknown, j) => {
    const at = `${where}.attempts[${j}]`;
    if (typeof a !== 'object' || a === null) throw new ManifestError(`${at} is not an object`);
    const r = a as Record<string, unknown>;
    if (!isRunId(r.run_id)) throw new ManifestError(`${at}.run_id is not a run id`);
    if (!isCount(r.attempt) || r.attempt < 1) throw new ManifestError(`${at}.attempt is not an integer ≥ 1`);
    if (typeof r.outcome !== 'string' || !ATTEMPT_OUTCOMES.includes(r.outcome)) throw new ManifestError(`${at}.outcome ${JSON.stringify(r.outcome)} is not one of ${ATTEMPT_OUTCOMES.join('|')}`);
    checkPartition(r.partition, `${at}.partition`);
    ids.add(r.run_id);
  });
  if (it.final_run_id !== null && !ids.has(it.final_run_id)) throw new ManifestError(`${where}.final_run_id ${it.final_run_id} is not one of its attempts`);
  if (it.status === 'succeeded' && it.final_run_id === null) throw new ManifestError(`${where} succeeded without a final run`);
}

/**
 * Parses and checks a tree manifest's shape (every field the validator and
 * the consumers rely on).
 * @throws ManifestError naming the first missing or mistyped field.
 */
export function parseTreeManifest(bytes: Uint8Array | string, where = 'tree manifest'): TreeManifest {
  const m = parseJsonObject(bytes, where);
  if (m.tree_manifest_version !== TREE_MANIFEST_VERSION) {
    throw new ManifestError(`${where}: tree_manifest_version ${JSON.stringify(m.tree_manifest_version)} is not one this Quarry reads (${TREE_MANIFEST_VERSION})`);
  }
  if (typeof m.contract_version !== 'string') throw new ManifestError(`${where}: field contract_version missing or not a string`);
  if (!isRunId(m.tree_id)) throw new ManifestError(`${where}: tree_id ${JSON.stringify(m.tree_id)} is not a run id`);
  if (typeof m.dataset !== 'string' || checkKeyValue('dataset', m.dataset) !== undefined) throw new ManifestError(`${where}: dataset ${JSON.stringify(m.dataset)} is not a dataset name`);
  if (typeof m.job_id !== 'string') throw new ManifestError(`${where}: field job_id missing or not a string`);
  if (!isInstant(m.started_at)) throw new ManifestError(`${where}: started_at ${JSON.stringify(m.started_at)} is not an ISO 8601 instant`);
  if (!isInstant(m.finalized_at)) throw new ManifestError(`${where}: finalized_at ${JSON.stringify(m.finalized_at)} is not an ISO 8601 instant`);
  const o = m.options as Record<string, unknown> | null | undefined;
  if (typeof o !== 'object' || o === null) throw new ManifestError(`${where}: field options missing or not an object`);
  for (const k of ['depth', 'max_runs', 'parallel', 'allow_failed_children', 'retries'] as const) {
    if (!isCount(o[k])) throw new ManifestError(`${where}: options.${k} is not a non-negative integer`);
  }
  const c = m.counters as Record<string, unknown> | null | undefined;
  if (typeof c !== 'object' || c === null) throw new ManifestError(`${where}: field counters missing or not an object`);
  for (const k of ['admitted', 'succeeded', 'failed', 'retried', 'deduplicated', 'not_executed_cap', 'not_executed_depth', 'requeued'] as const) {
    if (!isCount(c[k])) throw new ManifestError(`${where}: counters.${k} is not a non-negative integer`);
  }
  if (!Array.isArray(m.items)) throw new ManifestError(`${where}: items is not a list`);
  const keys = new Set<string>();
  const runs = new Set<string>();
  m.items.forEach((it: unknown, i) => {
    checkItem(it, `${where}: items[${i}]`);
    const item = it as TreeItem;
    if (keys.has(item.key)) throw new ManifestError(`${where}: items[${i}] repeats key ${JSON.stringify(item.key)}`);
    keys.add(item.key);
    for (const a of item.attempts) {
      if (runs.has(a.run_id)) throw new ManifestError(`${where}: run ${a.run_id} is listed as an attempt twice`);
      runs.add(a.run_id);
    }
  });
  return m as unknown as TreeManifest;
}

/** Deterministic JSON: two-space indent, trailing newline (the bytes whose SHA-256 the ledger pins). */
export function serializeTreeManifest(m: TreeManifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

/** What {@link publishTreeManifest} stored. */
export interface PublishedTreeManifest {
  key: string;
  sha256: string;
  bytes: number;
}

/**
 * Publishes `manifest` at `datasets/<dataset>/trees/<tree_id>.json`,
 * exclusively. A create that finds exactly these bytes already there is a
 * success (a retried create, or a resume that publishes the same tree again).
 * @throws StorageError code `exists` when another tree manifest holds the key
 *   (nothing is replaced); ManifestError when `manifest` does not parse back.
 */
export async function publishTreeManifest(backend: StorageBackend, dataset: string, manifest: TreeManifest): Promise<PublishedTreeManifest> {
  if (manifest.dataset !== dataset) throw new ManifestError(`tree manifest of dataset ${JSON.stringify(manifest.dataset)} cannot be published in dataset ${JSON.stringify(dataset)}`);
  const text = serializeTreeManifest(manifest);
  // What is published must be readable by the validator: refuse a malformed manifest before it becomes immutable.
  parseTreeManifest(text, `tree manifest ${manifest.tree_id}`);
  const info = await putNewOrOwn(backend, treeManifestKey(dataset, manifest.tree_id), text);
  return { key: info.key, sha256: info.sha256, bytes: info.bytes };
}

/**
 * Reads and parses the tree manifest of `treeId`, with the SHA-256 of its bytes.
 * Returns undefined when the tree has no manifest (not finished, or no such tree).
 * @throws ManifestError when it does not parse; StorageError for other storage failures.
 */
export async function readTreeManifest(backend: StorageBackend, dataset: string, treeId: string): Promise<StoredTreeManifest | undefined> {
  const key = treeManifestKey(dataset, treeId);
  let bytes: Buffer;
  try {
    bytes = await backend.get(key);
  } catch (err) {
    if (err instanceof StorageError && err.code === 'not_found') return undefined;
    throw err;
  }
  const manifest = parseTreeManifest(bytes, `${backend.location}/${key}`);
  if (manifest.tree_id !== treeId || manifest.dataset !== dataset) {
    throw new ManifestError(`${backend.location}/${key}: names tree ${manifest.tree_id} of dataset ${manifest.dataset}, not ${treeId} of ${dataset}`);
  }
  return { manifest, sha256: createHash('sha256').update(bytes).digest('hex'), bytes };
}

/** Tree ids with a published manifest in `dataset`, in key order. */
export async function listTreeIds(backend: StorageBackend, dataset: string): Promise<string[]> {
  const prefix = treeManifestKey(dataset, 'x').slice(0, -'x.json'.length);
  const out: string[] = [];
  for await (const o of backend.list(prefix)) {
    const name = o.key.slice(prefix.length);
    if (name.endsWith('.json') && !name.includes('/')) {
      const id = name.slice(0, -'.json'.length);
      if (RUN_ID_RE.test(id)) out.push(id);
    }
  }
  return out;
}

/** The logical partitions (within the tree's dataset) in which an attempt of the tree wrote. */
export function treePartitions(m: TreeManifest): TreePartition[] {
  const seen = new Map<string, TreePartition>();
  for (const it of m.items) for (const a of it.attempts) seen.set(`${a.partition.source}\u0000${a.partition.category}\u0000${a.partition.day}`, a.partition);
  return [...seen.values()];
}
