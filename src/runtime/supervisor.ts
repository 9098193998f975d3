/**
 * The run supervisor and ingestion loop (SPEC §3, §5): spawns the executor,
 * sends the run request, reads frames one chunk at a time, checks every event
 * against the run, and hands events to the policy and bytes to the writer.
 *
 * Invariant: the next chunk is read from the pipe only after every frame of the
 * previous one was taken, so a slow policy or storage backpressures the
 * executor through the pipe and nothing queues without bound here.
 */
import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { encodeFrame, FrameDecoder, FrameError } from '../protocol/codec.js';
import { checkEventInRun, TERMINAL_EVENT_TYPES, type AnyEventEnvelope } from '../protocol/envelope.js';
import { FRAME_FD } from '../protocol/frame-fd.js';
import { DEFAULT_MAX_ARTIFACT_BYTES, FrameShapeError, isBrowserRequestFrame, isHelloFrame, toExecutorFrame, type BrowserEndpointFrame, type ArtifactChunkFrame, type FileWriteAckFrame, type FileWriteFrame, type ProxyEndpointRedacted, type RunRequest, type RunResultFrame } from '../protocol/frames.js';
import { checkStorageFilename } from '../sdk/storage.js';
import { ArtifactProtocolError, type RunWriter } from '../storage/run-writer.js';
import { EXECUTOR_EXIT, type Observation } from './outcome.js';
import { type IngestionPolicy, PolicyFailureError } from './policies/policy.js';
import { describeStorageFailure } from './policies/storage-failure.js';
import { frameBytes } from './frame-source.js';
import { startExecutor, type StartedExecutor } from './executor-process.js';
import type { SharedBrowser } from './shared-browser.js';
import type { Slot } from './slot-pool.js';

/** How long the executor gets to finish after SIGTERM before SIGKILL. */
export const EXECUTOR_STOP_GRACE_MS = 5_000;
/**
 * How long the executor may linger after closing its frame stream before it is killed. A
 * node process past its exit handlers can take seconds more to end on a loaded machine
 * (tearing down its loader and platform threads); one that ended its stream cleanly after
 * its result keeps that result when killed (docs/contracts/run.md, "An executor slow to exit").
 */
export const EXIT_AFTER_EOF_MS = 10_000;
/** Bytes of executor stderr kept for the report. */
const STDERR_TAIL_BYTES = 64 * 1024;

export interface SuperviseOptions {
  /** Node binary and argv of the executor entry (e.g. `[dist/executor/main.js, script]`). */
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  request: RunRequest;
  policy: IngestionPolicy;
  writer: RunWriter;
  /** Aborted with reason 'SIGINT' | 'SIGTERM' when the runtime is interrupted. */
  signal?: AbortSignal;
  /** Executor stderr, as it arrives (already kept in the tail for the report). */
  onStderr?: (chunk: Buffer) => void;
  /** Every valid event, before the policy sees it (progress, fan-out: the scheduler sees dropped events too). */
  onEvent?: (event: AnyEventEnvelope) => void;
  maxArtifactBytes?: number;
  /** Past this many ms after the request is sent the executor is stopped (SIGTERM, then SIGKILL) and the run has timed out. */
  timeoutMs?: number;
  /** An executor already started with `command` and `args` (executor-process.ts), used instead of spawning one. */
  started?: StartedExecutor;
  /**
   * A run slot (slot-pool.ts) to run in instead: its first run sends the request line with
   * `slots: true`, later ones a `run_request` frame. The run ends at its `run_result` when the
   * slot said hello, and the slot lives on; otherwise at the end of the process, as without.
   */
  slot?: Slot;
  /**
   * Called once with `slot`, as soon as the run no longer needs it (its `run_result` is in, or its
   * process ended), with whether it may serve another run: before the run's segments are synced and
   * published, so the next run starts while this one's storage waits for the disk. Without it the
   * caller gives the slot back after `supervise` returns (`slotReusable`).
   */
  onSlotDone?: (reusable: boolean) => void;
  /**
   * The invocation's shared browser (SPEC §10 browser reuse), offered to a slot's run: the
   * request carries `shared_browser: true` and a `browser_request` frame is answered with its endpoint.
   */
  browser?: SharedBrowser;
}

export interface SuperviseResult {
  observation: Observation;
  eventCount: number;
  firstSeq: number | null;
  lastSeq: number | null;
  contractVersion: string | undefined;
  committedArtifacts: Set<string>;
  terminalSummary?: Record<string, unknown>;
  runResult?: RunResultFrame;
  proxyUsed?: ProxyEndpointRedacted;
  ipcDecodeErrors: number;
  launched: boolean;
  stderrTail: string;
  filesWritten: number;
  /** With `slot`: the slot may serve another run (it said hello, the run ended at its run_result, nothing went wrong). */
  slotReusable?: boolean;
  /** The shared browser's launch this run was given, if it asked for one. */
  browserGeneration?: number;
}

/** Raised inside the loop to stop reading: a fatal stream, version or policy condition. */
class Stop extends Error {
  constructor(readonly kind: 'stream' | 'version' | 'policy', message: string) {
    super(message);
  }
}

/**
 * Runs one executor to its end and returns what happened. Never throws for
 * anything the executor or the stream does; those become the observation.
 */
export async function supervise(opts: SuperviseOptions): Promise<SuperviseResult> {
  const { policy, writer } = opts;
  let request = opts.request;
  const maxArtifact = opts.maxArtifactBytes ?? DEFAULT_MAX_ARTIFACT_BYTES;
  const res: SuperviseResult = {
    observation: { exitCode: null, exitSignal: null },
    eventCount: 0,
    firstSeq: null,
    lastSeq: null,
    contractVersion: undefined,
    committedArtifacts: new Set(),
    ipcDecodeErrors: 0,
    launched: false,
    stderrTail: '',
    filesWritten: 0,
  };
  const obs = res.observation;
  let stderrBuf = Buffer.alloc(0);

  // A missing executor entry would make node exit 1, which reads as a script error.
  const entry = opts.args[0];
  const slot = opts.slot;
  if (!opts.started && !slot && entry !== undefined && !existsSync(entry)) {
    obs.launchError = `executor entry ${entry} does not exist (run the build: npm run build)`;
    await policy.close().catch(() => undefined);
    return res;
  }
  // Frames get their own pipe on FRAME_FD if the executor takes it (frame-source.ts), so raw writes to fd 1
  // (fs.writeSync(1, …), children with inherited stdio) cannot corrupt them.
  const started = slot?.started ?? opts.started ?? startExecutor(opts.command, opts.args, opts.env);
  started.taken = true;
  if (!started.child) {
    obs.launchError = started.launchError;
    return res;
  }
  const child = started.child;
  /** Set once the run ended at its run_result in a live slot: the slot's later end is another run's. */
  let leftSlot = false;
  const exited = started.ended.then(() => {
    if (leftSlot) return;
    res.launched = started.state.launched;
    obs.exitCode = started.state.exitCode;
    obs.exitSignal = started.state.exitSignal;
    if (started.state.error !== undefined && !started.state.launched) obs.launchError = started.state.error;
  });
  const onLog = (chunk: Buffer): void => {
    stderrBuf = Buffer.concat([stderrBuf, chunk]);
    if (stderrBuf.length > STDERR_TAIL_BYTES) stderrBuf = stderrBuf.subarray(stderrBuf.length - STDERR_TAIL_BYTES);
    opts.onStderr?.(chunk);
  };
  if (slot) slot.onStderr = onLog;
  else child.stderr!.on('data', onLog);

  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    const reason = opts.signal?.reason;
    obs.interrupted = reason === 'SIGINT' ? 'SIGINT' : 'SIGTERM';
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), EXECUTOR_STOP_GRACE_MS);
    killTimer.unref();
  };
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });

  // --run-timeout (SPEC §5): hooks included, so it counts from the request (sent right after spawn, or after the claim for an executor started early) to exit. SIGTERM lets the
  // executor close its browser and delete its profile; SIGKILL follows if it does not.
  const runTimer =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          obs.timedOutMs = opts.timeoutMs;
          child.kill('SIGTERM');
          killTimer ??= setTimeout(() => child.kill('SIGKILL'), EXECUTOR_STOP_GRACE_MS);
          killTimer.unref();
        }, opts.timeoutMs);
  runTimer?.unref();

  // A slot's run may use the invocation's browser (SPEC §10): the executor asks for it when its script needs one.
  if (slot && opts.browser) request = { ...request, shared_browser: true };
  // A slot's first run asks for slots in its request line; its later runs (once it said hello) are frames.
  if (slot?.requested) child.stdin!.write(encodeFrame({ type: 'run_request', request }));
  else child.stdin!.write(`${JSON.stringify(slot ? { ...request, slots: true } : request)}\n`);
  if (slot) {
    slot.requested = true;
    slot.runs++;
  }

  const decoder = new FrameDecoder();
  let terminal = false;
  let frameIndex = 0;

  const sendAck = (ack: FileWriteAckFrame | BrowserEndpointFrame): void => {
    if (child.stdin!.writable) child.stdin!.write(encodeFrame(ack));
  };

  const committed = (e: AnyEventEnvelope): void => {
    if (e.type === 'artifact') res.committedArtifacts.add(e.payload.artifact_id);
  };

  /** A `browser_request`: the shared browser's endpoint, launched now if no run needed it yet. */
  const onBrowserRequest = async (): Promise<void> => {
    const browser = opts.browser;
    if (!browser) return sendAck({ type: 'browser_endpoint', error: 'this runtime offered no shared browser' });
    try {
      const lease = await browser.lease();
      res.browserGeneration = lease.generation;
      sendAck({ type: 'browser_endpoint', ws_endpoint: lease.wsEndpoint });
    } catch (err) {
      sendAck({ type: 'browser_endpoint', error: (err as Error).message });
    }
  };

  const policyStop = (err: unknown): Stop => new Stop('policy', err instanceof PolicyFailureError ? err.message : `policy: ${describeStorageFailure(err)}`);
  let knownContract: string | undefined;

  /** Checks and ingests one event; returns a promise only when the policy makes us wait (the hot path stays synchronous). */
  const onEventFrame = (e: AnyEventEnvelope): Promise<void> | undefined => {
    if (terminal) throw new Stop('stream', `event seq ${e.seq} (${e.type}) after the terminal event`);
    const refused = checkEventInRun(e, { run_id: request.run_id, attempt: request.attempt, lastSeq: res.lastSeq, contractVersion: knownContract });
    if (refused) throw new Stop(refused.kind, refused.message);
    knownContract = e.contract_version;
    if (e.type === 'artifact') {
      const st = writer.artifactState(e.payload.artifact_id);
      if (!st?.complete) throw new Stop('stream', `artifact ${e.payload.artifact_id} committed before its last chunk arrived`);
      if (st.bytes !== e.payload.size_bytes) throw new Stop('stream', `artifact ${e.payload.artifact_id} committed with size_bytes ${e.payload.size_bytes} but ${st.bytes} bytes arrived`);
    }
    res.contractVersion ??= e.contract_version;
    res.firstSeq ??= e.seq;
    res.lastSeq = e.seq;
    res.eventCount++;
    if (TERMINAL_EVENT_TYPES.has(e.type)) {
      terminal = true;
      if (e.type === 'run_complete') {
        obs.terminal = { type: 'run_complete' };
        if (e.payload.summary) res.terminalSummary = e.payload.summary;
      } else if (e.type === 'run_error') {
        obs.terminal = { type: 'run_error', message: e.payload.message, errorType: e.payload.error_type };
      }
    }
    opts.onEvent?.(e);
    let waiting: Promise<void> | void;
    try {
      waiting = policy.ingest(e);
    } catch (err) {
      throw policyStop(err);
    }
    // No closure per event on the synchronous path: a million of them cost a second of CPU.
    if (waiting) {
      return waiting.then(
        () => committed(e),
        (err: unknown) => {
          throw policyStop(err);
        },
      );
    }
    committed(e);
    return undefined;
  };

  const onChunk = async (f: ArtifactChunkFrame): Promise<void> => {
    if (terminal) throw new Stop('stream', `artifact_chunk for ${f.artifact_id} after the terminal event`);
    const before = writer.artifactState(f.artifact_id)?.bytes ?? 0;
    if (before + f.data.byteLength > maxArtifact) throw new Stop('stream', `artifact ${f.artifact_id} exceeds the ${maxArtifact}-byte limit`);
    try {
      await writer.artifactChunk(f.artifact_id, f.seq, f.is_last, f.data);
    } catch (err) {
      if (err instanceof ArtifactProtocolError) throw new Stop('stream', err.message);
      throw new Stop('policy', `writing artifact ${f.artifact_id}: ${describeStorageFailure(err)}`);
    }
  };

  const onFileWrite = async (f: FileWriteFrame): Promise<void> => {
    const reply = (ok: boolean, error?: string): void => {
      if (f.write_id !== 0) sendAck(error === undefined ? { type: 'file_write_ack', write_id: f.write_id, ok } : { type: 'file_write_ack', write_id: f.write_id, ok, error });
    };
    if (terminal) return reply(false, 'run already terminated');
    const bad = checkSidecarFilename(f.filename);
    if (bad) return reply(false, bad);
    try {
      await writer.putFile(f.filename, f.content_type, f.data);
      res.filesWritten++;
      reply(true);
    } catch (err) {
      // The run goes on (SPEC §2): the script's storage.put rejects with this message.
      reply(false, describeStorageFailure(err));
    }
  };

  const handle = (raw: unknown): Promise<void> | undefined => {
    // A slot's hello is its first frame, before the first run's; nowhere else is it a frame.
    if (slot && !slot.hello && frameIndex === 0 && slot.runs === 1 && isHelloFrame(raw)) {
      slot.saidHello();
      return undefined;
    }
    if (opts.browser && isBrowserRequestFrame(raw)) {
      if (terminal) throw new Stop('stream', 'a browser_request frame after the terminal event');
      return onBrowserRequest();
    }
    frameIndex++;
    let frame;
    try {
      frame = toExecutorFrame(raw);
    } catch (err) {
      if (err instanceof FrameShapeError) {
        res.ipcDecodeErrors++;
        throw new Stop('stream', `malformed frame #${frameIndex}: ${err.message}`);
      }
      throw err;
    }
    switch (frame.type) {
      case 'artifact_chunk':
        return onChunk(frame);
      case 'file_write':
        return onFileWrite(frame);
      case 'run_result':
        if (!res.runResult) {
          res.runResult = frame;
          obs.resultStatus = frame.outcome.status;
          if (frame.outcome.message) obs.resultMessage = frame.outcome.message;
          if (frame.proxy_used) res.proxyUsed = redact(frame.proxy_used);
        }
        return undefined;
      default:
        return onEventFrame(frame);
    }
  };

  let stopped: Stop | undefined;
  /** A slot that said hello ends its run at run_result; the process goes on. */
  const slotRunDone = (): boolean => slot?.hello === true && res.runResult !== undefined;
  const stream = slot ? slot.frames(onLog) : undefined;
  const offered = stream ? undefined : child.stdio[FRAME_FD] as Readable | null | undefined;
  offered?.on('error', () => undefined); // the executor's exit and the stream's end tell what happened
  // Without a slot the stream is this run's alone: closed when the loop leaves, as a for-await would.
  const chunks = stream ? undefined : frameBytes({ stdout: child.stdout!, offered: offered ?? undefined, onStray: onLog });
  try {
    for (;;) {
      let frames: unknown[] | undefined;
      try {
        if (stream) {
          frames = await stream.next();
        } else {
          const next = await chunks!.next();
          frames = next.done ? undefined : decoder.push(next.value);
        }
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
        res.ipcDecodeErrors++;
        throw new Stop('stream', err.message);
      }
      if (frames === undefined) break;
      for (const raw of frames) {
        if (slotRunDone()) throw new Stop('stream', `a ${JSON.stringify((raw as { type?: unknown } | null)?.type)} frame after run_result`);
        const waiting = handle(raw);
        if (waiting) await waiting;
      }
      if (policy.beforeNextRead) {
        try {
          await policy.beforeNextRead();
        } catch (err) {
          throw new Stop('policy', err instanceof PolicyFailureError ? err.message : `policy: ${describeStorageFailure(err)}`);
        }
      }
      const deferred = stream ? stream.error : decoder.error;
      if (deferred) {
        res.ipcDecodeErrors++;
        throw new Stop('stream', deferred.message);
      }
      if (slotRunDone()) break;
    }
    if (!stream && !slotRunDone()) {
      try {
        decoder.end();
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
        res.ipcDecodeErrors++;
        throw new Stop('stream', err.message);
      }
    }
  } catch (err) {
    stopped = err instanceof Stop ? err : new Stop('stream', `reading executor output: ${(err as Error).message}`);
  }
  await chunks?.return(undefined).catch(() => undefined);

  if (stopped) {
    if (stopped.kind === 'policy') obs.policyFailure = stopped.message;
    else if (stopped.kind === 'version') obs.versionMismatch = stopped.message;
    else obs.streamError = stopped.message;
    child.kill('SIGKILL');
  }
  // Nothing more of the run can arrive: its open segments are synced and published (the policy's close)
  // while the executor exits, instead of after. Their `fsync`s and an executor's exit both take a while.
  const closing = (async (): Promise<{ error: unknown } | undefined> => {
    await writer.abortOpenArtifacts();
    try {
      await policy.close();
      return undefined;
    } catch (error) {
      return { error };
    }
  })();
  closing.catch(() => undefined); // awaited below, after the executor's end
  const slotResult = !stopped && slotRunDone() && obs.timedOutMs === undefined && obs.interrupted === undefined ? res.runResult : undefined;
  if (slotResult) {
    // The run ended at its run_result in a live slot: that result is authoritative (SPEC §10), and
    // the slot, handed to the next run below, may die in that run without it concerning this one.
    leftSlot = true;
    if (runTimer) clearTimeout(runTimer);
    opts.signal?.removeEventListener('abort', onAbort);
    slot!.onStderr = undefined;
    res.launched = true;
    obs.exitCode = exitCodeOfResult(slotResult);
    res.slotReusable = slotResult.outcome.status !== 'crash';
  } else {
    // The frame stream closed: the executor should exit now; one that lingers is killed. After a clean end
    // (terminal event, run_result, no stream fault) nothing of the run is left to arrive: the kill is noted
    // so the run keeps the outcome its result states instead of reading as a crash.
    const cleanEnd = !stopped && terminal && res.runResult !== undefined;
    const lingering = setTimeout(() => {
      if (cleanEnd) obs.killedAfterResultMs = EXIT_AFTER_EOF_MS;
      child.kill('SIGKILL');
    }, EXIT_AFTER_EOF_MS);
    lingering.unref();
    await exited;
    clearTimeout(lingering);
    if (runTimer) clearTimeout(runTimer);
    if (killTimer) clearTimeout(killTimer);
    opts.signal?.removeEventListener('abort', onAbort);
    child.stdin!.destroy();
    if (slot) {
      slot.onStderr = undefined;
      res.slotReusable = false;
      // A slot that said hello and wrote run_result before its process ended: the result stands while it lived.
      const r = slot.hello ? res.runResult : undefined;
      if (r && !stopped && obs.timedOutMs === undefined && obs.interrupted === undefined && obs.exitSignal === null) {
        obs.exitCode = exitCodeOfResult(r);
      }
    }
  }

  // Chromium died while this run used it (SPEC §10): the run was in flight on a crashed browser.
  if (res.browserGeneration !== undefined && opts.browser?.diedSince(res.browserGeneration)) {
    obs.browserLost = 'the shared browser died during the run';
    res.slotReusable = false;
  }
  // The executor is done with this run: its slot can serve the next one while this run's storage settles.
  if (slot) opts.onSlotDone?.(res.slotReusable === true);
  const closeFailure = await closing;
  if (closeFailure) obs.policyFailure ??= closeFailure.error instanceof Error ? closeFailure.error.message : String(closeFailure.error);
  res.stderrTail = stderrBuf.toString('utf8');
  return res;
}

/**
 * The exit code a one-run executor would have exited with for this result
 * (SPEC §3): a slot's run_result stands in for it while the slot lives.
 */
function exitCodeOfResult(r: RunResultFrame): number {
  const { status, error_type } = r.outcome;
  if (status === 'completed') return EXECUTOR_EXIT.completed;
  if (status === 'error') return EXECUTOR_EXIT.scriptError;
  return error_type === 'invalid_input' ? EXECUTOR_EXIT.invalidInput : EXECUTOR_EXIT.crash;
}

/** Why a sidecar filename is refused: the SDK's rule (SPEC §2), plus the suffix kept for metadata. */
export function checkSidecarFilename(name: string): string | undefined {
  const bad = checkStorageFilename(name);
  if (bad) return `filename ${JSON.stringify(name)} ${bad}`;
  if (name.endsWith('.meta.json')) return `filename ${JSON.stringify(name)} must not end in .meta.json (reserved for metadata)`;
  return undefined;
}

function redact(p: ProxyEndpointRedacted & { password?: unknown }): ProxyEndpointRedacted {
  const out: ProxyEndpointRedacted = { protocol: p.protocol, host: p.host, port: p.port };
  if (p.username) out.username = p.username;
  return out;
}
