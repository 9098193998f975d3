/**
 * The thread of a {@link PublishedCheckThread} (published-check.ts): checks a
 * run's segments as `quarry run` publishes them, reading them back from the
 * fs storage folder opened read-only, and posts the result when asked.
 * Runs at a lower CPU priority than the thread that ingests (Linux: its own
 * nice value), so on a busy machine ingestion keeps the CPU and the check
 * catches up after the run.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { FsBackend } from '../storage/fs-backend.js';
import { PublishedCheck, toWire, type ToCheckThread } from './published-check.js';
import { SeqLedger } from './run-checks.js';

const port = parentPort!;

/** Nice value of the thread: below ingestion's share of a busy CPU, still plenty of an idle one. */
const LOW_PRIORITY = 10;

try {
  // Linux gives each thread its own nice value, set through its thread id (/proc/thread-self names it).
  const tid = Number(/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'))?.[1]);
  if (Number.isSafeInteger(tid) && tid > 0) setPriority(tid, LOW_PRIORITY);
} catch {
  // not Linux, or not allowed: the same checks at the process's priority
}

const check = FsBackend.create((workerData as { location: string }).location, { readOnly: true }).then((b) => new PublishedCheck(b));

port.on('message', (m: ToCheckThread) => {
  if (m.type === 'add') {
    void check.then((c) => c.add(m.run, m.objects));
    return;
  }
  void check
    .then((c) => c.result())
    .then(
      (r) => {
        const wire = toWire(r);
        port.postMessage(wire, [wire.seqs.seen.buffer as ArrayBuffer]);
      },
      () => port.postMessage(toWire({ objects: new Map(), seqs: new SeqLedger(1, undefined), clean: false })),
    );
});
