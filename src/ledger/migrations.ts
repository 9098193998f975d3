/**
 * Versioned ledger schema (SPEC §8), one list of migrations per SQL dialect.
 * A ledger applies, in one transaction and under a lock, every migration whose
 * version is not yet in `quarry_schema_migrations`; migrations are never edited
 * once released, only appended.
 *
 * Invariants the schema itself enforces, so no code path can break them:
 * `run_history` is append-only (update and delete raise), `run_id` is unique,
 * and a partition is `success` exactly when it names a current run.
 *
 * PostgreSQL key columns use the "C" collation: byte order, the same order
 * SQLite gives, whatever the server's locale, and indexes that serve ORDER BY.
 */
import { LedgerError } from './types.js';

/** SQL dialects the ledger speaks. */
export type Dialect = 'sqlite' | 'postgres';

/** One schema step. */
export interface Migration {
  version: number;
  name: string;
  /** Statements run in order, inside the migration transaction. */
  statements: Record<Dialect, readonly string[]>;
}

/** Name of the table that records applied migrations. */
export const MIGRATIONS_TABLE = 'quarry_schema_migrations';

const DAY_CHECK_SQLITE = "day GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'";
const DAY_CHECK_PG = "day ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'";

const V1_SQLITE = [
  `CREATE TABLE partition_state (
    dataset TEXT NOT NULL,
    source TEXT NOT NULL,
    category TEXT NOT NULL,
    day TEXT NOT NULL CHECK (${DAY_CHECK_SQLITE}),
    status TEXT NOT NULL CHECK (status IN ('success', 'failed')),
    current_run_id TEXT,
    attempts INTEGER NOT NULL CHECK (attempts >= 1),
    last_run_id TEXT NOT NULL,
    last_error TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (dataset, source, category, day),
    CHECK ((status = 'success') = (current_run_id IS NOT NULL))
  ) WITHOUT ROWID`,
  'CREATE INDEX partition_state_by_day ON partition_state (dataset, day)',
  'CREATE INDEX partition_state_by_status ON partition_state (status, dataset, day)',
  `CREATE TABLE run_history (
    history_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    dataset TEXT NOT NULL,
    source TEXT NOT NULL,
    category TEXT NOT NULL,
    day TEXT NOT NULL CHECK (${DAY_CHECK_SQLITE}),
    job_id TEXT,
    attempt INTEGER,
    parent_run_id TEXT,
    root_run_id TEXT NOT NULL,
    depth INTEGER NOT NULL CHECK (depth >= 0),
    job TEXT,
    script_path TEXT,
    script_sha256 TEXT,
    manifest_sha256 TEXT,
    outcome TEXT,
    message TEXT,
    skipped INTEGER,
    started_at TEXT,
    finalized_at TEXT,
    validation_status TEXT NOT NULL CHECK (validation_status IN ('valid', 'invalid')),
    validation_reasons TEXT NOT NULL,
    validated_at TEXT NOT NULL
  )`,
  'CREATE INDEX run_history_by_partition ON run_history (dataset, source, category, day, history_id)',
  'CREATE INDEX run_history_by_day ON run_history (dataset, day)',
  'CREATE INDEX run_history_by_root ON run_history (root_run_id)',
  'CREATE INDEX run_history_by_job ON run_history (job_id)',
  `CREATE TRIGGER run_history_no_update BEFORE UPDATE ON run_history
    BEGIN SELECT RAISE(ABORT, 'run_history is append-only'); END`,
  `CREATE TRIGGER run_history_no_delete BEFORE DELETE ON run_history
    BEGIN SELECT RAISE(ABORT, 'run_history is append-only'); END`,
];

const V1_POSTGRES = [
  `CREATE TABLE partition_state (
    dataset text COLLATE "C" NOT NULL,
    source text COLLATE "C" NOT NULL,
    category text COLLATE "C" NOT NULL,
    day text COLLATE "C" NOT NULL CHECK (${DAY_CHECK_PG}),
    status text NOT NULL CHECK (status IN ('success', 'failed')),
    current_run_id text COLLATE "C",
    attempts integer NOT NULL CHECK (attempts >= 1),
    last_run_id text COLLATE "C" NOT NULL,
    last_error text,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (dataset, source, category, day),
    CHECK ((status = 'success') = (current_run_id IS NOT NULL))
  )`,
  'CREATE INDEX partition_state_by_day ON partition_state (dataset, day)',
  'CREATE INDEX partition_state_by_status ON partition_state (status, dataset, day)',
  `CREATE TABLE run_history (
    history_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text COLLATE "C" NOT NULL UNIQUE,
    dataset text COLLATE "C" NOT NULL,
    source text COLLATE "C" NOT NULL,
    category text COLLATE "C" NOT NULL,
    day text COLLATE "C" NOT NULL CHECK (${DAY_CHECK_PG}),
    job_id text COLLATE "C",
    attempt integer,
    parent_run_id text COLLATE "C",
    root_run_id text COLLATE "C" NOT NULL,
    depth integer NOT NULL CHECK (depth >= 0),
    job jsonb,
    script_path text,
    script_sha256 text,
    manifest_sha256 text,
    outcome text,
    message text,
    skipped boolean,
    started_at timestamptz,
    finalized_at timestamptz,
    validation_status text NOT NULL CHECK (validation_status IN ('valid', 'invalid')),
    validation_reasons jsonb NOT NULL,
    validated_at timestamptz NOT NULL
  )`,
  'CREATE INDEX run_history_by_partition ON run_history (dataset, source, category, day, history_id)',
  'CREATE INDEX run_history_by_day ON run_history (dataset, day)',
  'CREATE INDEX run_history_by_root ON run_history (root_run_id)',
  'CREATE INDEX run_history_by_job ON run_history (job_id)',
  `CREATE FUNCTION quarry_run_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'run_history is append-only'; END $$`,
  `CREATE TRIGGER run_history_append_only BEFORE UPDATE OR DELETE ON run_history
    FOR EACH ROW EXECUTE FUNCTION quarry_run_history_append_only()`,
];

/**
 * Version 2 (SPEC §8 "Binding and writers"): each dataset is bound to one
 * storage location per ledger, and every run id a writer is about to use is
 * reserved, so a run id reused in another dataset is refused before it runs.
 * Written only by `bindRun`, before a run claims storage; never by the validator.
 */
const V2_SQLITE = [
  `CREATE TABLE dataset_binding (
    dataset TEXT PRIMARY KEY,
    storage TEXT NOT NULL,
    bound_at TEXT NOT NULL
  ) WITHOUT ROWID`,
  `CREATE TABLE run_reservation (
    run_id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    reserved_at TEXT NOT NULL
  ) WITHOUT ROWID`,
];

const V2_POSTGRES = [
  `CREATE TABLE dataset_binding (
    dataset text COLLATE "C" PRIMARY KEY,
    storage text NOT NULL,
    bound_at timestamptz NOT NULL
  )`,
  `CREATE TABLE run_reservation (
    run_id text COLLATE "C" PRIMARY KEY,
    dataset text COLLATE "C" NOT NULL,
    reserved_at timestamptz NOT NULL
  )`,
];

/**
 * Version 3 (SPEC §8 run trees), additive only: run history rows say whether a
 * run is a fan-out root (`fanout`: never promoted alone); a partition row says
 * whether its current id names a run or a tree (`authority`) and pins the
 * tree manifest's SHA-256; `tree_validation` holds one append-only row per
 * validated tree. Rows written before keep their meaning: `fanout` NULL is
 * false, `authority` defaults to `run`. `failed_items` is JSON kept as text:
 * an item key may hold any string, and jsonb refuses `\u0000`.
 */
const V3_SQLITE = [
  'ALTER TABLE run_history ADD COLUMN fanout INTEGER',
  "ALTER TABLE partition_state ADD COLUMN authority TEXT NOT NULL DEFAULT 'run' CHECK (authority IN ('run', 'tree'))",
  "ALTER TABLE partition_state ADD COLUMN tree_manifest_sha256 TEXT CHECK ((authority = 'tree') = (tree_manifest_sha256 IS NOT NULL))",
  `CREATE TABLE tree_validation (
    tree_id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    job_id TEXT,
    manifest_sha256 TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finalized_at TEXT NOT NULL,
    valid INTEGER NOT NULL CHECK (valid IN (0, 1)),
    failures INTEGER NOT NULL CHECK (failures >= 0),
    allowed INTEGER NOT NULL CHECK (allowed >= 0),
    items INTEGER NOT NULL CHECK (items >= 0),
    reason TEXT,
    failed_items TEXT NOT NULL,
    validated_at TEXT NOT NULL
  ) WITHOUT ROWID`,
  'CREATE INDEX tree_validation_by_dataset ON tree_validation (dataset, finalized_at)',
  `CREATE TRIGGER tree_validation_no_update BEFORE UPDATE ON tree_validation
    BEGIN SELECT RAISE(ABORT, 'tree_validation is append-only'); END`,
  `CREATE TRIGGER tree_validation_no_delete BEFORE DELETE ON tree_validation
    BEGIN SELECT RAISE(ABORT, 'tree_validation is append-only'); END`,
];

const V3_POSTGRES = [
  'ALTER TABLE run_history ADD COLUMN fanout boolean',
  "ALTER TABLE partition_state ADD COLUMN authority text NOT NULL DEFAULT 'run' CHECK (authority IN ('run', 'tree'))",
  'ALTER TABLE partition_state ADD COLUMN tree_manifest_sha256 text',
  "ALTER TABLE partition_state ADD CONSTRAINT partition_state_tree_pinned CHECK ((authority = 'tree') = (tree_manifest_sha256 IS NOT NULL))",
  `CREATE TABLE tree_validation (
    tree_id text COLLATE "C" PRIMARY KEY,
    dataset text COLLATE "C" NOT NULL,
    job_id text COLLATE "C",
    manifest_sha256 text NOT NULL,
    started_at timestamptz NOT NULL,
    finalized_at timestamptz NOT NULL,
    valid boolean NOT NULL,
    failures integer NOT NULL CHECK (failures >= 0),
    allowed integer NOT NULL CHECK (allowed >= 0),
    items integer NOT NULL CHECK (items >= 0),
    reason text,
    failed_items text NOT NULL,
    validated_at timestamptz NOT NULL
  )`,
  'CREATE INDEX tree_validation_by_dataset ON tree_validation (dataset, finalized_at)',
  `CREATE TRIGGER tree_validation_append_only BEFORE UPDATE OR DELETE ON tree_validation
    FOR EACH ROW EXECUTE FUNCTION quarry_run_history_append_only()`,
];

/**
 * Version 4 (SPEC §8 "Notifications", §11 outbox), additive only: one row per
 * standalone run or tree whose manifest names an adapter, inserted by the
 * validator in the transaction that records the validation. Only the delivery
 * columns (`status` onwards) ever change, written by the adapter that sends
 * the row; triggers refuse any other update and every delete. `subject_id`
 * is unique: a run or tree is notified once, whatever re-validations happen.
 */
const OUTBOX_FIXED = 'notification_id, dataset, subject, subject_id, job_id, adapter_kind, adapter_target, payload, created_at';

const V4_SQLITE = [
  `CREATE TABLE notification_outbox (
    notification_id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    subject TEXT NOT NULL CHECK (subject IN ('run', 'tree')),
    subject_id TEXT NOT NULL UNIQUE,
    job_id TEXT,
    adapter_kind TEXT NOT NULL CHECK (adapter_kind IN ('webhook', 'redis')),
    adapter_target TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'superseded')),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_attempt_at TEXT,
    last_error TEXT,
    delivered_at TEXT,
    superseded_by TEXT,
    lease_owner TEXT,
    lease_until TEXT
  ) WITHOUT ROWID`,
  'CREATE INDEX notification_outbox_by_status ON notification_outbox (status, dataset, created_at)',
  `CREATE TRIGGER notification_outbox_fixed BEFORE UPDATE OF ${OUTBOX_FIXED} ON notification_outbox
    BEGIN SELECT RAISE(ABORT, 'notification_outbox: only delivery columns change'); END`,
  `CREATE TRIGGER notification_outbox_no_delete BEFORE DELETE ON notification_outbox
    BEGIN SELECT RAISE(ABORT, 'notification_outbox rows are never deleted'); END`,
];

const V4_POSTGRES = [
  `CREATE TABLE notification_outbox (
    notification_id text COLLATE "C" PRIMARY KEY,
    dataset text COLLATE "C" NOT NULL,
    subject text NOT NULL CHECK (subject IN ('run', 'tree')),
    subject_id text COLLATE "C" NOT NULL UNIQUE,
    job_id text COLLATE "C",
    adapter_kind text NOT NULL CHECK (adapter_kind IN ('webhook', 'redis')),
    adapter_target text NOT NULL,
    payload text NOT NULL,
    created_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'superseded')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_attempt_at timestamptz,
    last_error text,
    delivered_at timestamptz,
    superseded_by text COLLATE "C",
    lease_owner text,
    lease_until timestamptz
  )`,
  'CREATE INDEX notification_outbox_by_status ON notification_outbox (status, dataset, created_at)',
  `CREATE FUNCTION quarry_outbox_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'DELETE' THEN RAISE EXCEPTION 'notification_outbox rows are never deleted'; END IF;
      IF (NEW.notification_id, NEW.dataset, NEW.subject, NEW.subject_id, NEW.job_id, NEW.adapter_kind, NEW.adapter_target, NEW.payload, NEW.created_at)
        IS DISTINCT FROM (OLD.notification_id, OLD.dataset, OLD.subject, OLD.subject_id, OLD.job_id, OLD.adapter_kind, OLD.adapter_target, OLD.payload, OLD.created_at)
      THEN RAISE EXCEPTION 'notification_outbox: only delivery columns change'; END IF;
      RETURN NEW;
    END $$`,
  `CREATE TRIGGER notification_outbox_guard BEFORE UPDATE OR DELETE ON notification_outbox
    FOR EACH ROW EXECUTE FUNCTION quarry_outbox_guard()`,
];

/** Every migration, in version order. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'partition_state and run_history', statements: { sqlite: V1_SQLITE, postgres: V1_POSTGRES } },
  { version: 2, name: 'dataset_binding and run_reservation', statements: { sqlite: V2_SQLITE, postgres: V2_POSTGRES } },
  { version: 3, name: 'run trees: fanout, partition authority, tree_validation', statements: { sqlite: V3_SQLITE, postgres: V3_POSTGRES } },
  { version: 4, name: 'notification outbox', statements: { sqlite: V4_SQLITE, postgres: V4_POSTGRES } },
];

/** The schema version this code reads and writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

/**
 * A reader never migrates (SPEC §8): it reads only a ledger whose schema is
 * exactly this Quarry's.
 * @throws LedgerError `schema` naming both versions and what to run.
 */
export function checkReaderSchema(newest: number, location: string): void {
  if (newest === 0) {
    throw new LedgerError('schema', `${location} holds no Quarry ledger: nothing was validated there yet (quarry run and quarry validate write it); give --ledger if it is elsewhere`);
  }
  if (newest > SCHEMA_VERSION) {
    throw new LedgerError('schema', `ledger ${location} has schema version ${newest}, newer than this Quarry's (${SCHEMA_VERSION}): upgrade Quarry`);
  }
  if (newest < SCHEMA_VERSION) {
    throw new LedgerError('schema', `ledger ${location} has schema version ${newest}, older than this Quarry's (${SCHEMA_VERSION}); read commands never migrate: run quarry validate --pending (a writer) once to upgrade it`);
  }
}
