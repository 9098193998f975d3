/**
 * The event sinks' worker thread (SPEC §11: the sink is off the ingestion hot
 * path). One per process, shared by every run's sink: it holds each sink's
 * {@link StreamWriter} by id and reports progress back, so the Redis client,
 * timeouts and retries never take time from the thread that ingests.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { StreamWriter } from './redis-stream-writer.js';
import type { ToWorker } from './redis-stream-sink.js';

const port = parentPort!;

/** Nice value of the best_effort thread: below ingestion's share of a busy CPU, still plenty of an idle one. */
const LOW_PRIORITY = 10;

if ((workerData as { lowPriority?: boolean } | undefined)?.lowPriority === true) {
  // Linux gives each thread its own nice value, set through its thread id (/proc/thread-self names it).
  // Elsewhere, or when refused, the thread keeps the process's priority: slower runs, never a failure.
  try {
    const tid = Number(/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'))?.[1]);
    if (Number.isSafeInteger(tid) && tid > 0) setPriority(tid, LOW_PRIORITY);
  } catch {
    // not Linux, or not allowed
  }
}
const writers = new Map<number, StreamWriter>();

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'open':
      writers.set(m.id, new StreamWriter(m.options, m.runId, m.partition, m.target, (p) => port.postMessage({ type: 'progress', id: m.id, ...p })));
      break;
    case 'events':
      writers.get(m.id)?.push(m.chunk);
      break;
    case 'close': {
      const w = writers.get(m.id);
      writers.delete(m.id);
      if (w === undefined) break;
      void w.close().then((p) => port.postMessage({ type: 'closed', id: m.id, ...p }));
      break;
    }
  }
});
