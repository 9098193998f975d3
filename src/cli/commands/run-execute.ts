/**
 * The I/O half of `quarry run`: opens storage and the ledger, runs (and
 * retries), validates each finalized run into the ledger, prints, reports.
 * Loaded only when a run really starts, so `--help` and `--dry-run` stay fast.
 */
import { ulid } from 'ulid';
import { storageIdentity } from '../../ledger/binding.js';
import { isPostgresUrl, type Ledger } from '../../ledger/ledger.js';
import { redactUrl } from '../../protocol/redact.js';
import { jobRefusedByPostgres } from '../../ledger/postgres-json.js';
import { LedgerError } from '../../ledger/types.js';
import { decideAuthority, EXIT_NOT_AUTHORITATIVE, type ValidationResult } from '../../runtime/authority.js';
import { parseRunPrefix, type RunPartition } from '../../storage/layout.js';
import type { ManifestObject } from '../../storage/manifest.js';
import { openBackend } from '../../storage/open-backend.js';
import { RunIdExistsError } from '../../storage/run-writer.js';
import type { StorageBackend } from '../../storage/backend.js';
import { StorageError } from '../../storage/backend.js';
import type { StartedExecutor } from '../../runtime/executor-process.js';
import type { SlotPool } from '../../runtime/slot-pool.js';
import type { SharedBrowser } from '../../runtime/shared-browser.js';
import { runOnce } from '../../runtime/run.js';
import { segmentCheckFor, type SegmentCheck } from '../../ledger/published-check.js';
import { sweepRunLeftovers } from '../../runtime/leftovers.js';
import { summaryLine, type RunReport } from '../../runtime/report.js';
import type { AnyEventEnvelope } from '../../protocol/envelope.js';
import { CommandFailure, UsageError } from '../flags.js';
import { recordedTarget } from '../../notify/adapter-config.js';
import { RedisStreamSink, sinkTarget } from '../../notify/redis-stream-sink.js';
import type { EventSinkFactory } from '../../runtime/event-sinks.js';
import { sendOwnNotifications, type NotificationReport } from './run-notify.js';
import { beforeStart, InterruptedBeforeStart } from '../interruptible.js';
import { RunProgress } from '../progress.js';
import type { CliIO } from '../io.js';
import { ledgerTargetFor } from './ledger-target.js';
import type { ProxyRouter } from '../../proxy/router.js';
import { writeReport, type RunPlan } from './run.js';
import { openProxyRouter, standaloneJobKey } from './proxy-setup.js';
import { stateDirFor } from './state-dir-flag.js';

/** Wait before retry n (1-based): 1 s, 2 s, 4 s … capped at 30 s. */
export function retryBackoffMs(n: number): number {
  return Math.min(30_000, 1000 * 2 ** (n - 1));
}

/**
 * The ledger a run uses (see {@link ledgerTargetFor}).
 * @throws UsageError for s3 without `--ledger`, and for a job a PostgreSQL ledger cannot store
 * (refused here, before anything is claimed, rather than when the finished run is validated).
 */
export function ledgerTarget(plan: Pick<RunPlan, 'ledger' | 'storage' | 'job'>): string {
  const target = ledgerTargetFor(plan.storage.backend, plan.storage.path, plan.ledger);
  const refused = isPostgresUrl(target) ? jobRefusedByPostgres(plan.job) : undefined;
  if (refused) throw new UsageError(`--job: ${refused}; remove it from the job, or use a SQLite ledger`);
  return target;
}

export async function openStorage(plan: Pick<RunPlan, 'storage'>): Promise<StorageBackend> {
  try {
    return await openBackend({
      backend: plan.storage.backend,
      path: plan.storage.path,
      ...(plan.storage.region ? { region: plan.storage.region } : {}),
      ...(plan.storage.endpoint ? { endpoint: plan.storage.endpoint } : {}),
      s3PathStyle: plan.storage.s3PathStyle,
      ...(plan.storage.requestTimeoutMs !== undefined ? { requestTimeoutMs: plan.storage.requestTimeoutMs } : {}),
    });
  } catch (err) {
    if (isRefusedWrite(err)) throw refusedWrite('cannot open storage', err);
    throw new UsageError(`cannot open storage: ${(err as Error).message}`);
  }
}

/** Disk full or access denied: SPEC §7 makes both a `policy_failure`, exit 3, whenever they happen. */
function isRefusedWrite(err: unknown): err is StorageError {
  return err instanceof StorageError && (err.code === 'no_space' || err.code === 'access_denied');
}

function refusedWrite(what: string, err: StorageError): CommandFailure {
  return new CommandFailure(`${what}: ${err.message}; nothing was stored (policy_failure). Free space or fix the storage permissions, then run again`, 3);
}

/**
 * The ledger could not be reached (opened, bound, or written): the one line
 * `quarry run`/`retry` print before exiting 3 (SPEC §8). The message names the
 * ledger without its password.
 */
export class LedgerUnreachableError extends Error {
  override readonly name = 'LedgerUnreachableError';
}

const where = (target: string): string => (isPostgresUrl(target) ? redactUrl(target) : target);

/**
 * Opens the ledger as a writer (creating and migrating it if needed), BEFORE
 * anything is claimed (SPEC §8 "Binding and writers").
 * @throws LedgerUnreachableError when it cannot be opened; UsageError when a newer Quarry migrated it.
 */
export async function openRunLedger(target: string): Promise<Ledger> {
  const { openLedger } = await import('../../ledger/ledger.js');
  try {
    return await openLedger(target);
  } catch (err) {
    if (err instanceof LedgerError && err.code === 'schema') throw new UsageError(err.message);
    throw new LedgerUnreachableError(`cannot reach the ledger ${where(target)}: ${oneLine(err)}; nothing was run or written: make the ledger reachable (or give --ledger) and run again`);
  }
}

/**
 * Binds the dataset to this storage and reserves the run id, before the claim.
 * @throws UsageError naming both locations (or the run id's other use); LedgerUnreachableError.
 */
export async function bindRun(plan: Pick<RunPlan, 'dataset' | 'storage'>, runId: string, ledger: Ledger): Promise<void> {
  const storage = storageIdentity({ backend: plan.storage.backend, path: plan.storage.path, ...(plan.storage.endpoint ? { endpoint: plan.storage.endpoint } : {}) });
  try {
    await ledger.bindRun({ dataset: plan.dataset, storage, run_id: runId }, new Date());
  } catch (err) {
    if (err instanceof LedgerError && (err.code === 'binding_conflict' || err.code === 'run_id_conflict' || err.code === 'invalid_argument')) {
      throw new UsageError(`refused before the run started: ${err.message}`);
    }
    throw new LedgerUnreachableError(`cannot reach the ledger ${ledger.location}: ${oneLine(err)}; nothing was run or written: make the ledger reachable and run again`);
  }
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
}

/** Whether `--retries` starts another attempt: a failed outcome, or a success whose data validation rejected (SPEC §8). */
export function shouldRetry(report: RunReport): boolean {
  if (report.outcome === 'interrupted') return false;
  return report.outcome !== 'success' || report.authority?.reason === 'rejected';
}

/** The run slot pool and shared browser (SPEC §10) the attempts of one `quarry run --retries N` share. */
export interface AttemptSlots {
  readonly pool: SlotPool;
  readonly sharedBrowser?: SharedBrowser;
}

/**
 * Slots for the attempts of a `quarry run --retries N` (N > 0) with the bundled executor, unless
 * `--no-browser-reuse`: a retry then reuses the Chromium and, when the slot survived the failed
 * attempt, its executor process (SPEC §10). `early` becomes the first slot. Closed by the caller.
 */
async function openAttemptSlots(plan: RunPlan, io: CliIO, early: StartedExecutor | undefined): Promise<AttemptSlots | undefined> {
  if (plan.retries <= 0 || plan.executorPath !== undefined || plan.noBrowserReuse === true) return undefined;
  const [{ SlotPool }, { SharedBrowser }, { chromiumPath }, { defaultExecutorPath }] = await Promise.all([
    import('../../runtime/slot-pool.js'), import('../../runtime/shared-browser.js'), import('../../runtime/chromium.js'), import('../../runtime/executor-process.js'),
  ]);
  const pool = new SlotPool({ command: process.execPath, entry: defaultExecutorPath() });
  // Started with the same command and argv as the pool's slots (startExecutorEarly).
  if (early && !early.taken && early.child) pool.adopt(early, plan.scriptPath);
  if (plan.browserWsEndpoint !== undefined) return { pool };
  const sharedBrowser = new SharedBrowser({ executablePath: chromiumPath(plan.chromiumPath) });
  sharedBrowser.onDied = (why) => { if (!plan.quiet) io.stderr(`quarry run: ${why}\n`); };
  return { pool, sharedBrowser };
}

/**
 * Runs a plan with its ledger and storage. `early` is the executor `quarry run` started
 * before loading this module (executor-process.ts): the first attempt uses it (as the first
 * run slot when the attempts share slots), and it is ended here if that attempt never starts
 * (a refused binding or claim, an unreachable ledger).
 */
export async function executePlan(plan: RunPlan, io: CliIO, early?: StartedExecutor): Promise<number> {
  let ledger: Ledger | undefined;
  let backend: StorageBackend | undefined;
  let router: ProxyRouter | undefined;
  let slots: AttemptSlots | undefined;
  try {
    const target = ledgerTarget(plan);
    // Nothing claimed yet: a signal while the ledger or storage opens stops at once.
    ledger = await beforeStart(openRunLedger(target), io.signal);
    backend = await beforeStart(openStorage(plan), io.signal);
    // Leftovers of runs killed before they could clean up (owner dead, older than an hour).
    await sweepRunLeftovers(plan.storage.backend === 'fs' ? plan.storage.path : undefined);
    if (plan.proxy) router = openProxyRouter(plan.proxy, stateDirFor(plan.stateDir, plan.storage, io), (m) => io.stderr(`quarry run: ${m}\n`));
    slots = await openAttemptSlots(plan, io, early);
    return (await runWithRetries(plan, backend, ledger, io, 'run', early, router, slots)).exit_code;
  } catch (err) {
    if (err instanceof LedgerUnreachableError) {
      io.stderr(`quarry run: ${err.message}\n`);
      return EXIT_NOT_AUTHORITATIVE;
    }
    if (err instanceof InterruptedBeforeStart) {
      io.stderr(`quarry run: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  } finally {
    // Every slot and the browser end with the run (their reapers cover a SIGKILL).
    await slots?.pool.close();
    await slots?.sharedBrowser?.close();
    if (early && !early.taken) await early.dispose();
    await router?.close();
    await ledger?.close();
    await backend?.close();
  }
}

/**
 * Runs a plan, and again as new runs (attempt + 1, parent = the run before)
 * up to `plan.retries` times while a run fails (see {@link shouldRetry}), with
 * backoff. Used by `quarry run` and, per partition, by `quarry retry`
 * (`command`, named in its notices). Neither makes up a job id: a run
 * without one keeps none, and so do its retries (SPEC §5). With `slots` every
 * attempt runs in a slot of its pool (`early` was adopted as the first).
 * @returns the last run's report. @throws as {@link runAndValidate}.
 */
export async function runWithRetries(plan: RunPlan, backend: StorageBackend, ledger: Ledger, io: CliIO, command: 'run' | 'retry' = 'run', early?: StartedExecutor, router?: ProxyRouter, slots?: AttemptSlots): Promise<RunReport> {
  const retries = plan.retries;
  // SPEC §5: a job id is generated only for fan-out trees; a standalone run without one keeps none, nor do its
  // retries (they are grouped by lineage: parent_run_id and root_run_id).
  const jobId = plan.jobId;
  let attempt = plan.attempt;
  let parentRunId = plan.parentRunId;
  let runId = plan.runId ?? ulid();
  // Outbox rows of this invocation's attempts: one notification per invocation, its final attempt's (SPEC §11).
  const notified: string[] = [];
  for (let n = 0; ; n++) {
    const last = (r: RunReport): boolean => !shouldRetry(r) || io.signal.aborted || n >= retries;
    const report = await runAndValidate({ ...plan, ...(jobId ? { jobId } : {}), attempt, ...(parentRunId ? { parentRunId } : {}) }, runId, backend, ledger, io, n === 0 && !slots ? early : undefined, { previous: notified, last }, router, slots);
    if (last(report)) return report;
    const wait = retryBackoffMs(n + 1);
    const ended = report.outcome === 'success' ? 'success, but validation rejected its data' : report.outcome;
    if (!plan.quiet) io.stderr(`quarry ${command}: attempt ${attempt} ended ${ended}; retrying in ${wait / 1000}s as a new run (attempt ${attempt + 1}, parent ${report.run_id})\n`);
    await sleep(wait, io.signal);
    if (io.signal.aborted) return report;
    parentRunId = report.run_id;
    attempt++;
    runId = ulid();
  }
}

/**
 * Binds, runs, validates and reports one run. The report's `exit_code` and
 * `authority` say whether its data became authoritative (SPEC §8).
 * @throws UsageError when the binding or the claim refuses the run; LedgerUnreachableError before the claim.
 */
export async function runAndValidate(plan: RunPlan, runId: string, backend: StorageBackend, ledger: Ledger, io: CliIO, early?: StartedExecutor, notify?: AttemptNotify, router?: ProxyRouter, slots?: AttemptSlots): Promise<RunReport> {
  await bindRun(plan, runId, ledger);
  let report: RunReport;
  // Selected at run start, after the binding: a refused run takes no turn of the pool (SPEC §11).
  const proxy = router ? await router.start({ jobKey: standaloneJobKey(plan.scriptPath, plan.job), job: plan.job }) : undefined;
  const progress = !plan.quiet && io.stderrIsTTY ? new RunProgress((t) => io.stderr(t), `run ${runId} (attempt ${plan.attempt})`) : undefined;
  // Each segment a flush publishes is read back and checked while the run goes on; the validation reads the rest.
  const published = segmentCheckFor(backend);
  try {
    report = await runOnce({
      scriptPath: plan.scriptPath,
      runId,
      attempt: plan.attempt,
      ...(plan.jobId ? { jobId: plan.jobId } : {}),
      ...(plan.parentRunId ? { parentRunId: plan.parentRunId } : {}),
      job: plan.job,
      partition: { dataset: plan.dataset, source: plan.source, category: plan.category, day: plan.day },
      policy: plan.policy,
      backend,
      ...(plan.executorPath ? { executorPath: plan.executorPath } : {}),
      ...(early ? { started: early } : {}),
      ...(slots ? { pool: slots.pool } : {}),
      ...(slots?.sharedBrowser ? { sharedBrowser: slots.sharedBrowser } : {}),
      ...(plan.browserWsEndpoint ? { browserWsEndpoint: plan.browserWsEndpoint } : {}),
      ...(plan.chromiumPath ? { chromiumPath: plan.chromiumPath } : {}),
      ...(plan.runTimeoutMs !== undefined ? { timeoutMs: plan.runTimeoutMs } : {}),
      ...(plan.adapter ? { adapter: recordedTarget(plan.adapter) } : {}),
      ...sinkConfig(plan),
      ...(published ? { onSegmentsListed: (run: RunPartition, objects: readonly ManifestObject[]) => published.add(run, objects) } : {}),
      retries: plan.retries,
      signal: io.signal,
      ...(plan.quiet ? {} : { onStderr: (chunk: Buffer) => { progress?.clear(); io.stderr(chunk.toString('utf8')); } }),
      ...(proxy ? { proxy: proxy.endpoint, proxyRecord: proxy.record } : {}),
      ...(progress || proxy ? { onEvent: (e: AnyEventEnvelope) => { progress?.onEvent(e); proxy?.onEvent(e); } } : {}),
    });
    await proxy?.finish(report.outcome);
  } catch (err) {
    if (err instanceof RunIdExistsError) throw new UsageError(err.message);
    if (isRefusedWrite(err)) throw refusedWrite('cannot start the run', err);
    if (err instanceof StorageError) throw new UsageError(`cannot start the run: ${err.message}`);
    throw err;
  } finally {
    progress?.stop();
  }
  let result: ValidationResult;
  let notificationId: string | null = null;
  if (report.storage.finalized) {
    const v = await validateIntoLedger(backend, ledger, report, published);
    report.ledger = v.ledger;
    result = v.result;
    notificationId = v.notification_id;
  } else {
    report.ledger = { location: ledger.location, validation: 'not_run', reasons: ['the run has no manifest, so it was not validated'], partition_status: 'unchanged', authoritative: false };
    result = { kind: 'not_finalized' };
  }
  const decided = decideAuthority(report, result, nextCommands(plan, runId, ledger));
  report.authority = decided.authority;
  report.exit_code = decided.exit_code;
  if (notificationId !== null) notify?.previous.push(notificationId);
  // Sent once the invocation's last attempt is known; never changes the exit code (SPEC §11).
  if (notify !== undefined && notify.previous.length > 0 && notify.last(report)) {
    report.notification = await sendOwnNotifications(ledger, notify.previous, plan.adapter, io.signal);
  }

  if (!plan.quiet) {
    io.stdout(`${summaryLine(report)}\n`);
    io.stdout(`data: ${report.storage.location}/${report.storage.partition}${report.storage.finalized ? '' : ' (NOT finalized)'}\n`);
    if (report.outcome !== 'success') io.stdout(`message: ${report.message}\n`);
    io.stdout(`${ledgerLine(report)}\n`);
    if (report.notification) io.stdout(`${notificationLine(report.notification, plan)}\n`);
  }
  // The one line that says why a success exits 3 and what to run next; printed even with --quiet.
  if (report.outcome === 'success' && report.exit_code === EXIT_NOT_AUTHORITATIVE) io.stderr(`quarry run: ${notAuthoritativeLine(report)}\n`);
  if (plan.report) writeReport(plan.report, JSON.stringify(report, null, 2), io);
  return report;
}


/** The commands a not-authoritative run suggests, with this run's storage and ledger flags. */
function nextCommands(plan: RunPlan, runId: string, ledger: Ledger): { validate: string; inspect: string } {
  const flags = [
    ...(plan.storage.backend === 's3' ? ['--storage-backend s3'] : []),
    `--storage-path ${plan.storage.path}`,
    ...(plan.storage.endpoint ? [`--storage-endpoint ${plan.storage.endpoint}`] : []),
    ...(plan.dataset !== 'quarry' ? [`--storage-dataset ${plan.dataset}`] : []),
    ...(plan.ledger ? [`--ledger ${ledger.location}`] : []),
  ].join(' ');
  return { validate: `quarry validate --run ${runId} ${flags}`, inspect: `quarry inspect run ${runId} ${flags}` };
}

function notAuthoritativeLine(r: RunReport): string {
  const a = r.authority!;
  if (a.reason === 'ledger_unreachable') {
    return `run ${r.run_id} finished and its data is stored, but the ledger could not record it (${r.ledger?.reasons[0] ?? 'unreachable'}), so it is not authoritative yet; next: ${a.next}`;
  }
  const why = r.ledger?.reasons.slice(0, 3).join('; ') ?? 'no manifest';
  return `run ${r.run_id} finished but validation rejected its data (${why}), so it is not authoritative; next: ${a.next} to see why, then run it again`;
}

/** The run config's sink fields for the plan's `--event-sink redis` (none without it). */
export function sinkConfig(plan: Pick<RunPlan, 'redisSink'>): { eventSinks?: EventSinkFactory[]; eventSinkTargets?: Array<{ kind: string; target: string }> } {
  const o = plan.redisSink;
  if (o === undefined) return {};
  const target = sinkTarget(o);
  return { eventSinks: [(runId, partition) => new RedisStreamSink(o, runId, partition, target)], eventSinkTargets: [{ kind: 'redis', target }] };
}

/** What {@link runWithRetries} tells each attempt about notifications: the invocation's outbox rows so far, and whether an attempt is the last. */
export interface AttemptNotify {
  previous: string[];
  last: (report: RunReport) => boolean;
}

/** The `drain` command that sends what stays pending, with this run's storage and ledger flags. */
export function drainCommand(plan: Pick<RunPlan, 'storage' | 'dataset' | 'ledger'>): string {
  return ['quarry adapter drain',
    ...(plan.ledger ? [`--ledger ${isPostgresUrl(plan.ledger) ? redactUrl(plan.ledger) : plan.ledger}`] : [`--storage-path ${plan.storage.path}`]),
    ...(plan.dataset !== 'quarry' ? [`--storage-dataset ${plan.dataset}`] : []),
  ].join(' ');
}

export function notificationLine(n: NotificationReport, plan: Pick<RunPlan, 'storage' | 'dataset' | 'ledger'>): string {
  if (n.status === 'delivered') return `notification: ${n.notification_id} delivered to ${n.target} (${n.attempts} attempt${n.attempts === 1 ? '' : 's'})`;
  return `notification: ${n.notification_id} NOT delivered to ${n.target} (${n.error ?? 'not sent'}); it stays in the ledger outbox: send it with ${drainCommand(plan)}`;
}

async function validateIntoLedger(backend: StorageBackend, ledger: Ledger, report: RunReport, published: SegmentCheck | undefined): Promise<{ ledger: NonNullable<RunReport['ledger']>; result: ValidationResult; notification_id: string | null }> {
  const { validateRun } = await import('../../ledger/validator.js');
  const partition = parseRunPrefix(report.storage.partition);
  if (!partition) throw new Error(`unexpected partition prefix ${report.storage.partition}`);
  try {
    const v = await validateRun(backend, ledger, partition, published ? { preverified: await published.result() } : {});
    const state = v.partition_state;
    return {
      ledger: {
        location: ledger.location,
        validation: v.status,
        reasons: v.reasons.map((r) => (r.object ? `${r.code}: ${r.message} (${r.object})` : `${r.code}: ${r.message}`)),
        partition_status: state?.status ?? 'pending',
        ...(state?.current_run_id ? { authoritative_run_id: state.current_run_id } : {}),
        authoritative: state?.current_run_id === report.run_id,
      },
      result: { kind: 'recorded', valid: v.status === 'valid', skipped: v.reasons.some((r) => r.code === 'skipped'), current_run_id: state?.current_run_id ?? null, role: v.role },
      notification_id: v.notification_id,
    };
  } catch (err) {
    // The run is finalized and stays so; `quarry validate` can record it later.
    return {
      ledger: { location: ledger.location, validation: 'not_run', reasons: [`validation failed to run: ${oneLine(err)}`], partition_status: 'unchanged', authoritative: false },
      result: { kind: 'unreachable' },
      notification_id: null,
    };
  }
}

function ledgerLine(r: RunReport): string {
  const l = r.ledger;
  if (!l) return 'ledger: not used';
  const where = r.storage.partition.replace(/^datasets\/[^/]+\/partitions\//, '').replace(/\/run_id=[^/]+\/$/, '');
  if (l.authoritative) return `ledger: this run is authoritative for ${where} (status success)`;
  if (r.authority?.reason === 'skipped') return `ledger: skipped by prepare: recorded, never promoted; partition ${where} is ${l.partition_status}`;
  if (r.authority?.reason === 'superseded') return `ledger: valid, superseded by ${l.authoritative_run_id ?? 'a later run'} (a valid run finalized later); partition ${where} is success`;
  const current = l.authoritative_run_id ? `; authoritative run stays ${l.authoritative_run_id}` : '';
  const why = l.reasons.length > 0 ? ` (${l.reasons.slice(0, 3).join('; ')})` : '';
  return `ledger: not authoritative: validation ${l.validation}${why}; partition ${where} is ${l.partition_status}${current}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
