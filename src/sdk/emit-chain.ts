/**
 * The serialization chain behind `emit` and `storage.put` (SPEC §2): one
 * promise chain per run, so frames reach the sink in call order, `seq` is
 * assigned at write, a terminal event closes the chain and the first sink
 * failure poisons it. Internal to the SDK.
 */
import { CONTRACT_VERSION, type AnyEventEnvelope, type EventType, type PayloadByType } from '../protocol/index.js';
import { SinkFailedError, SizeLimitError, TerminalEventError, type TerminalEventType } from './errors.js';
import type { EmitSink, EventId, OutboundFrame, RunMeta } from './types.js';

/** Clock and id source, injectable so tests are deterministic. */
export interface ChainClock {
  now(): Date;
  newId(): string;
}

export class EmitChain {
  readonly #sink: EmitSink;
  readonly #run: RunMeta;
  readonly #clock: ChainClock;
  #tail: Promise<unknown> = Promise.resolve();
  /** Last seq written; an event gets #seq + 1 only once its write succeeds. */
  #seq = 0;
  /** Claimed at call time, so a call made after runComplete() is refused even if that write is still queued. */
  #terminal: TerminalEventType | undefined;
  #failure: { cause: unknown } | undefined;
  #nextWriteId = 1;
  /** Failed calls whose promise nobody had observed (then/catch/await) when they failed. */
  readonly #unobserved = new Set<EmitFailure>();

  constructor(sink: EmitSink, run: RunMeta, clock: ChainClock) {
    this.#sink = sink;
    this.#run = run;
    this.#clock = clock;
  }

  get sink(): EmitSink {
    return this.#sink;
  }

  /** Throws if `method` may not be called now (terminal or poisoned). */
  assertOpen(method: string): void {
    if (this.#terminal) throw new TerminalEventError(method, this.#terminal);
    if (this.#failure) throw new SinkFailedError(method, this.#failure.cause);
  }

  /** Marks the chain terminal now; returns an undo for a terminal write that wrote nothing. */
  claimTerminal(type: TerminalEventType): () => void {
    this.#terminal = type;
    return () => {
      if (this.#terminal === type) this.#terminal = undefined;
    };
  }

  /** Resolves once every task queued so far has settled (never rejects). */
  settled(): Promise<void> {
    return this.#tail.then(noop);
  }

  /** Next `file_write` id: uint32 from 1 (0 means "no ack wanted" on the wire). */
  nextWriteId(): number {
    const id = this.#nextWriteId;
    this.#nextWriteId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  /**
   * Runs `task` after every earlier task has settled. If the chain was poisoned
   * meanwhile, the task does not run and the call rejects with SinkFailedError.
   */
  enqueue<T>(method: string, task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(() => {
      if (this.#failure) throw new SinkFailedError(method, this.#failure.cause);
      return task();
    });
    this.#tail = result.then(noop, noop);
    return result;
  }

  /**
   * Returns `p` as a promise that notes whether the caller observed it: a
   * rejection nobody handled (an emit the script did not await) is kept in
   * {@link unobservedFailures} instead of vanishing, so the run can end as
   * `emit_failed` (SPEC §2). Observing it later (a late `await`, `.catch`)
   * takes it off the list.
   */
  track<T>(method: string, p: Promise<T>): Promise<T> {
    const entry: EmitFailure = { method, error: undefined };
    let observed = false;
    const out = new ObservedPromise<T>((resolve, reject) => {
      p.then(resolve, (err: unknown) => {
        entry.error = err;
        if (!observed) this.#unobserved.add(entry);
        reject(err);
      });
    });
    out.onObserved = () => {
      observed = true;
      this.#unobserved.delete(entry);
    };
    // Handled here, through the base `then` so it does not count as observed:
    // the failure is kept above and reported as the run's outcome, not as a stray rejection.
    void Promise.prototype.then.call(out, undefined, noop);
    return out;
  }

  /** Failed emit calls the script never observed, in failure order. */
  unobservedFailures(): readonly EmitFailure[] {
    return [...this.#unobserved];
  }

  /** Writes one non-event frame; any failure poisons the chain. Call only inside a task. */
  async write(method: string, frame: OutboundFrame): Promise<void> {
    try {
      await this.#sink.writeFrame(frame);
    } catch (err) {
      throw this.#poison(method, err);
    }
  }

  /**
   * Builds the envelope with the next seq and writes it. A frame too large to
   * encode wrote nothing: the seq is not used and the chain stays healthy.
   * Call only inside a task.
   */
  #isoMs = Number.NaN;
  #iso = '';

  async writeEvent<T extends EventType>(method: string, type: T, payload: PayloadByType[T]): Promise<void> {
    const seq = this.#seq + 1;
    const run = this.#run;
    // Many events share a millisecond: format each millisecond once.
    const now = this.#clock.now();
    const ms = now.getTime();
    if (ms !== this.#isoMs) {
      this.#isoMs = ms;
      this.#iso = now.toISOString();
    }
    const envelope = {
      contract_version: CONTRACT_VERSION,
      event_id: this.#clock.newId() as EventId,
      run_id: run.run_id,
      seq,
      type,
      ts: this.#iso,
      payload,
      attempt: run.attempt,
    } as AnyEventEnvelope;
    // Assigned rather than spread: a plain literal keeps the hot path cheap.
    if (run.job_id !== undefined) envelope.job_id = run.job_id;
    if (run.parent_run_id !== undefined) envelope.parent_run_id = run.parent_run_id;
    try {
      await this.#sink.writeFrame(envelope);
    } catch (err) {
      if (err instanceof SizeLimitError) throw err;
      throw this.#poison(method, err);
    }
    this.#seq = seq;
  }

  #poison(method: string, err: unknown): SinkFailedError {
    const cause = err instanceof SinkFailedError ? err.cause : err;
    this.#failure ??= { cause };
    return new SinkFailedError(method, this.#failure.cause);
  }
}

function noop(): void {}

/** A failed emit or storage call, for {@link EmitChain.unobservedFailures}. */
export interface EmitFailure {
  readonly method: string;
  error: unknown;
}

/**
 * A promise that reports the first `then` on it: `await`, `.then`, `.catch`
 * and `.finally` all go through `then` (a subclass is never adopted as-is by
 * `await`), so an untouched one is a call the script did not await.
 */
class ObservedPromise<T> extends Promise<T> {
  onObserved: (() => void) | undefined;

  // Derived promises (what then/catch return) are plain promises.
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  override then<R1 = T, R2 = never>(onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null, onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null): Promise<R1 | R2> {
    const observe = this.onObserved;
    this.onObserved = undefined;
    observe?.();
    return super.then(onFulfilled, onRejected);
  }
}
