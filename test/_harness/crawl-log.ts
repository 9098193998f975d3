/**
 * The test crawl's executor log (test/fixtures/executors/no-browser.mjs with
 * CRAWL_LOG set): "<ms> start|end <run_id>" lines, read from outside the
 * scheduler so concurrency is measured where runs really execute.
 */
import { readFileSync } from 'node:fs';

/** Peak of runs executing at once, from the executors' start/end lines. */
export function peakFromLog(log: string): number {
  const events = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ')).map(([t, what]) => [Number(t), what === 'start' ? 1 : -1] as const);
  // Ends sort before starts at the same millisecond: a slot freed and retaken is not an overlap.
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let peak = 0;
  for (const [, d] of events) peak = Math.max(peak, (now += d));
  return peak;
}
