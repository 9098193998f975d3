/**
 * `createEmitAPI`: the emit methods of SPEC §2 over an {@link EmitSink}.
 *
 * Invariants: frames reach the sink in call order (one chain per run); `seq`
 * is 1, 2, 3 … with no gaps, assigned at write; every envelope carries
 * `contract_version`, a unique `event_id`, `ts` in ISO UTC, `attempt`, and
 * `job_id`/`parent_run_id` only when known (absent fields are omitted).
 */
import { randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulid';
import {
  checkPayload,
  DEFAULT_MAX_ARTIFACT_BYTES,
  LOG_LEVELS,
  MAX_CHUNK_BYTES,
  type EventType,
  type LogLevel,
  type PayloadByType,
  toWireValue,
  WireValueError,
} from '../protocol/index.js';
import { EmitChain, type EmitFailure } from './emit-chain.js';
import { EmitFailedError, EmitValidationError, SizeLimitError, type TerminalEventType } from './errors.js';
import type { ArtifactId, BinaryData, EmitAPI, EmitSink, RunMeta } from './types.js';

/** Options of {@link createEmitAPI}. */
export interface EmitOptions {
  /** Clock for `ts`. Default: the system clock. */
  readonly now?: () => Date;
  /** Id source for `event_id` and `artifact_id`. Default: monotonic ULIDs. */
  readonly newId?: () => string;
  /** Largest artifact accepted, in bytes. Default: 1 GiB (SPEC §3). */
  readonly maxArtifactBytes?: number;
  /** Raw bytes per `artifact_chunk` frame. Default and maximum: 8 MiB. */
  readonly chunkBytes?: number;
}

const chains = new WeakMap<EmitAPI, EmitChain>();

/** The chain behind an emit API made by {@link createEmitAPI}; storage shares it. */
/** @internal */
export function chainOf(emit: EmitAPI): EmitChain {
  const chain = chains.get(emit);
  if (!chain) throw new TypeError('expected an emit API made by createEmitAPI()');
  return chain;
}

/**
 * Resolves once every emit and `storage.put` write called so far on `emit` has
 * settled. For hosts: the executor waits on it before deciding the outcome.
 */
export function emitSettled(emit: EmitAPI): Promise<void> {
  return chainOf(emit).settled();
}

/**
 * Emit calls on `emit` that failed while the script never observed their
 * promise (no `await`, `then` or `catch`), in failure order. For hosts: the
 * executor ends a run that has any as `emit_failed` (SPEC §2).
 */
export function unobservedEmitFailures(emit: EmitAPI): readonly EmitFailure[] {
  return chainOf(emit).unobservedFailures();
}

/** The error a run ends with when {@link unobservedEmitFailures} is not empty, or undefined. */
export function emitFailedError(emit: EmitAPI): EmitFailedError | undefined {
  const lost = unobservedEmitFailures(emit);
  return lost.length === 0 ? undefined : new EmitFailedError(lost.length, lost[0]!);
}

/** Bytes of a BinaryData value, without copying bytes that already are bytes. */
export function toBytes(data: BinaryData): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

const isBinary = (v: unknown): v is BinaryData => typeof v === 'string' || v instanceof Uint8Array;

/**
 * Creates the emit API of one run.
 *
 * @param sink where frames go (the executor's stdout writer, or a fake).
 * @param run the run's identity, copied into every envelope.
 * @throws RangeError when an option is out of range.
 * @see SPEC §2 (emit), §3 (artifact chunks), §4 (envelope)
 */
export function createEmitAPI(sink: EmitSink, run: RunMeta, options: EmitOptions = {}): EmitAPI {
  const maxArtifactBytes = options.maxArtifactBytes ?? DEFAULT_MAX_ARTIFACT_BYTES;
  const chunkBytes = options.chunkBytes ?? MAX_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
    throw new RangeError(`chunkBytes must be an integer in 1..${MAX_CHUNK_BYTES}, got ${String(chunkBytes)}`);
  }
  if (!Number.isInteger(maxArtifactBytes) || maxArtifactBytes < 0) {
    throw new RangeError(`maxArtifactBytes must be a non-negative integer, got ${String(maxArtifactBytes)}`);
  }
  const newId = options.newId ?? monotonicFactory(pooledRandom());
  const chain = new EmitChain(sink, run, { now: options.now ?? (() => new Date()), newId });

  /**
   * Takes the payload's wire form now (a script may mutate its object after
   * an emit it did not await), validates it, then queues the event. `seq` is
   * assigned at write, so a call that fails leaves no gap. Validation failures
   * never touch the chain.
   */
  function emitEvent<T extends EventType>(method: string, type: T, payload: PayloadByType[T]): Promise<void> {
    let wire: PayloadByType[T];
    try {
      wire = checkedWire(method, type, payload);
    } catch (err) {
      return chain.track(method, Promise.reject(err));
    }
    return chain.track(method, chain.enqueue(method, () => chain.writeEvent(method, type, wire)));
  }

  function emitTerminal<T extends TerminalEventType>(method: string, type: T, payload: PayloadByType[T]): Promise<void> {
    let wire: PayloadByType[T];
    try {
      wire = checkedWire(method, type, payload);
    } catch (err) {
      return chain.track(method, Promise.reject(err));
    }
    const undo = chain.claimTerminal(type);
    const written = chain.enqueue(method, async () => {
      // Events lost by calls nobody awaited: the run cannot complete as a success.
      const lost = type === 'run_complete' ? emitFailedError(emit) : undefined;
      if (lost === undefined) return chain.writeEvent(method, type, wire);
      await chain.writeEvent(method, 'run_error', { error_type: EmitFailedError.ERROR_TYPE, message: lost.message });
      throw lost;
    });
    return chain.track(method, written.catch((err: unknown) => {
      // A terminal frame too large to encode wrote nothing: the run stays open so a smaller one can follow.
      if (err instanceof SizeLimitError) undo();
      throw err;
    }));
  }

  /** The call's payload in wire form (SPEC §1.3: a Date becomes its ISO string), checked against §4. */
  function checkedWire<T extends EventType>(method: string, type: T, payload: PayloadByType[T]): PayloadByType[T] {
    chain.assertOpen(method);
    let wire: PayloadByType[T];
    try {
      wire = toWireValue(payload) as PayloadByType[T];
    } catch (err) {
      if (err instanceof WireValueError) throw new EmitValidationError(method, err.message);
      throw err;
    }
    const reason = checkPayload(type, wire);
    if (reason) throw new EmitValidationError(method, reason);
    return wire;
  }

  function log(level: LogLevel, message: string, fields: Record<string, unknown> | undefined, method: string): Promise<void> {
    if (!LOG_LEVELS.includes(level)) {
      return chain.track(method, Promise.reject(new EmitValidationError(method, `level must be one of ${LOG_LEVELS.join('|')}, got ${JSON.stringify(level)}`)));
    }
    return emitEvent(method, 'log', { level, message, ...(fields !== undefined ? { fields } : {}) });
  }

  const emit: EmitAPI = {
    item(o) {
      return emitEvent('item', 'item', { item_type: o?.item_type, data: o?.data });
    },

    artifact(o) {
      const method = 'artifact';
      let bytes: Uint8Array;
      let artifactId: ArtifactId;
      try {
        chain.assertOpen(method);
        if (typeof o?.name !== 'string' || o.name === '') throw new EmitValidationError(method, 'name must be a non-empty string');
        if (typeof o.content_type !== 'string' || o.content_type === '') throw new EmitValidationError(method, 'content_type must be a non-empty string');
        if (!isBinary(o.data)) throw new EmitValidationError(method, 'data must be a Uint8Array, Buffer or string');
        bytes = toBytes(o.data);
        if (bytes.byteLength > maxArtifactBytes) throw new SizeLimitError('artifact', bytes.byteLength, maxArtifactBytes, `artifact ${JSON.stringify(o.name)}`);
        artifactId = newId() as ArtifactId;
      } catch (err) {
        return chain.track(method, Promise.reject(err));
      }
      const { name, content_type } = o;
      return chain.track(method, chain.enqueue(method, async () => {
        // Bytes first, commit record last (SPEC §3): an artifact exists only once its event is written.
        let seq = 1;
        for (let off = 0; off < bytes.byteLength || seq === 1; off += chunkBytes, seq++) {
          const end = Math.min(off + chunkBytes, bytes.byteLength);
          await chain.write(method, { type: 'artifact_chunk', artifact_id: artifactId, seq, is_last: end >= bytes.byteLength, data: bytes.subarray(off, end) });
        }
        await chain.writeEvent(method, 'artifact', { artifact_id: artifactId, name, content_type, size_bytes: bytes.byteLength });
        return artifactId;
      }));
    },

    checkpoint(o) {
      return emitEvent('checkpoint', 'checkpoint', { checkpoint_id: o?.checkpoint_id, ...(o?.note !== undefined ? { note: o.note } : {}) });
    },

    enqueue(o) {
      return emitEvent('enqueue', 'enqueue', {
        target: o?.target,
        params: o?.params,
        ...(o?.source !== undefined ? { source: o.source } : {}),
        ...(o?.category !== undefined ? { category: o.category } : {}),
      });
    },

    rotateProxy(o = {}) {
      return emitEvent('rotateProxy', 'rotate_proxy', o.reason !== undefined ? { reason: o.reason } : {});
    },

    log(o) {
      return log(o?.level, o?.message, o?.fields, 'log');
    },
    debug(message, fields) {
      return log('debug', message, fields, 'debug');
    },
    info(message, fields) {
      return log('info', message, fields, 'info');
    },
    warn(message, fields) {
      return log('warn', message, fields, 'warn');
    },
    error(message, fields) {
      return log('error', message, fields, 'error');
    },

    runError(o) {
      return emitTerminal('runError', 'run_error', {
        error_type: o?.error_type,
        message: o?.message,
        ...(o?.stack !== undefined ? { stack: o.stack } : {}),
      });
    },

    runComplete(o = {}) {
      return emitTerminal('runComplete', 'run_complete', o.summary !== undefined ? { summary: o.summary } : {});
    },
  };
  Object.freeze(emit);
  chains.set(emit, chain);
  return emit;
}

/** Random bytes drawn per refill of {@link pooledRandom}. */
const RANDOM_POOL_BYTES = 4096;

/**
 * The ULID factory's PRNG (a fraction in [0, 1) from one crypto-random byte),
 * served from a pool refilled 4 KiB at a time: left to find its own, the
 * factory calls `crypto.getRandomValues` once per character, 16 calls for
 * each millisecond of a tight emit loop, a tenth of the executor's CPU there
 * (docs/benchmarks.md, "Emit throughput by wall clock").
 */
function pooledRandom(): () => number {
  const pool = Buffer.allocUnsafe(RANDOM_POOL_BYTES);
  let next = RANDOM_POOL_BYTES;
  return () => {
    if (next === RANDOM_POOL_BYTES) {
      randomFillSync(pool);
      next = 0;
    }
    return pool[next++]! / 256;
  };
}
