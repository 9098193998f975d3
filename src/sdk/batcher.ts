/**
 * `createBatcher`: groups items into fewer, larger `enqueue` events (SPEC §2),
 * so a listing page can fan out in batches instead of one child run per item.
 * Each flush emits one enqueue whose `params` is `{ items: [...] }`.
 */
import type { EmitAPI } from './types.js';

/** Options of {@link createBatcher}. */
export interface BatcherOptions {
  /** Items per enqueue; a positive integer. */
  readonly size: number;
  /** `target` of every enqueue (a script path). */
  readonly target: string;
  /** `source` override of every enqueue. */
  readonly source?: string;
  /** `category` override of every enqueue. */
  readonly category?: string;
}

/** Accumulates items; see {@link createBatcher}. */
export interface Batcher<T = Record<string, unknown>> {
  /** Adds one item; emits an enqueue (and waits for its write) once `size` items are buffered. */
  add(item: T): Promise<void>;
  /** Emits the buffered items as one enqueue; does nothing when empty. Items of a failed flush are lost, like any failed emit. */
  flush(): Promise<void>;
  /** Items buffered and not yet emitted. */
  readonly pending: number;
}

/**
 * Creates a batcher over `emit.enqueue`.
 * @throws RangeError when `size` is not a positive integer, TypeError when `target` is empty.
 */
export function createBatcher<T = Record<string, unknown>>(emit: Pick<EmitAPI, 'enqueue'>, options: BatcherOptions): Batcher<T> {
  const { size, target, source, category } = options;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`createBatcher: size must be a positive integer, got ${String(size)}`);
  if (typeof target !== 'string' || target === '') throw new TypeError(`createBatcher: target must be a non-empty string, got ${JSON.stringify(target)}`);
  let buffer: T[] = [];

  function flush(): Promise<void> {
    if (buffer.length === 0) return Promise.resolve();
    // Take the batch synchronously, so items added while this write waits go to the next batch.
    const items = buffer;
    buffer = [];
    return emit.enqueue({
      target,
      params: { items },
      ...(source !== undefined ? { source } : {}),
      ...(category !== undefined ? { category } : {}),
    });
  }

  return Object.freeze({
    add(item: T): Promise<void> {
      buffer.push(item);
      return buffer.length >= size ? flush() : Promise.resolve();
    },
    flush,
    get pending(): number {
      return buffer.length;
    },
  });
}
