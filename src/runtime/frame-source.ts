/**
 * Where the runtime reads an executor's frames (SPEC §3, `ipc.md` "Frame
 * descriptor"): on the offered fd when the executor's stdout opens with the
 * handshake, else on stdout, as an executor that does not know the offer
 * writes them.
 */
import type { Readable } from 'node:stream';
import { detectFrameFd, FRAME_FD } from '../protocol/frame-fd.js';

export interface FrameSourceOptions {
  /** The executor's stdout. */
  readonly stdout: Readable;
  /** The pipe offered on {@link FRAME_FD}; undefined when none was offered. */
  readonly offered: Readable | undefined;
  /** Receives the executor's stdout once it took the offer: log output, like stderr. */
  readonly onStray: (chunk: Buffer) => void;
}

/**
 * Yields the frame stream's bytes, pulled one chunk at a time so that a
 * consumer that stops pulling backpressures the executor through the pipe.
 * Once the executor took the offer, its stdout is read on (never left to fill
 * and block the executor) and handed to `onStray`; if it did not, the offered
 * pipe is closed. Leaving the loop early closes the frame stream.
 */
export async function* frameBytes(opts: FrameSourceOptions): AsyncGenerator<Buffer, void, undefined> {
  const stdout = opts.stdout[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const offered = opts.offered;
  let onFd = false;
  try {
    let start: Buffer | undefined = offered ? Buffer.alloc(0) : undefined;
    // The first bytes decide; until then nothing is yielded (a handshake is a few bytes).
    while (start !== undefined) {
      const next = await stdout.next();
      if (next.done) {
        offered?.destroy();
        if (start.length > 0) yield start;
        return;
      }
      start = Buffer.concat([start, next.value]);
      const decision = detectFrameFd(start, FRAME_FD);
      if (decision.kind === 'undecided') continue;
      if (decision.kind === 'stdout') {
        offered?.destroy();
        const first = start;
        start = undefined;
        yield first;
        break;
      }
      onFd = true;
      const rest = start.subarray(decision.consumed);
      if (rest.length > 0) opts.onStray(rest);
      void drain(stdout, opts.onStray);
      yield* offered as AsyncIterable<Buffer>;
      return;
    }
    for (;;) {
      const next = await stdout.next();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    if (!onFd) await stdout.return?.();
  }
}

/** Reads the rest of a stream into `sink`; errors only end it (the executor's exit tells what happened). */
async function drain(it: AsyncIterator<Buffer>, sink: (chunk: Buffer) => void): Promise<void> {
  try {
    for (;;) {
      const next = await it.next();
      if (next.done) return;
      sink(next.value);
    }
  } catch {
    // A broken stdout after the handshake loses log lines only; the frames are elsewhere.
  }
}
