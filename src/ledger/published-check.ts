/**
 * The validator's object checks, run on a run's records segments as they are
 * published (SPEC §8; docs/contracts/ledger.md, "Validation"): `quarry run`
 * hands each segment a flush lists (buffered, streaming) to a
 * {@link PublishedCheck}, which reads it back from storage, hashes it and
 * parses every line with the same {@link checkObject} the validator runs on a
 * finalized run, one segment at a time, while the run goes on. The
 * validation at the end of the run still reads every object back and hashes
 * it, but parses the lines only of those not checked this way: for the rest
 * it requires that the manifest lists each exactly as it was checked and that
 * its bytes still have the SHA-256 they had when their lines were parsed
 * ({@link checkRun}'s `preverified`).
 *
 * On fs storage the checks run in a worker thread ({@link PublishedCheckThread}),
 * at a lower CPU priority: the thread that ingests is the run's bottleneck,
 * and the check uses the other core's spare time instead of adding to it (on
 * a busy machine it falls behind and finishes after the run, which is where
 * the whole validation used to run).
 *
 * Read-only, and never part of the run's outcome: a segment that fails a
 * check, or cannot be read, or a thread that fails, makes the result unusable
 * (`clean: false`), and the validation reads every object back as it would
 * have anyway; its reasons are the validator's, found there. Memory: the
 * segments' descriptions and one bitset of seqs (a bit per event).
 */
import { Worker } from 'node:worker_threads';
import type { StorageBackend } from '../storage/backend.js';
import { runPrefix, type RunPartition } from '../storage/layout.js';
import type { ManifestObject } from '../storage/manifest.js';
import { checkObject, SeqLedger, type Preverified } from './run-checks.js';

/** What checks the segments of one run as they are published. */
export interface SegmentCheck {
  add(run: RunPartition, objects: readonly ManifestObject[]): void;
  result(): Promise<Preverified>;
}

/** Initial bitset: 64 Ki seqs; it doubles as seqs come. */
const INITIAL_SEQ_BYTES = 8 * 1024;

export class PublishedCheck implements SegmentCheck {
  readonly #storage: StorageBackend;
  #run: RunPartition | undefined;
  readonly #queue: ManifestObject[] = [];
  readonly #checked = new Map<string, ManifestObject>();
  readonly #seqs = new SeqLedger(1, new Uint8Array(INITIAL_SEQ_BYTES), true);
  #clean = true;
  #running: Promise<void> | undefined;

  constructor(storage: StorageBackend) {
    this.#storage = storage;
  }

  /**
   * Queues the records objects of `run` just listed for checking (other kinds
   * are checked at the end). One checker serves one run: objects of another
   * run make the result unusable.
   */
  add(run: RunPartition, objects: readonly ManifestObject[]): void {
    this.#run ??= run;
    if (runPrefix(run) !== runPrefix(this.#run)) this.#clean = false;
    if (!this.#clean) return;
    for (const o of objects) if (o.kind === 'records') this.#queue.push({ ...o });
    this.#running ??= this.#drain();
  }

  /** Waits for the objects queued so far to be checked; what the validation may rely on. */
  async result(): Promise<Preverified> {
    while (this.#running !== undefined) await this.#running;
    return { objects: this.#checked, seqs: this.#seqs, clean: this.#clean };
  }

  async #drain(): Promise<void> {
    const base = runPrefix(this.#run!);
    try {
      for (let o = this.#queue.shift(); o !== undefined && this.#clean; o = this.#queue.shift()) {
        const reasons = await checkObject(this.#storage, base, this.#run!.run_id, o, this.#seqs);
        if (reasons.length > 0 || this.#seqs.duplicates > 0 || this.#seqs.outOfRange > 0 || this.#checked.has(o.path)) this.#clean = false;
        else this.#checked.set(o.path, o);
      }
    } catch {
      // A read that failed: the validation at the end reads every object again, and reports what it finds.
      this.#clean = false;
    } finally {
      this.#queue.length = 0;
      this.#running = undefined;
    }
  }
}

/** A {@link Preverified} as it crosses between threads. */
export interface WirePreverified {
  objects: ManifestObject[];
  seqs: { first: number; seen: Uint8Array; persisted: number; terminalSeq: number | undefined; maxSeq: number; duplicates: number; outOfRange: number };
  clean: boolean;
}

export function toWire(p: Preverified): WirePreverified {
  const s = p.seqs;
  return {
    objects: [...p.objects.values()],
    seqs: { first: s.first, seen: s.seen ?? new Uint8Array(0), persisted: s.persisted, terminalSeq: s.terminalSeq, maxSeq: s.maxSeq, duplicates: s.duplicates, outOfRange: s.outOfRange },
    clean: p.clean,
  };
}

export function fromWire(w: WirePreverified): Preverified {
  const seqs = new SeqLedger(w.seqs.first, w.seqs.seen);
  seqs.persisted = w.seqs.persisted;
  seqs.terminalSeq = w.seqs.terminalSeq;
  seqs.maxSeq = w.seqs.maxSeq;
  seqs.duplicates = w.seqs.duplicates;
  seqs.outOfRange = w.seqs.outOfRange;
  return { objects: new Map(w.objects.map((o) => [o.path, o])), seqs, clean: w.clean };
}

/** Messages to the check thread. */
export type ToCheckThread = { type: 'add'; run: RunPartition; objects: ManifestObject[] } | { type: 'result' };

/**
 * Heap of the check thread: it holds a 256 KiB chunk and a bitset, and makes
 * a million short-lived objects per million lines; a small young generation
 * keeps the process's memory flat (a thread that runs out ends, and the
 * validation reads everything back).
 */
const CHECK_THREAD_LIMITS = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 };

/** A result that is never used: the validation reads every object back. */
const UNUSABLE: Preverified = { objects: new Map(), seqs: new SeqLedger(1, undefined), clean: false };

/**
 * A {@link PublishedCheck} in a worker thread, for fs storage (the thread
 * opens the same folder read-only). Started with the first segment, so a
 * strict run never starts it; ended by {@link result}.
 */
export class PublishedCheckThread implements SegmentCheck {
  readonly #location: string;
  readonly #entry: URL;
  #worker: Worker | undefined;
  #failed = false;
  #result: Promise<Preverified> | undefined;

  /** `entry`: the worker's module (tests name the built one). */
  constructor(location: string, entry: URL = new URL('./published-check-worker.js', import.meta.url)) {
    this.#location = location;
    this.#entry = entry;
  }

  add(run: RunPartition, objects: readonly ManifestObject[]): void {
    if (this.#failed || this.#result !== undefined) return;
    if (this.#worker === undefined) {
      try {
        this.#worker = new Worker(this.#entry, { workerData: { location: this.#location }, resourceLimits: CHECK_THREAD_LIMITS });
      } catch {
        this.#failed = true;
        return;
      }
      // Until its result is asked for, the thread must not keep the process alive (a run that ends without validation).
      this.#worker.unref();
      this.#worker.on('error', () => (this.#failed = true));
      // A thread gone before its result is asked for has nothing to give.
      this.#worker.on('exit', () => (this.#failed = true));
    }
    this.#worker.postMessage({ type: 'add', run, objects: [...objects] } satisfies ToCheckThread);
  }

  result(): Promise<Preverified> {
    this.#result ??= this.#ask();
    return this.#result;
  }

  async #ask(): Promise<Preverified> {
    const w = this.#worker;
    if (w === undefined || this.#failed) {
      void w?.terminate();
      return UNUSABLE;
    }
    w.ref();
    try {
      return await new Promise<Preverified>((resolve) => {
        w.once('message', (m: WirePreverified) => resolve(fromWire(m)));
        w.once('error', () => resolve(UNUSABLE));
        w.once('exit', () => resolve(UNUSABLE));
        w.postMessage({ type: 'result' } satisfies ToCheckThread);
      });
    } finally {
      w.removeAllListeners();
      w.on('error', () => undefined);
      void w.terminate();
    }
  }
}

/** The check `quarry run` keeps for a run on `backend`: in a thread on fs storage; none elsewhere (the validation reads everything at the end). */
export function segmentCheckFor(backend: StorageBackend): SegmentCheck | undefined {
  return backend.kind === 'fs' ? new PublishedCheckThread(backend.location) : undefined;
}
