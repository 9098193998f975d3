/**
 * The I/O half of `quarry run`: opens storage and the ledger, runs (and
 * retries), validates each finalized run into the ledger, prints, reports.
 * Loaded only when a run really starts, so `--help` and `--dry-run` stay fast.
 */
import { ulid } from 'ulid';
import type { Ledger } from '../../ledger/ledger.js';
import { parseRunPrefix } from '../../storage/layout.js';
import { openBackend } from '../../storage/open-backend.js';
import { RunIdExistsError } from '../../storage/run-writer.js';
import type { StorageBackend } from '../../storage/backend.js';
import { StorageError } from '../../storage/backend.js';
import { runOnce } from '../../runtime/run.js';
import { sweepRunLeftovers } from '../../runtime/leftovers.js';
import { summaryLine, type RunReport } from '../../runtime/report.js';
import type { AnyEventEnvelope } from '../../protocol/envelope.js';
import { UsageError } from '../flags.js';
import { RunProgress } from '../progress.js';
import type { CliIO } from '../io.js';
import { ledgerTargetFor } from './ledger-common.js';
import { writeReport, type RunPlan } from './run.js';

/** Wait before retry n (1-based): 1 s, 2 s, 4 s … capped at 30 s. */
export function retryBackoffMs(n: number): number {
  return Math.min(30_000, 1000 * 2 ** (n - 1));
}

/** The ledger a run uses (see {@link ledgerTargetFor}). @throws UsageError for s3 without `--ledger`. */
export function ledgerTarget(plan: Pick<RunPlan, 'ledger' | 'storage'>): string {
  return ledgerTargetFor(plan.storage.backend, plan.storage.path, plan.ledger);
}

export async function openStorage(plan: Pick<RunPlan, 'storage'>): Promise<StorageBackend> {
  try {
    return await openBackend({
      backend: plan.storage.backend,
      path: plan.storage.path,
      ...(plan.storage.region ? { region: plan.storage.region } : {}),
      ...(plan.storage.endpoint ? { endpoint: plan.storage.endpoint } : {}),
      s3PathStyle: plan.storage.s3PathStyle,
    });
  } catch (err) {
    throw new UsageError(`cannot open storage: ${(err as Error).message}`);
  }
}

export async function openRunLedger(target: string): Promise<Ledger> {
  const { openLedger } = await import('../../ledger/ledger.js');
  try {
    return await openLedger(target);
  } catch (err) {
    throw new UsageError(`cannot open the ledger: ${(err as Error).message}`);
  }
}

export async function executePlan(plan: RunPlan, io: CliIO): Promise<number> {
  const target = ledgerTarget(plan);
  const backend = await openStorage(plan);
  // Leftovers of runs killed before they could clean up (owner dead, older than an hour).
  await sweepRunLeftovers(plan.storage.backend === 'fs' ? plan.storage.path : undefined);
  let ledger: Ledger | undefined;
  try {
    ledger = await openRunLedger(target);
    const retries = plan.retries;
    // Attempts of one invocation share a job id so the ledger and `inspect job` group them.
    const jobId = plan.jobId ?? (retries > 0 ? ulid() : undefined);
    let attempt = plan.attempt;
    let parentRunId = plan.parentRunId;
    let runId = plan.runId ?? ulid();
    let report: RunReport | undefined;
    for (let n = 0; ; n++) {
      report = await runAndValidate({ ...plan, ...(jobId ? { jobId } : {}), attempt, ...(parentRunId ? { parentRunId } : {}) }, runId, backend, ledger, io);
      const retryable = report.outcome !== 'success' && report.outcome !== 'interrupted' && !io.signal.aborted;
      if (!retryable || n >= retries) break;
      const wait = retryBackoffMs(n + 1);
      if (!plan.quiet) io.stderr(`quarry run: attempt ${attempt} ended ${report.outcome}; retrying in ${wait / 1000}s as a new run (attempt ${attempt + 1}, parent ${report.run_id})\n`);
      await sleep(wait, io.signal);
      if (io.signal.aborted) break;
      parentRunId = report.run_id;
      attempt++;
      runId = ulid();
    }
    return report.exit_code;
  } finally {
    await ledger?.close();
    await backend.close();
  }
}

export async function runAndValidate(plan: RunPlan, runId: string, backend: StorageBackend, ledger: Ledger, io: CliIO): Promise<RunReport> {
  let report: RunReport;
  const progress = !plan.quiet && io.stderrIsTTY ? new RunProgress((t) => io.stderr(t), `run ${runId} (attempt ${plan.attempt})`) : undefined;
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
      ...(plan.browserWsEndpoint ? { browserWsEndpoint: plan.browserWsEndpoint } : {}),
      ...(plan.chromiumPath ? { chromiumPath: plan.chromiumPath } : {}),
      signal: io.signal,
      ...(plan.quiet ? {} : { onStderr: (chunk: Buffer) => { progress?.clear(); io.stderr(chunk.toString('utf8')); } }),
      ...(progress ? { onEvent: (e: AnyEventEnvelope) => progress.onEvent(e) } : {}),
    });
  } catch (err) {
    if (err instanceof RunIdExistsError) throw new UsageError(err.message);
    if (err instanceof StorageError) throw new UsageError(`cannot start the run: ${err.message}`);
    throw err;
  } finally {
    progress?.stop();
  }
  if (report.storage.finalized) report.ledger = await validateIntoLedger(backend, ledger, report);
  else report.ledger = { location: ledger.location, validation: 'not_run', reasons: ['the run has no manifest, so it was not validated'], partition_status: 'unchanged', authoritative: false };

  if (!plan.quiet) {
    io.stdout(`${summaryLine(report)}\n`);
    io.stdout(`data: ${report.storage.location}/${report.storage.partition}${report.storage.finalized ? '' : ' (NOT finalized)'}\n`);
    if (report.outcome !== 'success') io.stdout(`message: ${report.message}\n`);
    io.stdout(`${ledgerLine(report)}\n`);
  }
  if (plan.report) writeReport(plan.report, JSON.stringify(report, null, 2), io);
  return report;
}

async function validateIntoLedger(backend: StorageBackend, ledger: Ledger, report: RunReport): Promise<NonNullable<RunReport['ledger']>> {
  const { validateRun } = await import('../../ledger/validator.js');
  const partition = parseRunPrefix(report.storage.partition);
  if (!partition) throw new Error(`unexpected partition prefix ${report.storage.partition}`);
  try {
    const v = await validateRun(backend, ledger, partition);
    const state = v.partition_state;
    return {
      location: ledger.location,
      validation: v.status,
      reasons: v.reasons.map((r) => (r.object ? `${r.code}: ${r.message} (${r.object})` : `${r.code}: ${r.message}`)),
      partition_status: state?.status ?? 'pending',
      ...(state?.current_run_id ? { authoritative_run_id: state.current_run_id } : {}),
      authoritative: state?.current_run_id === report.run_id,
    };
  } catch (err) {
    // The run is finalized and stays so; `quarry validate --pending` can record it later.
    return { location: ledger.location, validation: 'not_run', reasons: [`validation failed to run: ${(err as Error).message}`], partition_status: 'unchanged', authoritative: false };
  }
}

function ledgerLine(r: RunReport): string {
  const l = r.ledger;
  if (!l) return 'ledger: not used';
  const where = r.storage.partition.replace(/^datasets\/[^/]+\/partitions\//, '').replace(/\/run_id=[^/]+\/$/, '');
  if (l.authoritative) return `ledger: this run is authoritative for ${where} (status success)`;
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
