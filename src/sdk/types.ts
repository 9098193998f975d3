/**
 * The types a script sees (SPEC §2): the context, the emit, storage and memory
 * APIs, the hooks, and the sink port the executor implements. Types only.
 */
import type { Browser, BrowserContext, Page } from 'puppeteer-core';
import type {
  AnyEventEnvelope,
  ArtifactChunkFrame,
  FileWriteAckFrame,
  FileWriteFrame,
  LogLevel,
} from '../protocol/index.js';
import type { HttpClient } from './http-types.js';

declare const brand: unique symbol;
/** A string that is known to be a particular kind of id. */
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** The run's id (a ULID when the runtime generates it). */
export type RunId = Brand<string, 'RunId'>;
/** The logical job's id, shared by its retries. */
export type JobId = Brand<string, 'JobId'>;
/** An artifact's id, returned by `emit.artifact`. */
export type ArtifactId = Brand<string, 'ArtifactId'>;
/** An event's id, unique within the run. */
export type EventId = Brand<string, 'EventId'>;

/** Identity and lineage of the run in flight (frozen). */
export interface RunMeta {
  readonly run_id: RunId;
  readonly job_id?: JobId;
  readonly parent_run_id?: RunId;
  /** From 1; a retry is a new run with attempt + 1. */
  readonly attempt: number;
  /**
   * The logical partition the run writes to (SPEC §7): `--category` and
   * `--day` of `quarry run`, or what a fan-out child inherited. A script that
   * extracts "one customer, one day" reads them here instead of repeating
   * them in its job. Absent only when the run request carried no `storage`
   * (an executor driven by hand).
   */
  readonly partition?: RunPartitionMeta;
}

/** The partition keys of the run in flight (frozen). */
export interface RunPartitionMeta {
  readonly dataset: string;
  readonly source: string;
  readonly category: string;
  /** `YYYY-MM-DD`, the logical day (`--day`, else the run's start day in UTC). */
  readonly day: string;
}

/** Bytes, or a string that is written as UTF-8. */
export type BinaryData = Uint8Array | string;

export interface EmitItemOptions {
  readonly item_type: string;
  readonly data: Record<string, unknown>;
}
export interface EmitArtifactOptions {
  readonly name: string;
  readonly content_type: string;
  readonly data: BinaryData;
}
export interface EmitCheckpointOptions {
  readonly checkpoint_id: string;
  readonly note?: string;
}
export interface EmitEnqueueOptions {
  readonly target: string;
  readonly params: Record<string, unknown>;
  readonly source?: string;
  readonly category?: string;
}
export interface EmitRotateProxyOptions {
  readonly reason?: string;
}
export interface EmitLogOptions {
  readonly level: LogLevel;
  readonly message: string;
  readonly fields?: Record<string, unknown>;
}
export interface EmitRunErrorOptions {
  readonly error_type: string;
  readonly message: string;
  readonly stack?: string;
}
export interface EmitRunCompleteOptions {
  readonly summary?: Record<string, unknown>;
}

/**
 * The only way a script sends output (SPEC §2). Every method resolves once its
 * frame is written to the pipe; calls are serialized, so order is call order.
 * After `runError`/`runComplete` every method rejects with `TerminalEventError`;
 * after a sink failure every method rejects with `SinkFailedError`.
 */
export interface EmitAPI {
  item(options: EmitItemOptions): Promise<void>;
  /** Writes the bytes as chunks, then the `artifact` event that commits them. */
  artifact(options: EmitArtifactOptions): Promise<ArtifactId>;
  checkpoint(options: EmitCheckpointOptions): Promise<void>;
  enqueue(options: EmitEnqueueOptions): Promise<void>;
  rotateProxy(options?: EmitRotateProxyOptions): Promise<void>;
  log(options: EmitLogOptions): Promise<void>;
  debug(message: string, fields?: Record<string, unknown>): Promise<void>;
  info(message: string, fields?: Record<string, unknown>): Promise<void>;
  warn(message: string, fields?: Record<string, unknown>): Promise<void>;
  error(message: string, fields?: Record<string, unknown>): Promise<void>;
  runError(options: EmitRunErrorOptions): Promise<void>;
  runComplete(options?: EmitRunCompleteOptions): Promise<void>;
}

export interface StoragePutOptions {
  /** Plain file name: non-empty, no `/`, `\` or `..`. */
  readonly filename: string;
  readonly content_type: string;
  /** At most 8 MiB. */
  readonly data: BinaryData;
}
export interface StoragePutResult {
  /** Storage key of the file, `…/run_id=<r>/files/<filename>`. */
  readonly key: string;
}

/** Sidecar files in the run's partition (SPEC §2, §7). */
export interface StorageAPI {
  /**
   * Writes one file and resolves once the runtime has stored it.
   * Rejects with `StorageFilenameError`, `SizeLimitError`, `StorageWriteError`,
   * `TerminalEventError` or `SinkFailedError`.
   */
  put(options: StoragePutOptions): Promise<StoragePutResult>;
}

/** Memory pressure, lowest to highest: low < 0.5 ≤ moderate < 0.7 ≤ high < 0.9 ≤ critical. */
export type MemoryPressureLevel = 'low' | 'moderate' | 'high' | 'critical';

/** Usage of one memory source. */
export interface MemoryUsage {
  readonly used: number;
  readonly limit: number;
  /** `used / limit`, 0 when the limit is unknown. */
  readonly ratio: number;
}

export interface MemorySnapshot {
  /** V8 heap of the executor. */
  readonly node: MemoryUsage;
  /** JS heap of the run's page, or null when not asked for or unavailable. */
  readonly browser: MemoryUsage | null;
  /** The container's memory (cgroup v2, else v1), or null when unlimited or absent. */
  readonly cgroup: MemoryUsage | null;
  /** The highest level among the sources. */
  readonly pressure: MemoryPressureLevel;
  /** ISO 8601 UTC. */
  readonly ts: string;
}

export interface MemorySnapshotOptions {
  /** Include the browser heap (one CDP round trip). Default: true when the context has a page. */
  readonly browser?: boolean;
}

/** Memory pressure probes, so a long script can slow down before it is killed. */
export interface MemoryAPI {
  snapshot(options?: MemorySnapshotOptions): Promise<MemorySnapshot>;
  /** True when the current pressure is at or above `level`. */
  isAbove(level: MemoryPressureLevel): Promise<boolean>;
}

/** Everything a script receives (SPEC §2). Frozen. */
export interface QuarryContext<Job = unknown> {
  readonly job: Job;
  readonly run: RunMeta;
  /** A fresh page in a fresh BrowserContext for this run. */
  readonly page: Page;
  readonly browser: Browser;
  readonly browserContext: BrowserContext;
  readonly emit: EmitAPI;
  readonly storage: StorageAPI;
  readonly memory: MemoryAPI;
  /**
   * An HTTP client for this run (SPEC §13): the run's proxy, a cookie jar that
   * lives as long as the run, timeouts, retries. Its cookies are its own, not
   * the browser's.
   */
  readonly http: HttpClient;
}

/**
 * The context of a script that exports `options = { browser: false }` (SPEC §13):
 * {@link QuarryContext} without `page`, `browser` and `browserContext`, so a
 * script annotated with it cannot touch a browser that was never launched.
 */
export type HttpContext<Job = unknown> = Omit<QuarryContext<Job>, 'page' | 'browser' | 'browserContext'>;

/**
 * Per-script options, the `options` named export (SPEC §13). An object so later
 * options can join it; the executor refuses unknown keys at load time.
 */
export interface ScriptOptions {
  /** `false`: the script needs no browser; none is launched and its context is an {@link HttpContext}. Default `true`. */
  readonly browser?: boolean;
}

/** A script's default export. */
export type QuarryScript<Job = unknown> = (ctx: QuarryContext<Job>) => Promise<void> | void;
/** The default export of a script with `options = { browser: false }`. */
export type HttpScript<Job = unknown> = (ctx: HttpContext<Job>) => Promise<void> | void;

/** What `prepare` decides: run (optionally with a rewritten job) or skip the run. */
export type PrepareResult<Job = unknown> =
  | { readonly action: 'continue'; readonly job?: Job }
  | { readonly action: 'skip'; readonly reason?: string };

/** How the run is about to end, as `beforeTerminal` sees it. */
export type TerminalSignal = { readonly outcome: 'completed' } | { readonly outcome: 'error'; readonly error: unknown };

type MaybePromise<T> = T | Promise<T>;

/** Runs before any browser exists; a throw is an executor crash. */
export type PrepareHook<Job = unknown> = (job: Job, run: RunMeta) => MaybePromise<PrepareResult<Job>>;
/** Runs before the script; a throw enters the error path. */
export type BeforeRunHook<Job = unknown> = (ctx: QuarryContext<Job>) => MaybePromise<void>;
/** Runs after the script returned; a throw enters the error path. */
export type AfterRunHook<Job = unknown> = (ctx: QuarryContext<Job>) => MaybePromise<void>;
/** Runs on the error path; a throw is swallowed. */
export type OnErrorHook<Job = unknown> = (error: unknown, ctx: QuarryContext<Job>) => MaybePromise<void>;
/** Runs just before the executor emits the terminal event (emit still open); a throw is swallowed. */
export type BeforeTerminalHook<Job = unknown> = (signal: TerminalSignal, ctx: QuarryContext<Job>) => MaybePromise<void>;
/** Runs after the terminal event (emit closed); a throw is swallowed. */
export type CleanupHook<Job = unknown> = (ctx: QuarryContext<Job>) => MaybePromise<void>;

/** The optional named hook exports of a script. */
export interface QuarryHooks<Job = unknown> {
  readonly prepare?: PrepareHook<Job>;
  readonly beforeRun?: BeforeRunHook<Job>;
  readonly afterRun?: AfterRunHook<Job>;
  readonly onError?: OnErrorHook<Job>;
  readonly beforeTerminal?: BeforeTerminalHook<Job>;
  readonly cleanup?: CleanupHook<Job>;
}

/** The hook names, in the order they can run. */
export const HOOK_NAMES = ['prepare', 'beforeRun', 'afterRun', 'onError', 'beforeTerminal', 'cleanup'] as const satisfies readonly (keyof QuarryHooks)[];

/** A script module as the executor loads it. */
export type QuarryScriptModule<Job = unknown> = QuarryHooks<Job> & { readonly default: QuarryScript<Job>; readonly options?: ScriptOptions };

/** Frames the SDK writes: events, artifact chunks and sidecar files. */
export type OutboundFrame = AnyEventEnvelope | ArtifactChunkFrame | FileWriteFrame;

/**
 * The port between the SDK and whatever carries frames to the runtime (the
 * executor's stdout writer, or a fake in tests).
 */
export interface EmitSink {
  /**
   * Writes one frame; resolves once it is written. Never called concurrently.
   * Rejects with `SizeLimitError` (subject `frame`) when the frame is too large
   * to encode, in which case nothing was written; any other rejection means the
   * output is broken.
   */
  writeFrame(frame: OutboundFrame): Promise<void>;
  /**
   * Resolves with the runtime's `file_write_ack` for `writeId`, whether it
   * arrived before or after this call. Rejects if the ack channel closed first.
   */
  awaitFileWriteAck(writeId: number): Promise<FileWriteAckFrame>;
}
