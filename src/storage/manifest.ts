/**
 * The run manifest (`_manifest.json`, SPEC §7): the commit record of a run
 * partition, written last. A run partition without one is not finalized and no
 * consumer reads it. Also the run claim, written first.
 */
import type { RunPartition } from './layout.js';
import { runSettingsProblem, type RunSettings } from './run-settings.js';

export const MANIFEST_VERSION = 1;

/** Outcome of a run (SPEC §5). `interrupted` is never promotable. */
export type RunOutcome = 'success' | 'script_error' | 'executor_crash' | 'policy_failure' | 'version_mismatch' | 'interrupted';

export const RUN_OUTCOMES: readonly RunOutcome[] = ['success', 'script_error', 'executor_crash', 'policy_failure', 'version_mismatch', 'interrupted'];

export type PolicyName = 'strict' | 'buffered' | 'streaming';

export type FlushTrigger = 'count' | 'interval' | 'termination' | 'capacity' | 'buffer_full';

/** A policy's counters (SPEC §6). */
export interface PolicyCounters {
  name: PolicyName;
  events_received: number;
  events_persisted: number;
  events_dropped: number;
  dropped_by_type: Record<string, number>;
  flush_triggers?: Partial<Record<FlushTrigger, number>>;
  /** Options the policy ran with (buffer sizes, flush mode …), for the record. */
  options?: Record<string, unknown>;
}

export type ManifestObjectKind = 'records' | 'artifact' | 'file' | 'file_meta' | 'metrics';

/** One published data object. `path` is relative to the run folder. */
export interface ManifestObject {
  path: string;
  kind: ManifestObjectKind;
  /** For `records` and `metrics`: the folder's event type. */
  event_type?: string;
  bytes: number;
  /** For `records` and `metrics`: JSON lines in the object. */
  records?: number;
  sha256: string;
  /** For `records`: seq of the first and last record (records of one type are not contiguous across types). */
  first_seq?: number;
  last_seq?: number;
  /** For `artifact`: the artifact id. */
  artifact_id?: string;
}

export interface OrphanedArtifact {
  artifact_id: string;
  /** Stored bytes path, relative to the run folder, when any bytes were published. */
  path?: string;
  bytes: number;
  chunks: number;
  reason: string;
}

/** Counters of §9, as stored in the `metrics` record and the manifest. */
export interface RunMetrics {
  runs_started_total: number;
  runs_completed_total: number;
  runs_failed_total: number;
  runs_crashed_total: number;
  events_received_total: number;
  events_persisted_total: number;
  events_dropped_total: number;
  events_dropped_by_type: Record<string, number>;
  flush_triggers: Partial<Record<FlushTrigger, number>>;
  executor_launch_success_total: number;
  executor_launch_failure_total: number;
  executor_crash_total: number;
  ipc_decode_errors_total: number;
  lode_write_success_total: number;
  lode_write_failure_total: number;
  lode_write_retry_total: number;
  dimensions: { policy: PolicyName; executor: string; storage_backend: string };
}

/**
 * The proxy a run went through (SPEC §11): the endpoint without its password,
 * how it was chosen, and the run's `rotate_proxy` events. Absent when the run
 * had no proxy pool (and in manifests written before pools existed).
 */
export interface ManifestProxy {
  pool: string;
  strategy: string;
  endpoint: { protocol: string; host: string; port: number; username?: string };
  /** Position of the endpoint in the pool's list. */
  endpoint_index: number;
  /** Sticky strategy: the key's scope, where the key came from (never the key), and whether the key was already on this endpoint. */
  sticky?: { scope: string; key_source: string; hit: boolean };
  /** The run's `rotate_proxy` events (seq and reason), each of which moved the pool's next selection off this endpoint. */
  rotations: Array<{ seq: number; reason?: string }>;
}

export interface RunManifest extends RunPartition {
  manifest_version: number;
  /** Contract version of the envelopes in this run. */
  contract_version: string;
  job_id?: string;
  attempt: number;
  parent_run_id?: string;
  /** The run that started the tree; the run itself when it has no parent in a tree. */
  root_run_id: string;
  depth: number;
  /**
   * The run fans out (`--depth > 0`, SPEC §8 run trees): it is a tree's root,
   * recorded by the validator but never promoted alone — its tree is. Absent
   * on every other run (older manifests included).
   */
  fanout?: true;
  script: { path: string; sha256: string };
  job: unknown;
  started_at: string;
  finalized_at: string;
  outcome: RunOutcome;
  message: string;
  exit_code: number;
  /** The run was skipped by `prepare` (never promoted). */
  skipped: boolean;
  policy: PolicyCounters;
  /** Every published data object: records, artifacts, sidecar files, metrics. */
  objects: ManifestObject[];
  /** seq of the first and last event received (null when none). */
  seq: { first: number | null; last: number | null };
  event_count: number;
  artifacts: { total: number; committed: number; orphaned: number; chunks: number; bytes: number };
  orphaned_artifacts: OrphanedArtifact[];
  /**
   * Objects a failed flush attempt published before its retry rewrote them
   * (flush mode `at_least_once`): not part of the run's data, listed for audit.
   */
  superseded_objects?: ManifestObject[];
  /** Terminal event's payload summary, when the script gave one. */
  terminal_summary?: Record<string, unknown>;
  metrics: RunMetrics;
  storage_backend: string;
  /** What the run ran with, for `quarry retry` (SPEC §8); absent in manifests written before it was recorded. */
  settings?: RunSettings;
  /** The run's proxy from a pool (SPEC §11); absent when it had none. */
  proxy?: ManifestProxy;
}

/** Created exclusively when a run starts (`datasets/<d>/runs/<run_id>.json`): reserves the run_id. */
export interface RunClaim extends RunPartition {
  claim_version: number;
  started_at: string;
  job_id?: string;
  attempt: number;
  parent_run_id?: string;
  root_run_id: string;
  depth: number;
  /** As {@link RunManifest.fanout}: the run is a fan-out root, promoted only with its tree. */
  fanout?: true;
  script_path: string;
  /** Random, per claiming writer: makes the claim's bytes its own (a create that finds its own bytes is a success). */
  claim_token?: string;
  /** As in the manifest: what a run that never finalized ran with, for `quarry retry`; absent in older claims. */
  settings?: RunSettings;
}

/** Raised for a manifest that cannot be parsed or lacks a required field. */
export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

/** A value for an error message: JSON, cut short; a value nested too deep for JSON.stringify (a RangeError) still gets a message. */
function quote(v: unknown): string {
  try {
    return String(JSON.stringify(v)).slice(0, 200);
  } catch {
    return '(a value too deeply nested to show)';
  }
}

const REQUIRED: ReadonlyArray<[keyof RunManifest, string]> = [
  ['manifest_version', 'number'], ['contract_version', 'string'], ['run_id', 'string'], ['dataset', 'string'],
  ['source', 'string'], ['category', 'string'], ['day', 'string'], ['attempt', 'number'], ['root_run_id', 'string'],
  ['depth', 'number'], ['script', 'object'], ['started_at', 'string'], ['finalized_at', 'string'], ['outcome', 'string'],
  ['message', 'string'], ['exit_code', 'number'], ['skipped', 'boolean'], ['policy', 'object'], ['objects', 'object'],
  ['seq', 'object'], ['event_count', 'number'], ['artifacts', 'object'], ['orphaned_artifacts', 'object'], ['metrics', 'object'],
];

/**
 * Parses and checks a manifest's shape.
 * @throws ManifestError naming the first missing or mistyped field.
 */
export function parseManifest(bytes: Uint8Array | string, where = '_manifest.json'): RunManifest {
  const m = parseJsonObject(bytes, where);
  for (const [field, type] of REQUIRED) {
    if (typeof m[field] !== type || m[field] === null) throw new ManifestError(`${where}: field ${String(field)} missing or not a ${type}`);
  }
  if (!Array.isArray(m.objects)) throw new ManifestError(`${where}: objects is not a list`);
  if (!(RUN_OUTCOMES as readonly string[]).includes(m.outcome as string)) throw new ManifestError(`${where}: unknown outcome ${JSON.stringify(m.outcome)}`);
  checkSettings(m, where);
  if (m.proxy !== undefined) {
    const px = m.proxy as Record<string, unknown> | null;
    if (typeof px !== 'object' || px === null || typeof px.pool !== 'string' || typeof px.endpoint !== 'object' || px.endpoint === null || !Array.isArray(px.rotations)) {
      throw new ManifestError(`${where}: proxy must be { pool, strategy, endpoint, endpoint_index, rotations } when present, got ${quote(m.proxy)}`);
    }
  }
  if (m.fanout !== undefined && m.fanout !== true) throw new ManifestError(`${where}: fanout must be true when present, got ${quote(m.fanout)}`);
  return m as unknown as RunManifest;
}

/**
 * Checks an optional `settings` field (SPEC §8): a manifest or claim written
 * before settings were recorded has none and stays valid.
 * @throws ManifestError naming what is wrong.
 */
export function checkSettings(doc: Record<string, unknown>, where: string): void {
  if (doc.settings === undefined) return;
  const bad = runSettingsProblem(doc.settings);
  if (bad) throw new ManifestError(`${where}: settings: ${bad}`);
}

/**
 * Parses stored JSON that must be an object (a manifest, a claim).
 * @throws ManifestError saying where and why it is not.
 */
export function parseJsonObject(bytes: Uint8Array | string, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new ManifestError(`${where}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ManifestError(`${where}: not a JSON object`);
  return v as Record<string, unknown>;
}

/** Deterministic JSON for manifests and claims: two-space indent, trailing newline. */
export function serializeManifest(m: RunManifest | RunClaim): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}
