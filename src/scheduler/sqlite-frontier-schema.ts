/**
 * The embedded frontier's tables (SPEC §10), one file per tree. A new column
 * or table bumps {@link FRONTIER_SCHEMA_VERSION}: a frontier is short-lived
 * state, so an older file is refused with a line naming both versions rather
 * than migrated.
 *
 * - `tree`: one row: the tree's id, its options (JSON, sources not secrets),
 *   `parallel` as last set, the finalization claim, two counters.
 * - `items`: one row per admitted key (the dedup set): state, current lease,
 *   final attempt, failures counted against retries; `seq` is admission order.
 * - `attempts`: one row per lease ever granted; `outcome` NULL = in flight.
 * - `refused`: keys refused by depth or cap and not admitted since.
 */

/** Version stored in `tree.schema_version`. */
export const FRONTIER_SCHEMA_VERSION = 1;

/** DDL applied once when a tree is created. */
export const FRONTIER_SCHEMA = `
CREATE TABLE tree (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  schema_version INTEGER NOT NULL,
  tree_id TEXT NOT NULL,
  options TEXT NOT NULL,
  parallel INTEGER NOT NULL CHECK (parallel >= 1),
  created_at INTEGER NOT NULL,
  finalization_claimed_at INTEGER,
  deduplicated INTEGER NOT NULL DEFAULT 0,
  retried INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE items (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  target TEXT NOT NULL,
  params TEXT NOT NULL,
  params_digest TEXT NOT NULL,
  target_sha256 TEXT,
  depth INTEGER NOT NULL,
  parent_run_id TEXT,
  source TEXT,
  category TEXT,
  state TEXT NOT NULL CHECK (state IN ('queued', 'leased', 'succeeded', 'failed')),
  reason TEXT,
  current_run_id TEXT,
  final_run_id TEXT,
  failures INTEGER NOT NULL DEFAULT 0,
  admitted_at INTEGER NOT NULL
);
CREATE INDEX items_state ON items (state, seq);
CREATE TABLE attempts (
  run_id TEXT PRIMARY KEY,
  key TEXT NOT NULL REFERENCES items (key),
  attempt INTEGER NOT NULL,
  owner TEXT NOT NULL,
  leased_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  previous_run_id TEXT,
  outcome TEXT,
  partition TEXT,
  finished_at INTEGER,
  UNIQUE (key, attempt)
);
CREATE INDEX attempts_in_flight ON attempts (outcome, expires_at);
CREATE INDEX attempts_owner ON attempts (owner, outcome);
CREATE TABLE refused (
  key TEXT PRIMARY KEY,
  reason TEXT NOT NULL CHECK (reason IN ('over_depth', 'over_cap'))
);
`;
