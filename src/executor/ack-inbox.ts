/**
 * Frames from the runtime on stdin after the request line (SPEC §3, phase 2):
 * `file_write_ack`s, matched to waiting `storage.put` calls by `write_id`, and,
 * in a run slot (SPEC §10), `run_request`s: the next run. Stdin is one ordered
 * stream, so every ack before a `run_request` belongs to the run before it:
 * the request starts a fresh set of write ids.
 */
import { FrameDecoder, toAckFrame, type BrowserEndpointFrame, type FileWriteAckFrame } from '../protocol/index.js';

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
  /** Run requests not yet taken, and who waits for the next one. */
  readonly #requests: unknown[] = [];
  #requestWaiter: ((request: unknown) => void) | undefined;
  #ended = false;
  /** Who waits for the answer to a `browser_request` (one at a time). */
  #browserWaiter: ((answer: BrowserEndpointFrame) => void) | undefined;

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
      if (type === 'run_request') {
        this.#nextRun((f as { request?: unknown }).request);
        continue;
      }
      if (type === 'browser_endpoint') {
        const o = f as { ws_endpoint?: unknown; error?: unknown };
        const answer: BrowserEndpointFrame = typeof o.ws_endpoint === 'string' && o.ws_endpoint !== ''
          ? { type: 'browser_endpoint', ws_endpoint: o.ws_endpoint }
          : { type: 'browser_endpoint', error: typeof o.error === 'string' ? o.error : 'the runtime sent no browser endpoint' };
        const waiter = this.#browserWaiter;
        this.#browserWaiter = undefined;
        if (waiter) waiter(answer);
        else this.#log('ignoring a browser_endpoint frame nobody asked for');
        continue;
      }
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

  /**
   * The next `run_request`'s request object (a run slot's next run), or
   * undefined once stdin ended or broke: no more runs.
   */
  nextRunRequest(): Promise<unknown> {
    if (this.#requests.length > 0) return Promise.resolve(this.#requests.shift());
    if (this.#ended || this.#fault) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#requestWaiter = resolve;
    });
  }

  /**
   * The runtime's answer to the `browser_request` just sent (SPEC §10 browser
   * reuse); an answer with `error` when stdin ends first.
   */
  nextBrowserEndpoint(): Promise<BrowserEndpointFrame> {
    if (this.#ended || this.#fault) return Promise.resolve({ type: 'browser_endpoint', error: 'stdin closed before the runtime sent the browser endpoint' });
    return new Promise((resolve) => {
      this.#browserWaiter = resolve;
    });
  }

  /** A run request arrived: the previous run's acks are moot; puts of it still waiting reject. */
  #nextRun(request: unknown): void {
    this.#early.clear();
    for (const w of this.#waiters.values()) w.reject(new Error('the run ended before the runtime acknowledged the write'));
    this.#waiters.clear();
    const waiter = this.#requestWaiter;
    this.#requestWaiter = undefined;
    if (waiter) waiter(request);
    else this.#requests.push(request);
  }

  /** Rejects every waiting and future ack request with `reason`. */
  close(reason: Error): void {
    this.#closed ??= reason;
    this.#ended = true;
    const waiter = this.#requestWaiter;
    this.#requestWaiter = undefined;
    waiter?.(undefined);
    const browserWaiter = this.#browserWaiter;
    this.#browserWaiter = undefined;
    browserWaiter?.({ type: 'browser_endpoint', error: `no browser endpoint: ${this.#closed.message}` });
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
