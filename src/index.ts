/**
 * Quarry as a library: run a script, open storage and the ledger, validate,
 * consume and export, without the CLI (a worker or an orchestrator activity
 * can wrap these). Scripts import `quarry/sdk` instead.
 */
export { runOnce, defaultExecutorPath, type RunConfig } from './runtime/run.js';
export { runValidated, type ValidatedRunConfig } from './runtime/validated-run.js';
export type { RunReport } from './runtime/report.js';
export type { PolicyConfig, FlushMode } from './runtime/policies/index.js';
export { openBackend, type OpenBackendOptions } from './storage/open-backend.js';
export type { StorageBackend, ObjectInfo } from './storage/backend.js';
export { StorageError } from './storage/backend.js';
export { readManifest, listRuns, streamRecords, readArtifact } from './storage/reader.js';
export type { RunManifest, RunOutcome, RunClaim } from './storage/manifest.js';
export type { StoredRecord, EventRecord } from './storage/records.js';
export type { LogicalPartition, RunPartition } from './storage/layout.js';
export { openLedger, openLedgerReader, type Ledger, type LedgerReader } from './ledger/ledger.js';
export { validateRun, validatePending } from './ledger/validator.js';
export { openConsumer, PartitionNotReadableError, type Consumer } from './ledger/consumer.js';
export { exportPartitions, ExportError, type ExportSummary } from './ledger/export.js';
export { CONTRACT_VERSION } from './protocol/envelope.js';
export { runTree, type TreeConfig, type TreeReport } from './scheduler/tree.js';
export type { Frontier, FrontierCounters, TreeOptions, ItemRecord, Lease } from './scheduler/frontier.js';
export { SqliteFrontier } from './scheduler/sqlite-frontier.js';
export { resolveStateDir } from './scheduler/state-dir.js';
