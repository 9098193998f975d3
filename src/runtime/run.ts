/**
 * One run, start to finish (SPEC §5, §7): claim the run_id, supervise the
 * executor through a policy into the run partition, write the metrics record
 * and the manifest, and return the exit report. Callable as a library (a
 * worker or a Temporal activity can wrap it); no argv, env or exit here.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { ProxyEndpoint, RunRequest } from '../protocol/frames.js';
import { CONTRACT_VERSION, type AnyEventEnvelope } from '../protocol/envelope.js';
import { redactUrlsIn } from '../protocol/redact.js';
import type { StorageBackend } from '../storage/backend.js';
import { runPrefix, type RunPartition } from '../storage/layout.js';
import { MANIFEST_VERSION, type ManifestObject, type ManifestProxy, type OrphanedArtifact, type RunManifest, type RunOutcome } from '../storage/manifest.js';
import { metricsRecordLine } from '../storage/records.js';
import { RunWriter } from '../storage/run-writer.js';
import { reachKillPoint } from './kill-point.js';
import { buildMetrics } from './metrics.js';
import { classify, type Classified } from './outcome.js';
import { createPolicy, type PolicyConfig } from './policies/index.js';
import type { RunReport } from './report.js';
import { recordSettings } from './settings.js';
import { SinkedPolicy, type EventSinkFactory } from './event-sinks.js';
import type { AdapterTarget } from '../ledger/outbox.js';
import { defaultExecutorPath, type StartedExecutor } from './executor-process.js';
import type { SharedBrowser } from './shared-browser.js';
import type { SlotPool } from './slot-pool.js';
import { supervise } from './supervisor.js';

/** Everything one run needs, validated by the caller (the CLI compiles flags into this). */
export interface RunConfig {
  /** Absolute path of the user script. */
  scriptPath: string;
  runId: string;
  attempt: number;
  jobId?: string;
  parentRunId?: string;
  /** Root of the run tree; the run itself when absent. */
  rootRunId?: string;
  depth?: number;
  /**
   * The run is a fan-out tree's root (`--depth > 0`): its claim and manifest
   * carry `fanout: true`, so the validator never promotes it alone (SPEC §8).
   */
  fanout?: boolean;
  job: unknown;
  partition: Omit<RunPartition, 'run_id'>;
  policy: PolicyConfig;
  backend: StorageBackend;
  /** Executor entry (JavaScript); defaults to the bundled one. */
  executorPath?: string;
  browserWsEndpoint?: string;
  chromiumPath?: string;
  proxy?: ProxyEndpoint;
  /**
   * How `proxy` was chosen from a pool (no password), recorded in the
   * manifest and report with the run's `rotate_proxy` events (SPEC §11).
   */
  proxyRecord?: Omit<ManifestProxy, 'rotations'>;
  signal?: AbortSignal;
  onStderr?: (chunk: Buffer) => void;
  onEvent?: (event: AnyEventEnvelope) => void;
  maxArtifactBytes?: number;
  /** `--run-timeout`: past it the executor is stopped and the run ends `script_error`, error_type `timeout`. */
  timeoutMs?: number;
  /** `--retries` of the invocation: `runOnce` runs once; the number is only recorded in `settings` for `quarry retry`. */
  retries?: number;
  /** The run-completed adapter (SPEC §11), recorded in `settings` so the validator writes the run's notification. */
  adapter?: AdapterTarget;
  /** Live event sinks (SPEC §11): each makes the run's sink; `eventSinkTargets` is what settings record (no secrets). */
  eventSinks?: readonly EventSinkFactory[];
  eventSinkTargets?: ReadonlyArray<{ kind: string; target: string }>;
  /**
   * The bundled executor, started by the caller before the claim (executor-process.ts) with
   * this script; used instead of spawning one. The caller disposes it if the run never starts.
   */
  started?: StartedExecutor;
  /**
   * Run in a slot of this pool (SPEC §10 run slots) instead of a process of its own; the pool's
   * executor entry is used. Ignored with `started`.
   */
  pool?: SlotPool;
  /**
   * The invocation's browser (SPEC §10 browser reuse), offered to the run when it runs in a slot of
   * `pool`; otherwise the executor launches its own (or connects to `browserWsEndpoint`).
   */
  sharedBrowser?: SharedBrowser;
  /**
   * Called with the records segments each flush lists (buffered, streaming),
   * once they are published and listed: `quarry run` reads them back and
   * checks them while the run goes on (`PublishedCheck`, SPEC §8).
   */
  onSegmentsListed?: (run: RunPartition, objects: readonly ManifestObject[]) => void;
  /** Clock, for tests. */
  now?: () => Date;
  env?: NodeJS.ProcessEnv;
}

export { defaultExecutorPath } from './executor-process.js';

/**
 * Runs one script once and finalizes its partition, whatever the outcome.
 * @throws RunIdExistsError before anything runs when the run_id is taken; StorageError when the claim cannot be written.
 */
export async function runOnce(cfg: RunConfig): Promise<RunReport> {
  const now = cfg.now ?? (() => new Date());
  const started = now();
  const partition: RunPartition = { ...cfg.partition, run_id: cfg.runId };
  const rootRunId = cfg.rootRunId ?? cfg.runId;
  const depth = cfg.depth ?? 0;
  const scriptSha = sha256File(cfg.scriptPath);
  const settings = recordSettings(cfg);

  const writer = await RunWriter.claim(cfg.backend, {
    ...partition,
    claim_version: 1,
    started_at: started.toISOString(),
    ...(cfg.jobId !== undefined ? { job_id: cfg.jobId } : {}),
    attempt: cfg.attempt,
    ...(cfg.parentRunId !== undefined ? { parent_run_id: cfg.parentRunId } : {}),
    root_run_id: rootRunId,
    depth,
    ...(cfg.fanout === true ? { fanout: true as const } : {}),
    script_path: cfg.scriptPath,
    settings,
  });
  reachKillPoint('after_claim');
  if (cfg.onSegmentsListed) {
    const listed = cfg.onSegmentsListed;
    writer.onListed = (objects) => listed(partition, objects);
  }
  const basePolicy = createPolicy(cfg.policy, writer, (m) => cfg.onStderr?.(Buffer.from(`quarry: ${m}\n`)));
  const sinked = cfg.eventSinks && cfg.eventSinks.length > 0 ? new SinkedPolicy(basePolicy, cfg.eventSinks.map((f) => f(cfg.runId, cfg.partition)), (e) => writer.payloadJsonOf(e)) : undefined;
  const policy = sinked ?? basePolicy;

  const request: RunRequest = {
    run_id: cfg.runId,
    attempt: cfg.attempt,
    job: cfg.job ?? {},
    storage: { ...partition },
    script: cfg.scriptPath,
  };
  if (cfg.jobId !== undefined) request.job_id = cfg.jobId;
  if (cfg.parentRunId !== undefined) request.parent_run_id = cfg.parentRunId;
  if (cfg.browserWsEndpoint !== undefined) request.browser_ws_endpoint = cfg.browserWsEndpoint;
  if (cfg.chromiumPath !== undefined) request.chromium_path = cfg.chromiumPath;
  if (cfg.proxy !== undefined) request.proxy = cfg.proxy;

  // Every rotate_proxy the runtime receives, even one the policy drops, is recorded with the proxy.
  const rotations: ManifestProxy['rotations'] = [];
  const onEvent = (e: AnyEventEnvelope): void => {
    if (cfg.proxyRecord && e.type === 'rotate_proxy') {
      const reason = (e.payload as { reason?: unknown }).reason;
      rotations.push({ seq: e.seq, ...(typeof reason === 'string' ? { reason: redactUrlsIn(reason) } : {}) });
    }
    cfg.onEvent?.(e);
  };
  const entry = cfg.executorPath ?? defaultExecutorPath();
  // A missing entry is reported by the supervisor (node would exit 1, which reads as a script error).
  const slot = cfg.pool && !cfg.started && existsSync(entry) ? await cfg.pool.take(cfg.scriptPath, cfg.signal) : undefined;
  let slotGiven = false;
  const giveSlot = (reusable: boolean): void => {
    if (slotGiven || !slot) return;
    slotGiven = true;
    cfg.pool!.give(slot, reusable);
  };
  const sup = await supervise({
    command: process.execPath,
    args: [entry, cfg.scriptPath],
    ...(cfg.env ? { env: cfg.env } : {}),
    request,
    policy,
    writer,
    ...(cfg.signal ? { signal: cfg.signal } : {}),
    ...(cfg.onStderr ? { onStderr: cfg.onStderr } : {}),
    ...(cfg.onEvent || cfg.proxyRecord ? { onEvent } : {}),
    ...(cfg.maxArtifactBytes !== undefined ? { maxArtifactBytes: cfg.maxArtifactBytes } : {}),
    ...(cfg.timeoutMs !== undefined ? { timeoutMs: cfg.timeoutMs } : {}),
    ...(cfg.started && !cfg.executorPath ? { started: cfg.started } : {}),
    // The slot goes back as soon as the run's result is in, before its segments are synced (ipc.md "Run slots").
    ...(slot ? { slot, onSlotDone: giveSlot } : {}),
    ...(slot && cfg.sharedBrowser ? { browser: cfg.sharedBrowser } : {}),
  });
  giveSlot(sup.slotReusable === true);

  const counters = policy.counters();
  // Messages reach the manifest, the report and the ledger's last_error: no URL in them keeps its secrets (SPEC §8).
  let classified: Classified = classify(sup.observation);
  classified = { ...classified, message: redactUrlsIn(classified.message) };
  const artifactStates = writer.artifactStates();
  const orphans: OrphanedArtifact[] = artifactStates
    .filter((a) => !sup.committedArtifacts.has(a.artifact_id))
    .map((a) => ({
      artifact_id: a.artifact_id,
      ...(a.path ? { path: a.path } : {}),
      bytes: a.bytes,
      chunks: a.chunks,
      reason: a.complete ? 'bytes arrived but no artifact event committed them' : 'the last chunk never arrived; bytes were not published',
    }));
  const artifacts = {
    total: artifactStates.length,
    committed: sup.committedArtifacts.size,
    orphaned: orphans.length,
    chunks: artifactStates.reduce((n, a) => n + a.chunks, 0),
    bytes: artifactStates.reduce((n, a) => n + a.bytes, 0),
  };

  const skipped = sup.terminalSummary?.skipped === true;
  if (skipped && classified.outcome === 'success') {
    // The ledger and `state inspect` show why a partition stays pending (SPEC §8 skip rule).
    const reason = sup.terminalSummary?.reason;
    classified = { ...classified, message: typeof reason === 'string' && reason !== '' ? `skipped: ${reason}` : 'skipped' };
  }
  // One set of figures for the stored metrics record and the manifest (writes
  // counted up to, not including, the metrics record itself).
  const metricsFor = (outcome: RunOutcome) =>
    buildMetrics({
      outcome,
      counters,
      launched: sup.launched && !sup.observation.launchError,
      ipcDecodeErrors: sup.ipcDecodeErrors,
      writes: { ...writer.writes },
      executor: cfg.executorPath ? 'custom' : 'node',
      storageBackend: cfg.backend.kind,
    });
  let runMetrics = metricsFor(classified.outcome);
  try {
    await writer.putMetrics(metricsRecordLine(partition, runMetrics));
  } catch (err) {
    if (classified.outcome === 'success') {
      classified = { outcome: 'policy_failure', message: `writing the metrics record: ${(err as Error).message}`, exitCode: 3 };
      runMetrics = metricsFor(classified.outcome);
    }
  }
  const finalizedAt = now();
  const manifest: RunManifest = {
    manifest_version: MANIFEST_VERSION,
    contract_version: sup.contractVersion ?? CONTRACT_VERSION,
    ...partition,
    ...(cfg.jobId !== undefined ? { job_id: cfg.jobId } : {}),
    attempt: cfg.attempt,
    ...(cfg.parentRunId !== undefined ? { parent_run_id: cfg.parentRunId } : {}),
    root_run_id: rootRunId,
    depth,
    ...(cfg.fanout === true ? { fanout: true as const } : {}),
    script: { path: cfg.scriptPath, sha256: scriptSha },
    job: cfg.job ?? {},
    started_at: started.toISOString(),
    finalized_at: finalizedAt.toISOString(),
    outcome: classified.outcome,
    message: classified.message,
    exit_code: classified.exitCode,
    skipped,
    policy: counters,
    objects: [...writer.objects],
    seq: { first: sup.firstSeq, last: sup.lastSeq },
    event_count: sup.eventCount,
    artifacts,
    orphaned_artifacts: orphans,
    ...(writer.superseded.length > 0 ? { superseded_objects: [...writer.superseded] } : {}),
    ...(sup.terminalSummary ? { terminal_summary: sup.terminalSummary } : {}),
    metrics: runMetrics,
    storage_backend: cfg.backend.kind,
    settings,
    ...(cfg.proxyRecord ? { proxy: { ...cfg.proxyRecord, rotations } } : {}),
  };
  let finalized = true;
  try {
    await writer.finalize(manifest);
    reachKillPoint('after_manifest_before_ledger');
  } catch (err) {
    finalized = false;
    classified = { outcome: 'policy_failure', message: `writing the manifest: ${(err as Error).message}`, exitCode: 3 };
  }

  const report: RunReport = {
    run_id: cfg.runId,
    ...(cfg.jobId !== undefined ? { job_id: cfg.jobId } : {}),
    attempt: cfg.attempt,
    ...(cfg.parentRunId !== undefined ? { parent_run_id: cfg.parentRunId } : {}),
    outcome: classified.outcome,
    message: classified.message,
    ...(classified.errorType !== undefined ? { error_type: classified.errorType } : {}),
    exit_code: classified.exitCode,
    duration_ms: finalizedAt.getTime() - started.getTime(),
    event_count: sup.eventCount,
    policy: {
      name: counters.name,
      events_received: counters.events_received,
      events_persisted: counters.events_persisted,
      events_dropped: counters.events_dropped,
      dropped_by_type: counters.dropped_by_type,
      ...(counters.flush_triggers ? { flush_triggers: counters.flush_triggers } : {}),
    },
    artifacts,
    metrics: manifest.metrics,
    ...(sup.terminalSummary ? { terminal_summary: sup.terminalSummary } : {}),
    ...(sup.proxyUsed ? { proxy_used: sup.proxyUsed } : {}),
    ...(cfg.proxyRecord ? { proxy: { ...cfg.proxyRecord, rotations } } : {}),
    ...(sinked ? { event_sinks: sinked.sinkCounters() } : {}),
    ...(sup.stderrTail ? { stderr: redactUrlsIn(sup.stderrTail) } : {}),
    skipped,
    items: countOf(manifest, 'item'),
    storage: {
      backend: cfg.backend.kind,
      location: cfg.backend.location,
      partition: runPrefix(partition),
      finalized,
    },
  };
  return report;
}

function countOf(m: RunManifest, eventType: string): number {
  return m.objects.filter((o) => o.kind === 'records' && o.event_type === eventType).reduce((n, o) => n + (o.records ?? 0), 0);
}

/**
 * The script's SHA-256. Read synchronously: a script is small, and a read
 * stream cost four thread-pool round trips per run, which on a loaded machine
 * each wait for the scheduler (a tree pays it for every page).
 */
function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}
