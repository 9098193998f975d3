/**
 * Writes frames to the runtime (SPEC §3) with real backpressure: a write
 * resolves only once the stream has handed the frame to the OS, so a runtime
 * that stops reading stalls the writer instead of growing a queue.
 */
import type { Writable } from 'node:stream';
import { encodeFrame, encodePayload, FRAME_HEADER_BYTES, MAX_FRAME_BYTES, type ExecutorFrame } from '../protocol/index.js';
import { SizeLimitError } from '../sdk/index.js';

/** Encodes one frame, turning "too large" into {@link SizeLimitError}. */
export function encodeExecutorFrame(frame: ExecutorFrame): Buffer {
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

export class FrameWriter {
  readonly #out: Writable;
  #failure: Error | undefined;

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
   * Writes one frame. Resolves as soon as the stream accepts it below its
   * high-water mark (16 KiB), or else once it drains: the stream's own buffer
   * is the only one and it is bounded, so a runtime that stops reading stalls
   * the script's next emit. Resolving on acceptance rather than on the OS
   * write callback lets consecutive frames leave in one `writev`.
   * @throws SizeLimitError when the frame exceeds 16 MiB (nothing written).
   */
  write(frame: ExecutorFrame): Promise<void> {
    let bytes: Buffer;
    try {
      bytes = encodeExecutorFrame(frame);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#out.destroyed || this.#out.writableEnded) return Promise.reject(new Error('the output to the runtime is closed'));
    const accepted = this.#out.write(bytes, (err) => {
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

  /** Ends the stream once everything written has been flushed. Never rejects. */
  end(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#out.destroyed || this.#out.writableFinished) return resolve();
      this.#out.once('error', () => resolve());
      this.#out.end(() => resolve());
    });
  }
}
