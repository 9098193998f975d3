/**
 * The I/O half of `quarry run`: opens storage, runs, prints, reports.
 * Loaded only when a run really starts, so `--help` and `--dry-run` stay fast.
 */
import { ulid } from 'ulid';
import { openBackend } from '../../storage/open-backend.js';
import { RunIdExistsError } from '../../storage/run-writer.js';
import { StorageError } from '../../storage/backend.js';
import { runOnce } from '../../runtime/run.js';
import { summaryLine, type RunReport } from '../../runtime/report.js';
import { UsageError } from '../flags.js';
import type { CliIO } from '../io.js';
import { writeReport, type RunPlan } from './run.js';

export async function executePlan(plan: RunPlan, io: CliIO): Promise<number> {
  let backend;
  try {
    backend = await openBackend({
      backend: plan.storage.backend,
      path: plan.storage.path,
      ...(plan.storage.region ? { region: plan.storage.region } : {}),
      ...(plan.storage.endpoint ? { endpoint: plan.storage.endpoint } : {}),
      s3PathStyle: plan.storage.s3PathStyle,
    });
  } catch (err) {
    throw new UsageError(`cannot open storage: ${(err as Error).message}`);
  }
  try {
    let report: RunReport;
    try {
      report = await runOnce({
        scriptPath: plan.scriptPath,
        runId: plan.runId ?? ulid(),
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
        ...(plan.quiet ? {} : { onStderr: (chunk: Buffer) => io.stderr(chunk.toString('utf8')) }),
      });
    } catch (err) {
      if (err instanceof RunIdExistsError) throw new UsageError(err.message);
      if (err instanceof StorageError) throw new UsageError(`cannot start the run: ${err.message}`);
      throw err;
    }
    if (!plan.quiet) {
      io.stdout(`${summaryLine(report)}\n`);
      io.stdout(`data: ${report.storage.location}/${report.storage.partition}${report.storage.finalized ? '' : ' (NOT finalized)'}\n`);
      if (report.outcome !== 'success') io.stdout(`message: ${report.message}\n`);
    }
    if (plan.report) writeReport(plan.report, JSON.stringify(report, null, 2), io);
    return report.exit_code;
  } finally {
    await backend.close();
  }
}
