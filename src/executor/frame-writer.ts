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
   * Writes one frame; resolves when the bytes are written to the OS. At most
   * one frame per caller is in memory: callers await each write.
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
    return new Promise((resolve, reject) => {
      this.#out.write(bytes, (err) => {
        if (err) {
          this.#failure ??= err;
          reject(err);
        } else resolve();
      });
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
