/**
 * An in-memory EmitSink for SDK tests: records frames, can delay, gate or fail
 * writes, and delivers file_write acks on demand or automatically.
 */
import type { AnyEventEnvelope, FileWriteAckFrame } from '../../src/protocol/index.js';
import type { EmitSink, JobId, OutboundFrame, RunId, RunMeta } from '../../src/sdk/index.js';

/** A RunMeta for tests. */
export function runMeta(extra: { job_id?: string; parent_run_id?: string; attempt?: number } = {}): RunMeta {
  return {
    run_id: 'run-1' as RunId,
    attempt: extra.attempt ?? 1,
    ...(extra.job_id !== undefined ? { job_id: extra.job_id as JobId } : {}),
    ...(extra.parent_run_id !== undefined ? { parent_run_id: extra.parent_run_id as RunId } : {}),
  };
}

export interface FakeSinkOptions {
  /** Milliseconds each write takes (may vary per frame). */
  delayMs?: (frame: OutboundFrame, index: number) => number;
  /** Return an error to make the write of this frame fail. */
  failWith?: (frame: OutboundFrame, index: number) => unknown;
  /** Ack every file_write as it is written (ok unless the function says otherwise). */
  autoAck?: boolean | ((frame: OutboundFrame & { type: 'file_write' }) => FileWriteAckFrame);
}

export class FakeSink implements EmitSink {
  readonly frames: OutboundFrame[] = [];
  /** Writes attempted, including failed ones. */
  attempts = 0;
  /** Most writes ever in progress at once (the chain promises 1). */
  maxConcurrentWrites = 0;
  #inFlight = 0;
  #gate: Promise<void> | undefined;
  #openGate: (() => void) | undefined;
  readonly #acks = new Map<number, FileWriteAckFrame>();
  readonly #waiters = new Map<number, { resolve(a: FileWriteAckFrame): void; reject(e: unknown): void }>();
  #ackFailure: unknown;
  readonly #opts: FakeSinkOptions;

  constructor(opts: FakeSinkOptions = {}) {
    this.#opts = opts;
  }

  /** Holds every write until {@link release} is called. */
  hold(): void {
    this.#gate = new Promise((resolve) => (this.#openGate = resolve));
  }

  release(): void {
    this.#openGate?.();
    this.#gate = undefined;
  }

  async writeFrame(frame: OutboundFrame): Promise<void> {
    const index = this.attempts++;
    this.#inFlight++;
    this.maxConcurrentWrites = Math.max(this.maxConcurrentWrites, this.#inFlight);
    try {
      const delay = this.#opts.delayMs?.(frame, index) ?? 0;
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      else await Promise.resolve();
      if (this.#gate) await this.#gate;
      const err = this.#opts.failWith?.(frame, index);
      if (err !== undefined) throw err;
      this.frames.push(frame);
    } finally {
      this.#inFlight--;
    }
    const auto = this.#opts.autoAck;
    if (auto && frame.type === 'file_write') {
      this.ack(typeof auto === 'function' ? auto(frame) : { type: 'file_write_ack', write_id: frame.write_id, ok: true });
    }
  }

  /** Delivers an ack, as the runtime would on stdin. */
  ack(ack: FileWriteAckFrame): void {
    const w = this.#waiters.get(ack.write_id);
    if (w) {
      this.#waiters.delete(ack.write_id);
      w.resolve(ack);
    } else this.#acks.set(ack.write_id, ack);
  }

  /** Closes the ack channel: pending and later waits reject with `err`. */
  closeAcks(err: unknown): void {
    this.#ackFailure = err;
    for (const w of this.#waiters.values()) w.reject(err);
    this.#waiters.clear();
  }

  awaitFileWriteAck(writeId: number): Promise<FileWriteAckFrame> {
    const early = this.#acks.get(writeId);
    if (early) {
      this.#acks.delete(writeId);
      return Promise.resolve(early);
    }
    if (this.#ackFailure !== undefined) return Promise.reject(this.#ackFailure);
    return new Promise((resolve, reject) => this.#waiters.set(writeId, { resolve, reject }));
  }

  /** Event envelopes only, in order. */
  events(): AnyEventEnvelope[] {
    return this.frames.filter((f): f is AnyEventEnvelope => f.type !== 'artifact_chunk' && f.type !== 'file_write');
  }

  /** Writes waiting for an ack. */
  get waitingForAcks(): number {
    return this.#waiters.size;
  }
}
