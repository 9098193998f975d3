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
 * dies without closing takes its slots along: the runtime's reaper (reaper.ts,
 * which covers every executor `startExecutor` spawns) SIGKILLs them at once,
 * and each slot's own lifeline (`src/executor/lifeline.ts`) would notice too,
 * as a one-run executor does.
 *
 * Slots start as the work needs them, not all `--parallel` at once: a start
 * costs a node process, the executor's modules and the script's imports
 * (~1 s of CPU on a loaded 2-core machine), and eight at once delay every run
 * behind them. A run that finds no idle slot waits for one to come back; a
 * new slot is started only when nothing is alive to come back, when a run
 * has waited a quarter of what a slot takes to start (its spawn to its
 * `hello`, measured), when a slot was retired (its replacement keeps the
 * count), or when the executor turned out not to reuse processes. One slot
 * starts at a time for waiters. So fast runs (no browser) share a few slots
 * and slow ones (a browser page) grow the pool up to the run bound.
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
/** What a slot's start is taken to cost until one was measured (spawn to hello). */
const DEFAULT_SLOT_START_MS = 500;
/**
 * A waiting run starts a new slot once it has waited this share of a slot's
 * start. At a whole start, fast runs (no browser, ~70 ms in a slot) settled
 * on 2 slots at --parallel 8, about 28 runs/s, below what the CPU allows;
 * at a quarter they settle on about 4 (docs/benchmarks.md, "Fast no-browser crawl").
 */
const GROW_AFTER_START_SHARE = 0.25;

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
  /** Its first frame was `hello`: reusable. Set through {@link Slot.saidHello}. */
  hello = false;
  /** When it was spawned (performance.now()). */
  readonly spawnedAt = performance.now();
  /** Told once when it said hello (the pool measures starts by it). */
  onHello: (() => void) | undefined;
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

  /** Its first frame was `hello` (the supervisor saw it). */
  saidHello(): void {
    if (this.hello) return;
    this.hello = true;
    const h = this.onHello;
    this.onHello = undefined;
    h?.();
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

interface Waiter {
  readonly script: string;
  readonly since: number;
  readonly resolve: (slot: Slot) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/** The slots of one invocation. Not shared between invocations. */
export class SlotPool {
  readonly #opts: SlotPoolOptions;
  readonly #idle: Slot[] = [];
  readonly #ending = new Set<Promise<void>>();
  /** Runs waiting for a slot, oldest first. */
  readonly #waiters: Waiter[] = [];
  /** Slots alive and not retired: busy, idle or starting. */
  #live = 0;
  /** Slots spawned for a waiter that have not said hello yet (and have not ended). */
  #starting = 0;
  /** Spawn-to-hello time of the slots so far (a moving average), undefined before the first. */
  #startMs: number | undefined;
  /** False once an executor ran a run without saying hello: a process per run, nothing to wait for. */
  #reuse: boolean;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: SlotPoolOptions) {
    this.#opts = opts;
    this.#reuse = (opts.maxRuns ?? DEFAULT_SLOT_RUNS) > 1;
  }

  get command(): string {
    return this.#opts.command;
  }

  /** argv of a new slot for `script`. */
  args(script: string): string[] {
    return [this.#opts.entry, script];
  }

  /** Slots alive now (busy, idle or starting): what the pool grew to. */
  get size(): number {
    return this.#live;
  }

  /**
   * A slot for a run of `script`: an idle one that said hello, else, when
   * the pool may grow now, a new process; otherwise the next slot a run gives
   * back (or a new one once this run has waited a share of a start).
   * An abort of `signal` while waiting starts a new slot at once (the
   * supervisor then interrupts its run).
   */
  take(script: string, signal?: AbortSignal): Promise<Slot> {
    const idle = this.#takeIdle();
    if (idle) return Promise.resolve(idle);
    if (!this.#reuse || this.#live === 0 || this.#closed || signal?.aborted) return Promise.resolve(this.#spawn(script));
    return new Promise((resolve) => {
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(waiter);
        if (i === -1) return;
        this.#waiters.splice(i, 1);
        resolve(this.#spawn(script));
      };
      const waiter: Waiter = { script, since: performance.now(), resolve, signal, onAbort };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
      this.#grow();
    });
  }

  /**
   * Takes an executor already started with this pool's command, entry and
   * `script` (the one `quarry run` starts early, executor-process.ts) as an
   * idle slot: the next run gets it, and the pool ends it like any other.
   * Every run of this pool must then be of `script` until it is taken.
   */
  adopt(started: StartedExecutor, script: string): void {
    const slot = new Slot(started, script);
    this.#live++;
    this.#idle.push(slot);
  }

  #takeIdle(): Slot | undefined {
    while (this.#idle.length > 0) {
      const slot = this.#idle.pop()!;
      if (!slot.exited) return slot;
      this.#live--;
    }
    return undefined;
  }

  #spawn(script: string, forWaiter = false): Slot {
    const slot = new Slot(startExecutor(this.#opts.command, this.args(script), this.#opts.env), script);
    this.#live++;
    if (forWaiter) this.#starting++;
    let started = true;
    const done = (): void => {
      if (!started) return;
      started = false;
      if (forWaiter) this.#starting--;
    };
    slot.onHello = () => {
      const ms = performance.now() - slot.spawnedAt;
      this.#startMs = this.#startMs === undefined ? ms : (this.#startMs * 3 + ms) / 4;
      done();
      this.#grow();
    };
    void slot.started.ended.then(() => {
      done();
      this.#grow();
    });
    return slot;
  }

  #serve(waiter: Waiter, slot: Slot): void {
    waiter.signal?.removeEventListener('abort', waiter.onAbort);
    waiter.resolve(slot);
  }

  /**
   * Starts a slot for the oldest waiter when it has waited a share of what
   * a start takes and no other start for a waiter is under way; otherwise
   * looks again when it will have.
   */
  #grow(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const head = this.#waiters[0];
    if (head === undefined) return;
    // Nothing alive would ever give a slot back: start one now.
    const due = this.#live === 0 || !this.#reuse ? 0 : head.since + (this.#startMs ?? DEFAULT_SLOT_START_MS) * GROW_AFTER_START_SHARE - performance.now();
    if (due > 0 || this.#starting > 0) {
      // A start under way re-evaluates when it says hello or ends.
      if (this.#starting === 0) {
        this.#timer = setTimeout(() => this.#grow(), Math.ceil(due));
      }
      return;
    }
    this.#waiters.shift();
    this.#serve(head, this.#spawn(head.script, true));
  }

  /** A run ended in `slot`: to the oldest waiting run or back to the pool when it may serve another, else ended (and replaced for a waiting run). */
  give(slot: Slot, reusable: boolean): void {
    // A first run that ended without hello: this executor runs one run per process.
    if (!slot.hello && slot.runs > 0) this.#reuse = false;
    const rss = reusable ? slot.rssBytes() : undefined;
    const keep = reusable && !this.#closed && slot.hello && !slot.exited
      && slot.runs < (this.#opts.maxRuns ?? DEFAULT_SLOT_RUNS)
      && (rss === undefined || rss <= (this.#opts.maxRssBytes ?? DEFAULT_SLOT_RSS_BYTES));
    if (keep) {
      slot.onStderr = undefined;
      const waiter = this.#waiters.shift();
      if (waiter) this.#serve(waiter, slot);
      else this.#idle.push(slot);
      this.#grow();
      return;
    }
    this.#live--;
    const ending = slot.end();
    this.#ending.add(ending);
    void ending.finally(() => this.#ending.delete(ending));
    // A retired slot's replacement keeps the pool's size.
    const waiter = this.#waiters.shift();
    if (waiter) this.#serve(waiter, this.#spawn(waiter.script));
    this.#grow();
  }

  /** Ends every idle slot and waits until every slot this pool ended is gone. Later `give`s end their slot. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    // Nobody waits past close: each waiting run gets a slot of its own.
    for (const w of this.#waiters.splice(0)) this.#serve(w, this.#spawn(w.script));
    const idle = this.#idle.splice(0);
    this.#live -= idle.length;
    await Promise.all([...idle.map((s) => s.end()), ...this.#ending]);
  }
}
