/**
 * Writes frames to the runtime (SPEC §3) with real backpressure: a write
 * resolves only once the stream has handed the frame to the OS, so a runtime
 * that stops reading stalls the writer instead of growing a queue.
 */
import type { Writable } from 'node:stream';
import { encodeFrame, encodePayload, FRAME_HEADER_BYTES, MAX_FRAME_BYTES, type BrowserRequestFrame, type ExecutorFrame, type HelloFrame } from '../protocol/index.js';
import { SizeLimitError } from '../sdk/index.js';

/** Encodes one frame, turning "too large" into {@link SizeLimitError}. */
export function encodeExecutorFrame(frame: ExecutorFrame | HelloFrame | BrowserRequestFrame): Buffer {
  try {
    return encodeFrame(frame);
  } catch (err) {
    if (err instanceof RangeError) {
      let size: number | undefined;
      try {
        size = FRAME_HEADER_BYTES + encodePayload(frame).length;
      } catch {
        throw err;
      }
      if (size > MAX_FRAME_BYTES) throw new SizeLimitError('frame', size, MAX_FRAME_BYTES, `${frame.type} frame`);
    }
    throw err;
  }
}

/**
 * Small non-terminal events may wait for company; terminal events, the run
 * result, file writes (awaiting an ack), artifact chunks and a browser request
 * (awaiting its endpoint) never wait.
 */
function coalescable(frame: ExecutorFrame | HelloFrame | BrowserRequestFrame): boolean {
  switch (frame.type) {
    case 'run_complete':
    case 'run_error':
    case 'run_result':
    case 'file_write':
    case 'artifact_chunk':
    case 'browser_request':
      return false;
    default:
      return true;
  }
}

/** Frames are gathered up to this many bytes, then written in one call. */
export const COALESCE_BYTES = 64 * 1024;

export class FrameWriter {
  readonly #out: Writable;
  #failure: Error | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #scheduled = false;

  constructor(out: Writable) {
    this.#out = out;
    // Without a listener an EPIPE would crash the process; it fails the next write instead.
    out.on('error', (err: Error) => {
      this.#failure ??= err;
    });
  }

  /** The first error of the output stream, if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /**
   * Writes one frame. Frames are gathered in a buffer of at most
   * {@link COALESCE_BYTES} and handed to the stream together (at the latest
   * on the next event-loop turn), so a script emitting in a tight loop pays
   * one system call per 64 KiB rather than per frame. The write resolves once
   * the frame is in that bounded buffer, or, when the buffer is handed over
   * and the stream is over its high-water mark, once the stream drains: a
   * runtime that stops reading stalls the script's next emit, and nothing
   * queues without bound.
   * @throws SizeLimitError when the frame exceeds 16 MiB (nothing written).
   */
  write(frame: ExecutorFrame | HelloFrame | BrowserRequestFrame): Promise<void> {
    let bytes: Buffer;
    try {
      bytes = encodeExecutorFrame(frame);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#out.destroyed || this.#out.writableEnded) return Promise.reject(new Error('the output to the runtime is closed'));
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
    // Frames the runtime must see at once go out at once, with everything before them.
    if (this.#pendingBytes >= COALESCE_BYTES || !coalescable(frame)) return this.#handOver();
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#handOver().catch(() => undefined);
      });
    }
    return Promise.resolve();
  }

  /** Hands what is gathered to the stream now; resolves when the stream can take more. */
  flush(): Promise<void> {
    return this.#handOver();
  }

  #handOver(): Promise<void> {
    if (this.#pendingBytes === 0) return this.#failure ? Promise.reject(this.#failure) : Promise.resolve();
    const chunk = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    if (this.#out.destroyed || this.#out.writableEnded) return Promise.reject(this.#failure ?? new Error('the output to the runtime is closed'));
    const accepted = this.#out.write(chunk, (err) => {
      if (err) this.#failure ??= err;
    });
    if (accepted) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const settle = (err?: Error): void => {
        this.#out.off('drain', onDrain);
        this.#out.off('finish', onDrain);
        this.#out.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      // An ending stream emits 'finish' rather than 'drain' once its buffer is out.
      const onDrain = (): void => settle();
      const onClose = (): void => settle(this.#failure ?? new Error('the output to the runtime closed'));
      this.#out.once('drain', onDrain);
      this.#out.once('finish', onDrain);
      this.#out.once('close', onClose);
    });
  }

  /** Hands over what is gathered, then ends the stream once everything is flushed. Never rejects. */
  async end(): Promise<void> {
    await this.#handOver().catch(() => undefined);
    return new Promise((resolve) => {
      if (this.#out.destroyed || this.#out.writableFinished) return resolve();
      this.#out.once('error', () => resolve());
      this.#out.end(() => resolve());
    });
  }
}
