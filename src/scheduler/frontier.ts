/**
 * The frontier port (SPEC §10): a tree's admitted work items, their leases and
 * attempts, the dedup set, the counters and the options the tree was started
 * with. Every implementation (embedded SQLite here, Redis in §12) passes
 * test/scheduler/frontier-conformance.ts with several concurrent clients on
 * one tree and a fake clock.
 *
 * Guarantees every implementation keeps, whatever the number of clients:
 * - `admit` decides each item atomically: a key is admitted once per tree
 *   (resumes included); at most `max_runs` distinct items are ever admitted.
 * - a queued item is leased to one owner at a time; no lease is granted while
 *   `parallel` leases are in flight; a lease not renewed within `lease_ms`
 *   expires and its item returns as attempt + 1.
 * - `complete` is idempotent; `claimFinalization` is true for one caller, once.
 */
import type { RunOutcome } from '../storage/manifest.js';
import type { JsonValue } from './canonical-json.js';

/** What a frontier needs of time: milliseconds since the epoch. Tests pass a fake. */
export interface Clock {
  now(): number;
}

/** The wall clock. */
export const SYSTEM_CLOCK: Clock = { now: () => Date.now() };

/**
 * The options a tree was started with, stored by the frontier so `--resume`
 * takes them back (SPEC §10). `run` holds the run settings every member
 * inherits; secrets are kept as their sources (a `${VAR}` name, a config
 * path and pool name, a URL without its password), never as values.
 */
export interface TreeOptions {
  /** The first root attempt's run_id: the tree's id for ever (§8). */
  readonly tree_id: string;
  /** `--depth`: an item deeper than this is refused (`over_depth`). */
  readonly max_depth: number;
  /** `--max-runs`: distinct items admitted, root included; retries do not count. */
  readonly max_runs: number;
  /** `--parallel`: leases in flight across every client, root included. */
  readonly parallel: number;
  /** `--retries`: failed attempts re-run per item before it is final. */
  readonly retries: number;
  /** A lease not renewed for this long expires; owners renew every `lease_ms / 3`. */
  readonly lease_ms: number;
  /** Inherited run settings, as sources (JSON; no secret values). */
  readonly run: { readonly [key: string]: JsonValue };
}

/** A work item as the tree keeps it (§8 tree manifest: key, target, params digest, depth, parent). */
export interface WorkItem {
  /** Dedup key (`dedupKey()` in target.ts). */
  readonly key: string;
  /** Target path relative to the scripts root, `/`-separated. */
  readonly target: string;
  /** The enqueued params (JSON). */
  readonly params: JsonValue;
  /** SHA-256 of the params' canonical JSON. */
  readonly params_digest: string;
  /** SHA-256 of the target file when admitted; null when the target was not found. */
  readonly target_sha256: string | null;
  /** 0 for the root; parent + 1 for an enqueued item. */
  readonly depth: number;
  /** The run that enqueued it; null for the root. */
  readonly parent_run_id: string | null;
  /** Per-enqueue overrides of the inherited partition fields (not part of the key). */
  readonly source: string | null;
  readonly category: string | null;
}

/** One item offered to {@link Frontier.admit}. */
export interface WorkItemInput extends Omit<WorkItem, 'source' | 'category'> {
  readonly source?: string | null;
  readonly category?: string | null;
  /**
   * Set when the target resolved outside the scripts root or to nothing: the
   * item is admitted already `failed` (`target_not_found`), with no run, and
   * is never leased or retried.
   */
  readonly not_found?: string;
}

/** `admit`'s answer per item, in input order. */
export type AdmitDecision = 'admitted' | 'duplicate' | 'over_depth' | 'over_cap';

/** Where an item is. `leased` means an attempt of it is in flight. */
export type ItemState = 'queued' | 'leased' | 'succeeded' | 'failed';

/**
 * An attempt's outcome: a run's own (`RunOutcome`, given to `complete`), or
 * what the frontier recorded when the attempt's lease was lost: `expired`
 * (not renewed in time) or `abandoned` (handed back by `requeueAbandoned`).
 * `interrupted`, `expired` and `abandoned` are never final and never count
 * against retries; `success` is final; any other run outcome is a failure.
 */
export type AttemptOutcome = RunOutcome | 'expired' | 'abandoned';

/** A logical partition an attempt wrote (dataset, source, category, day). */
export interface AttemptPartition {
  readonly dataset: string;
  readonly source: string;
  readonly category: string;
  readonly day: string;
}

/** One attempt of an item, as the tree manifest lists it (§8). */
export interface AttemptRecord {
  readonly run_id: string;
  readonly attempt: number;
  readonly owner: string;
  readonly leased_at: number;
  /** null while in flight. */
  readonly outcome: AttemptOutcome | null;
  readonly partition: AttemptPartition | null;
  readonly finished_at: number | null;
}

/** An admitted item with every attempt: what resume and the tree manifest read. */
export interface ItemRecord extends WorkItem {
  readonly state: ItemState;
  /** Why a `failed` item failed: `target_not_found` or its final attempt's outcome. */
  readonly reason: string | null;
  /** The attempt that decides the item (§8): its success, or its last failure. */
  readonly final_run_id: string | null;
  /** Failed attempts counted against retries. */
  readonly failures: number;
  readonly attempts: readonly AttemptRecord[];
}

/** Enough of a lease to name it: `complete` takes any object with these. */
export interface LeaseRef {
  readonly key: string;
  readonly run_id: string;
  readonly attempt: number;
}

/** A granted lease: run this item as `run_id`, attempt `attempt`. */
export interface Lease extends LeaseRef {
  readonly tree_id: string;
  readonly owner: string;
  readonly expires_at: number;
  /** The item's previous attempt, when this is a re-run (its lineage parent, §8). */
  readonly previous_run_id: string | null;
  readonly item: WorkItem;
}

/** What `complete` did. */
export interface CompleteResult {
  /** False when this attempt already had a run outcome (an idempotent repeat). */
  readonly recorded: boolean;
  /** The item's state afterwards. */
  readonly state: ItemState;
}

/** The tree's counters (§10 report `tree { … }`). */
export interface FrontierCounters {
  /** Distinct items admitted, root and target-not-found items included. */
  readonly admitted: number;
  readonly succeeded: number;
  /** Items whose final attempt failed, or whose target was not found. */
  readonly failed: number;
  /** Failed attempts re-run under `retries`. */
  readonly retried: number;
  /** Enqueues of a key already admitted. */
  readonly deduplicated: number;
  /** Distinct keys refused by `max_runs` and never admitted. */
  readonly not_executed_cap: number;
  /** Distinct keys refused by `max_depth` and never admitted. */
  readonly not_executed_depth: number;
  /** Leases in flight. */
  readonly running: number;
  /** Items waiting for a lease. */
  readonly queued: number;
  /** Attempts re-run without counting against retries (interrupted, expired, abandoned). */
  readonly requeued: number;
}

/**
 * A client of one tree's frontier. Methods are safe to call from any number
 * of clients at once; each decision is atomic across all of them.
 */
export interface Frontier {
  readonly treeId: string;
  /** Decides each item in order, atomically; refused keys are counted once each. */
  admit(items: readonly WorkItemInput[]): Promise<AdmitDecision[]>;
  /**
   * Leases up to `n` queued items to `owner`, first admitted first, never
   * beyond `parallel` in flight (expired leases are requeued first). Each
   * lease gets a fresh run_id (a ULID; the root's first attempt gets the
   * tree_id) and attempt = previous attempts + 1.
   */
  lease(owner: string, n: number): Promise<Lease[]>;
  /** Extends `owner`'s unexpired leases by `lease_ms`; returns the run_ids it still holds. */
  renew(owner: string): Promise<string[]>;
  /** Returns every expired lease's item to the queue (outcome `expired`); how many. */
  requeueExpired(): Promise<number>;
  /**
   * Records an attempt's run outcome (and the partition it wrote). Idempotent:
   * a repeat is not recorded again. A late completion of an expired attempt
   * is kept; if it succeeded and the item is not final, it becomes final
   * (the first valid completion wins, §12). Throws FrontierError for an
   * unknown run_id.
   */
  complete(lease: LeaseRef, outcome: RunOutcome, partition?: AttemptPartition): Promise<CompleteResult>;
  /** Returns `owner`'s in-flight leases to the queue (outcome `abandoned`); how many. */
  requeueAbandoned(owner: string): Promise<number>;
  counters(): Promise<FrontierCounters>;
  /** The options the tree was started with (with `parallel` as last set). */
  options(): Promise<TreeOptions>;
  /** `--parallel` given again on resume. Throws FrontierError unless a positive integer. */
  setParallel(parallel: number): Promise<void>;
  /** True for exactly one caller, once, when no admitted item is queued or in flight. */
  claimFinalization(): Promise<boolean>;
  /** Leases in flight, for resume to check each against storage. */
  inFlight(): Promise<Lease[]>;
  /** Every admitted item with its attempts, first admitted first. */
  items(): Promise<ItemRecord[]>;
  /** Releases this client's resources; the tree stays. */
  close(): Promise<void>;
}

/** A frontier refused an operation or could not be opened; the message says what to do. */
export class FrontierError extends Error {
  override readonly name = 'FrontierError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Run ids and tree ids: safe as file names and object keys (the run-id rule). */
const ID_RE = /^[A-Za-z0-9._-]{1,128}$/;

/** True when an outcome re-runs the item without counting against retries. */
export function isRequeueOutcome(o: AttemptOutcome): boolean {
  return o === 'interrupted' || o === 'expired' || o === 'abandoned';
}

/**
 * Checks tree options, quoting any bad value (pure). Throws FrontierError on
 * a bad id or bound, and on a string in `run` that carries a secret value (a
 * URL with a password): the frontier stores sources, never secrets (§10).
 */
export function checkTreeOptions(o: TreeOptions): TreeOptions {
  if (!ID_RE.test(o.tree_id)) throw new FrontierError(`tree id ${JSON.stringify(o.tree_id)} must match [A-Za-z0-9._-]{1,128}`);
  const int = (name: string, v: number, min: number): void => {
    if (!Number.isSafeInteger(v) || v < min) throw new FrontierError(`${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  };
  int('max_depth', o.max_depth, 0);
  int('max_runs', o.max_runs, 1);
  int('parallel', o.parallel, 1);
  int('retries', o.retries, 0);
  int('lease_ms', o.lease_ms, 3);
  assertNoSecret(o.run, '$.run');
  return o;
}

function assertNoSecret(v: JsonValue, path: string): void {
  if (typeof v === 'string') {
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return;
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      return;
    }
    if (url.password !== '') {
      throw new FrontierError(`tree option ${path} holds a URL with a password; store its source instead (a \${VAR} name or the URL without credentials)`);
    }
  } else if (Array.isArray(v)) v.forEach((e: JsonValue, i: number) => assertNoSecret(e, `${path}[${i}]`));
  else if (v !== null && typeof v === 'object') for (const [k, e] of Object.entries(v)) assertNoSecret(e as JsonValue, `${path}.${k}`);
}

/** Checks a lease owner name (non-empty, printable) before it is stored. */
export function checkOwner(owner: string): string {
  if (owner.length === 0 || owner.length > 256 || /[\u0000-\u001f]/.test(owner)) {
    throw new FrontierError(`lease owner ${JSON.stringify(owner)} must be 1-256 printable characters`);
  }
  return owner;
}
