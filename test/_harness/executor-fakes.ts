/**
 * In-process fakes for executor unit tests: a browser source that hands out
 * stand-in objects, and a frame output that decodes what is written to it.
 */
import { Writable } from 'node:stream';
import { FrameDecoder, toExecutorFrame, type ExecutorFrame } from '../../src/protocol/index.js';
import type { BrowserSource, RunBrowser } from '../../src/executor/browser.js';

/** A browser source whose browser, context and page are plain objects; records what happened in `trace`. */
export function fakeBrowserSource(trace: string[], opts: { failWith?: Error; closeGate?: Promise<void> } = {}): BrowserSource & { opened: number } {
  const source = {
    opened: 0,
    openRun(): Promise<RunBrowser> {
      trace.push('browser');
      if (opts.failWith) return Promise.reject(opts.failWith);
      source.opened++;
      return Promise.resolve({
        browser: { fake: 'browser' } as never,
        browserContext: { fake: 'context' } as never,
        page: { fake: 'page' } as never,
        // With closeGate, the context's close ends only once the gate opens.
        close: async () => {
          await opts.closeGate;
          trace.push('context closed');
        },
        lost: () => false,
      });
    },
    close: () => Promise.resolve(),
    killNow: () => undefined,
  };
  return source;
}

/** A Writable that decodes frames as they are written; `failAfter` makes the Nth write fail. */
export class FrameCollector extends Writable {
  readonly frames: ExecutorFrame[] = [];
  readonly #decoder = new FrameDecoder();
  #writes = 0;
  readonly #failAfter: number | undefined;

  constructor(opts: { failAfter?: number } = {}) {
    super();
    this.#failAfter = opts.failAfter;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#failAfter !== undefined && ++this.#writes > this.#failAfter) {
      cb(new Error('EPIPE: the runtime went away'));
      return;
    }
    for (const f of this.#decoder.push(chunk)) this.frames.push(toExecutorFrame(f));
    cb();
  }
}
