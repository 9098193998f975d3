// The ads ETL from an orchestrator instead of cron: a task (an Airflow task through a Node
// operator, a Temporal activity, any Node service) calls the library, not the CLI. runValidated
// is one `quarry run`: it binds the dataset to its storage, runs, validates into the ledger and
// returns the report with the exit code the CLI would give (0: the data is authoritative).
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { openBackend, openLedger, runValidated } from 'quarry';

export interface DayResult {
  customer: string;
  run_id: string;
  exit_code: number;
  authoritative: boolean;
  message: string;
}

/** Extracts one day for every customer; the task fails (or retries) when a result's exit_code is not 0. */
export async function extractDay(day: string, opts: { storagePath: string; dashboardUrl: string; customers: readonly string[] }): Promise<DayResult[]> {
  const backend = await openBackend({ backend: 'fs', path: opts.storagePath });
  const ledger = await openLedger(join(opts.storagePath, 'ledger.sqlite'));
  try {
    const results: DayResult[] = [];
    for (const customer of opts.customers) {
      const report = await runValidated({
        scriptPath: fileURLToPath(new URL('./extract.ts', import.meta.url)),
        attempt: 1,
        job: { url: opts.dashboardUrl },
        partition: { dataset: 'quarry', source: 'ads', category: customer, day },
        policy: { name: 'strict' },
        backend,
        ledger,
      });
      results.push({ customer, run_id: report.run_id, exit_code: report.exit_code, authoritative: report.authority?.authoritative ?? false, message: report.message });
    }
    return results;
  } finally {
    await ledger.close();
    await backend.close();
  }
}
