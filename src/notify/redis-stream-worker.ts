/**
 * The event sinks' worker thread (SPEC §11: the sink is off the ingestion hot
 * path). One per process, shared by every run's sink: it holds each sink's
 * {@link StreamWriter} by id and reports progress back, so JSON encoding,
 * the Redis client and retries never take time from the thread that ingests.
 */
import { parentPort } from 'node:worker_threads';
import { StreamWriter } from './redis-stream-writer.js';
import type { ToWorker } from './redis-stream-sink.js';

const port = parentPort!;
const writers = new Map<number, StreamWriter>();

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'open':
      writers.set(m.id, new StreamWriter(m.options, m.runId, m.partition, m.target, (p) => port.postMessage({ type: 'progress', id: m.id, ...p })));
      break;
    case 'events':
      writers.get(m.id)?.push(m.events);
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
