/**
 * Frames from the runtime on stdin after the request line (SPEC §3, phase 2):
 * `file_write_ack`s, matched to waiting `storage.put` calls by `write_id`.
 */
import { FrameDecoder, toAckFrame, type FileWriteAckFrame } from '../protocol/index.js';

interface Waiter {
  resolve(ack: FileWriteAckFrame): void;
  reject(err: unknown): void;
}

export class AckInbox {
  readonly #decoder = new FrameDecoder();
  /** Acks that arrived before anyone asked for them. */
  readonly #early = new Map<number, FileWriteAckFrame>();
  readonly #waiters = new Map<number, Waiter>();
  #closed: Error | undefined;
  #fault: Error | undefined;
  readonly #log: (line: string) => void;

  constructor(log: (line: string) => void = () => {}) {
    this.#log = log;
  }

  /** A fatal input error (truncated, oversize or malformed frame), if one happened. */
  get fault(): Error | undefined {
    return this.#fault;
  }

  /** Feeds stdin bytes. A bad frame closes the inbox for good (no resynchronisation). */
  push(chunk: Buffer): void {
    if (this.#closed) return;
    let frames: unknown[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (err) {
      this.#failInput(err as Error);
      return;
    }
    for (const f of frames) {
      const type = typeof f === 'object' && f !== null ? (f as { type?: unknown }).type : undefined;
      if (type !== 'file_write_ack') {
        // Frame types this executor does not know are skipped: contract changes are additive.
        this.#log(`ignoring a ${JSON.stringify(type)} frame on stdin`);
        continue;
      }
      let ack: FileWriteAckFrame;
      try {
        ack = toAckFrame(f);
      } catch (err) {
        this.#failInput(err as Error);
        return;
      }
      this.#deliver(ack);
    }
  }

  /** Stdin ended: a partial frame is a fault; waiting puts reject. */
  end(): void {
    if (this.#closed) return;
    try {
      this.#decoder.end();
    } catch (err) {
      this.#failInput(err as Error);
      return;
    }
    this.close(new Error('stdin closed before the runtime acknowledged the write'));
  }

  /** Rejects every waiting and future ack request with `reason`. */
  close(reason: Error): void {
    this.#closed ??= reason;
    for (const w of this.#waiters.values()) w.reject(this.#closed);
    this.#waiters.clear();
  }

  /** Resolves with the ack for `writeId`, whether it arrived before or after the call. */
  awaitAck(writeId: number): Promise<FileWriteAckFrame> {
    const early = this.#early.get(writeId);
    if (early) {
      this.#early.delete(writeId);
      return Promise.resolve(early);
    }
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => this.#waiters.set(writeId, { resolve, reject }));
  }

  #deliver(ack: FileWriteAckFrame): void {
    const w = this.#waiters.get(ack.write_id);
    if (w) {
      this.#waiters.delete(ack.write_id);
      w.resolve(ack);
    } else {
      this.#early.set(ack.write_id, ack);
    }
  }

  #failInput(err: Error): void {
    this.#fault = new Error(`fatal input frame error on stdin: ${err.message}`, { cause: err });
    this.#log(this.#fault.message);
    this.close(this.#fault);
  }
}
