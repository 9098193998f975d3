/**
 * `createStorageBatcher`: many `storage.put` calls with a bound on how many are
 * in flight (SPEC §2), failing fast: after the first failure nothing new starts.
 */
import type { StorageAPI, StoragePutOptions, StoragePutResult } from './types.js';

/** Options of {@link createStorageBatcher}. */
export interface StorageBatcherOptions {
  /** Puts in flight at once; a positive integer. Default 16. */
  readonly concurrency?: number;
}

/** One queued put. */
export interface PendingStoragePut {
  /** Settles with the put. Already marked handled: a failure also surfaces through `flush()`. */
  readonly result: Promise<StoragePutResult>;
}

/** Bounded concurrent puts; see {@link createStorageBatcher}. */
export interface StorageBatcher {
  /** Queues one put; it starts as soon as fewer than `concurrency` puts are in flight. */
  add(options: StoragePutOptions): PendingStoragePut;
  /** Resolves when every queued put has succeeded; rejects with the first failure. */
  flush(): Promise<void>;
  /** Puts queued or in flight. */
  readonly pending: number;
}

interface Entry {
  readonly options: StoragePutOptions;
  resolve(r: StoragePutResult): void;
  reject(e: unknown): void;
}

/**
 * Creates a storage batcher.
 * @throws RangeError when `concurrency` is not a positive integer.
 */
export function createStorageBatcher(storage: Pick<StorageAPI, 'put'>, options: StorageBatcherOptions = {}): StorageBatcher {
  const concurrency = options.concurrency ?? 16;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`createStorageBatcher: concurrency must be a positive integer, got ${String(concurrency)}`);
  }
  const queue: Entry[] = [];
  let inflight = 0;
  let failure: { error: unknown } | undefined;
  let idleWaiters: (() => void)[] = [];

  function settleIdle(): void {
    if (inflight === 0 && queue.length === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  function pump(): void {
    while (!failure && inflight < concurrency && queue.length > 0) {
      const entry = queue.shift()!;
      inflight++;
      storage.put(entry.options).then(
        (r) => {
          inflight--;
          entry.resolve(r);
          pump();
          settleIdle();
        },
        (err: unknown) => {
          inflight--;
          failure ??= { error: err };
          entry.reject(err);
          // Fail fast: what has not started never starts.
          for (const queued of queue.splice(0)) queued.reject(failure.error);
          settleIdle();
        },
      );
    }
  }

  return Object.freeze({
    add(putOptions: StoragePutOptions): PendingStoragePut {
      let entry!: Entry;
      const result = new Promise<StoragePutResult>((resolve, reject) => {
        entry = { options: putOptions, resolve, reject };
      });
      result.catch(() => {});
      if (failure) entry.reject(failure.error);
      else {
        queue.push(entry);
        pump();
      }
      return Object.freeze({ result });
    },
    async flush(): Promise<void> {
      if (inflight > 0 || queue.length > 0) await new Promise<void>((resolve) => idleWaiters.push(resolve));
      if (failure) throw failure.error;
    },
    get pending(): number {
      return inflight + queue.length;
    },
  });
}
