/**
 * Run slots (SPEC §10): executor processes that serve successive runs of one
 * invocation, so a crawl does not start Node for every page.
 *
 * A slot is spawned like a one-run executor, with `slots: true` in its first
 * request line. If its first frame is `{type: 'hello', slots: true}` it is
 * reusable: after each run's `run_result` (authoritative while the process
 * lives) it goes back to the pool, and the next run goes to it as a
 * `run_request` frame on stdin. Any other executor (a custom `--executor`
 * without the handshake) runs one run and exits, as before.
 *
 * A slot is retired, never reused, after `maxRuns` runs, above `maxRssBytes`
 * (read from /proc after each run), after a crash, a timeout, an
 * interruption or any stream error; a slot that dies fails only the run it
 * was serving (the supervisor classifies it) and the next run gets a new one.
 * {@link SlotPool.close} ends every slot and waits for them; a runtime that
 * dies without closing takes its idle slots along through their lifeline
 * (`src/executor/lifeline.ts`), as it does a one-run executor.
 */
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { FrameDecoder } from '../protocol/codec.js';
import { FRAME_FD } from '../protocol/frame-fd.js';
import { frameBytes } from './frame-source.js';
import { startExecutor, type StartedExecutor } from './executor-process.js';

/** Runs a slot serves before it is replaced (bounds what a process accumulates, e.g. one module record per run). */
export const DEFAULT_SLOT_RUNS = 100;
/** A slot whose resident memory is above this after a run is replaced. */
export const DEFAULT_SLOT_RSS_BYTES = 768 * 1024 * 1024;
/** How long a retired or closed slot gets to exit before SIGKILL. */
const SLOT_EXIT_GRACE_MS = 3_000;

/** The frames of one executor's output, decoded across its runs. */
export class FrameStream {
  readonly #bytes: AsyncIterator<Buffer>;
  readonly #decoder = new FrameDecoder();

  constructor(bytes: AsyncIterator<Buffer>) {
    this.#bytes = bytes;
  }

  /**
   * The frames of the next chunk (maybe none), or undefined at end of stream.
   * Reads one chunk only, so a consumer that stops calling backpressures the executor.
   * @throws FrameError for a truncated, oversize or malformed frame.
   */
  async next(): Promise<unknown[] | undefined> {
    const n = await this.#bytes.next();
    if (n.done) {
      this.#decoder.end();
      return undefined;
    }
    return this.#decoder.push(n.value);
  }

  /** A fatal error deferred behind good frames, if any. */
  get error(): Error | undefined {
    return this.#decoder.error;
  }
}

/** One executor process, serving one run or, once it said hello, successive runs. */
export class Slot {
  readonly started: StartedExecutor;
  /** The script in its argv: its first run must be of this script. */
  readonly script: string;
  /** The request line was written: later runs go as `run_request` frames (only once `hello` came). */
  requested = false;
  /** Its first frame was `hello`: reusable. */
  hello = false;
  /** Runs started in it. */
  runs = 0;
  /** Its output, once a run began reading it. */
  stream: FrameStream | undefined;
  /** Where its stderr goes now: the current run's log, or nowhere between runs. */
  onStderr: ((chunk: Buffer) => void) | undefined;
  #exited = false;

  constructor(started: StartedExecutor, script: string) {
    this.started = started;
    this.script = script;
    started.taken = true;
    started.child?.stderr?.on('data', (chunk: Buffer) => this.onStderr?.(chunk));
    void started.ended.then(() => {
      this.#exited = true;
    });
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** The frame stream, opened on first use (the frame-fd handshake is read then). */
  frames(onStray: (chunk: Buffer) => void): FrameStream {
    if (this.stream) return this.stream;
    const child = this.started.child!;
    const offered = child.stdio[FRAME_FD] as Readable | null | undefined;
    offered?.on('error', () => undefined); // the executor's exit and the stream's end tell what happened
    // Stray stdout after the handshake is log output of whichever run is current.
    const bytes = frameBytes({ stdout: child.stdout!, offered: offered ?? undefined, onStray: (c) => (this.onStderr ?? onStray)(c) });
    this.stream = new FrameStream(bytes);
    return this.stream;
  }

  /** Resident memory in bytes (Linux /proc), undefined when unknown. */
  rssBytes(): number | undefined {
    const pid = this.started.child?.pid;
    if (pid === undefined) return undefined;
    try {
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : undefined;
    } catch {
      return undefined;
    }
  }

  /** Ends the process: stdin closed (a slot between runs exits at once), SIGKILL after a grace period. */
  async end(): Promise<void> {
    const child = this.started.child;
    if (!child || this.#exited) return this.started.ended;
    this.onStderr = undefined;
    child.stdin?.destroy();
    const kill = setTimeout(() => child.kill('SIGKILL'), SLOT_EXIT_GRACE_MS);
    kill.unref();
    await this.started.ended;
    clearTimeout(kill);
  }
}

export interface SlotPoolOptions {
  /** Node binary, and the executor entry started with it (argv: entry, script). */
  readonly command: string;
  readonly entry: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Default {@link DEFAULT_SLOT_RUNS}; 1 turns reuse off. */
  readonly maxRuns?: number;
  /** Default {@link DEFAULT_SLOT_RSS_BYTES}. */
  readonly maxRssBytes?: number;
}

/** The slots of one invocation. Not shared between invocations. */
export class SlotPool {
  readonly #opts: SlotPoolOptions;
  readonly #idle: Slot[] = [];
  readonly #ending = new Set<Promise<void>>();
  #closed = false;

  constructor(opts: SlotPoolOptions) {
    this.#opts = opts;
  }

  get command(): string {
    return this.#opts.command;
  }

  /** argv of a new slot for `script`. */
  args(script: string): string[] {
    return [this.#opts.entry, script];
  }

  /** A slot for a run of `script`: an idle one that said hello, else a new process. */
  take(script: string): Slot {
    while (this.#idle.length > 0) {
      const slot = this.#idle.pop()!;
      if (!slot.exited) return slot;
    }
    return new Slot(startExecutor(this.#opts.command, this.args(script), this.#opts.env), script);
  }

  /** A run ended in `slot`: back to the pool when it may serve another, else ended. */
  give(slot: Slot, reusable: boolean): void {
    const rss = reusable ? slot.rssBytes() : undefined;
    const keep = reusable && !this.#closed && slot.hello && !slot.exited
      && slot.runs < (this.#opts.maxRuns ?? DEFAULT_SLOT_RUNS)
      && (rss === undefined || rss <= (this.#opts.maxRssBytes ?? DEFAULT_SLOT_RSS_BYTES));
    if (keep) {
      slot.onStderr = undefined;
      this.#idle.push(slot);
      return;
    }
    const ending = slot.end();
    this.#ending.add(ending);
    void ending.finally(() => this.#ending.delete(ending));
  }

  /** Ends every idle slot and waits until every slot this pool ended is gone. Later `give`s end their slot. */
  async close(): Promise<void> {
    this.#closed = true;
    const idle = this.#idle.splice(0);
    await Promise.all([...idle.map((s) => s.end()), ...this.#ending]);
  }
}
