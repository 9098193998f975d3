/**
 * The stored data most read-command tests look at: runs of every kind, written
 * through the storage API (see stored-runs.ts).
 *
 * | run        | partition                      | outcome        | job           |
 * |------------|--------------------------------|----------------|---------------|
 * | r-fail     | books/default/2024-01-01       | script_error   | daily-books#1 |
 * | r-ok       | books/default/2024-01-01       | success        | daily-books#2 |
 * | r-crash    | news/default/2024-01-01        | executor_crash | news-1#1      |
 * | r-open     | books/default/2024-01-01       | (unfinalized)  | -             |
 * | r-stream   | shop/toys/2024-01-02           | success        | -             |
 * | r-stopped  | shop/toys/2024-01-02           | interrupted    | -             |
 */
import type { StorageBackend } from '../../src/storage/backend.js';
import type { RunManifest } from '../../src/storage/manifest.js';
import { writeStoredRun } from './stored-runs.js';

export interface Scenario {
  manifests: Record<string, RunManifest>;
}

export async function writeScenario(backend: StorageBackend): Promise<Scenario> {
  const manifests: Record<string, RunManifest> = {};
  const keep = (m: RunManifest | undefined): void => {
    if (m) manifests[m.run_id] = m;
  };
  keep(await writeStoredRun(backend, { run_id: 'r-fail', started_at: '2024-01-01T01:00:00.000Z', outcome: 'script_error', message: 'TypeError: x is undefined', job_id: 'daily-books', events: ['item', 'log', 'run_error'] }));
  keep(await writeStoredRun(backend, { run_id: 'r-ok', started_at: '2024-01-01T02:00:00.000Z', outcome: 'success', job_id: 'daily-books', attempt: 2, parent_run_id: 'r-fail', events: ['item', 'item', 'log', 'item', 'run_complete'] }));
  keep(await writeStoredRun(backend, { run_id: 'r-crash', source: 'news', started_at: '2024-01-01T03:00:00.000Z', outcome: 'executor_crash', message: 'executor exited with code 2 without a terminal event', job_id: 'news-1', events: ['log'] }));
  keep(await writeStoredRun(backend, { run_id: 'r-open', started_at: '2024-01-01T04:00:00.000Z', events: ['item', 'item'] }));
  keep(
    await writeStoredRun(backend, {
      run_id: 'r-stream',
      source: 'shop',
      category: 'toys',
      started_at: '2024-01-02T00:00:00.000Z',
      outcome: 'success',
      policy: 'streaming',
      dropped: { log: 2, enqueue: 1 },
      events: ['item', 'checkpoint', 'item', 'run_complete'],
      files: { 'page-1.html': '<html>1</html>' },
      artifacts: { shot: 'PNGDATA' },
      orphans: { half: 'XX' },
    }),
  );
  keep(await writeStoredRun(backend, { run_id: 'r-stopped', source: 'shop', category: 'toys', started_at: '2024-01-02T01:00:00.000Z', outcome: 'interrupted', message: 'interrupted by SIGINT', events: ['item'] }));
  return { manifests };
}
