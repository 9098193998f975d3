/**
 * Errors a script can meet through the SDK (SPEC §2). Each class says what went
 * wrong and what to do; context travels in readonly fields, the root cause in `cause`.
 *
 * `instanceof` works across copies of the SDK: a script may import its own copy
 * of `quarry/sdk` (or the original `@pithecene-io/quarry-sdk` name) while the
 * executor throws from another, so classes match on a brand, not on identity.
 */

const BRANDS = Symbol.for('quarry.sdk.error-brands');

type Branded = { readonly [BRANDS]?: readonly string[] };

/** Base of every SDK error. Match subclasses with `instanceof`. */
export abstract class QuarryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    // Record every class name from the concrete class up to QuarryError, so a
    // check against any ancestor succeeds in any copy of the SDK.
    const brands: string[] = [];
    for (let c: unknown = new.target; typeof c === 'function' && c !== Error; c = Object.getPrototypeOf(c)) {
      brands.push((c as { name: string }).name);
    }
    Object.defineProperty(this, BRANDS, { value: Object.freeze(brands), enumerable: false });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false;
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    const brands = (value as Branded)[BRANDS];
    return Array.isArray(brands) && brands.includes(this.name);
  }
}

/** The terminal event types: after one of them the run's emit channel is closed. */
export type TerminalEventType = 'run_error' | 'run_complete';

/**
 * An emit method or `storage.put` was called after `run_error` or `run_complete`.
 * What to do: emit everything before the terminal event; `cleanup` must not emit.
 */
export class TerminalEventError extends QuarryError {
  override readonly name = 'TerminalEventError';
  constructor(
    /** The method that was refused, e.g. `item` or `storage.put`. */
    readonly method: string,
    /** The terminal event that closed the run. */
    readonly terminal: TerminalEventType,
  ) {
    super(`${qualify(method)}() called after ${terminal}: the run is already terminated; emit before the terminal event`);
  }
}

/**
 * Writing to the runtime failed (the pipe broke or the runtime went away). The
 * first failure poisons the run's emit chain: that call and every later one
 * reject with this error, whose `cause` is the original failure. Nothing more
 * can reach the runtime; the run ends as a crash.
 */
export class SinkFailedError extends QuarryError {
  override readonly name = 'SinkFailedError';
  constructor(
    /** The method whose write failed or was refused because of the earlier failure. */
    readonly method: string,
    cause: unknown,
  ) {
    super(`${qualify(method)}() failed: the output to the runtime is broken (${describe(cause)})`, { cause });
  }
}

/** An argument to an emit method is not what the contract (SPEC §4) requires. Nothing was written. */
export class EmitValidationError extends QuarryError {
  override readonly name = 'EmitValidationError';
  constructor(
    readonly method: string,
    /** Which field is wrong and why. */
    readonly reason: string,
  ) {
    super(`${qualify(method)}(): ${reason}`);
  }
}

/**
 * Emit calls failed and the script never awaited them (SPEC §2): their events
 * are lost, so the run cannot end as a success. The executor ends it with
 * `run_error { error_type: 'emit_failed' }`; `runComplete()` called while
 * such a failure is pending writes that `run_error` instead and rejects with
 * this error. What to do: await every emit, or catch its rejection.
 */
export class EmitFailedError extends QuarryError {
  override readonly name = 'EmitFailedError';
  /** The `error_type` of the run_error this failure ends the run with. */
  static readonly ERROR_TYPE = 'emit_failed';
  constructor(
    /** How many unawaited calls failed. */
    readonly count: number,
    /** The first one: its method and its error. */
    readonly first: { readonly method: string; readonly error: unknown },
  ) {
    super(`${count} emit call${count === 1 ? '' : 's'} the script did not await failed, so ${count === 1 ? 'its event was' : 'their events were'} not stored; first: ${describe(first.error)}`, { cause: first.error });
  }
}

/** What a size limit applies to. */
export type SizeLimitSubject = 'artifact' | 'file' | 'frame';

/**
 * Something is larger than the protocol allows (an artifact over its ceiling, a
 * `storage.put` file over 8 MiB, or an event whose frame would exceed 16 MiB).
 * Nothing was written and the run goes on. What to do: split the data or store
 * it as an artifact.
 */
export class SizeLimitError extends QuarryError {
  override readonly name = 'SizeLimitError';
  constructor(
    readonly subject: SizeLimitSubject,
    readonly bytes: number,
    readonly limit: number,
    detail = '',
  ) {
    super(`${subject} of ${bytes} bytes exceeds the ${limit}-byte limit${detail ? ` (${detail})` : ''}`);
  }
}

/** A `storage.put` filename is empty or contains `/`, `\` or `..`. Nothing was written. */
export class StorageFilenameError extends QuarryError {
  override readonly name = 'StorageFilenameError';
  constructor(
    readonly filename: string,
    readonly reason: string,
  ) {
    super(`storage.put(): filename ${JSON.stringify(filename)} ${reason}; use a plain name such as "page-1.html"`);
  }
}

/**
 * The runtime could not store a `storage.put` file (its ack said `ok: false`),
 * or the ack channel closed first. The run goes on; retry or give up.
 */
export class StorageWriteError extends QuarryError {
  override readonly name = 'StorageWriteError';
  constructor(
    readonly filename: string,
    readonly writeId: number,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`storage.put(${JSON.stringify(filename)}) failed (write_id ${writeId}): ${reason}`, options);
  }
}

/** A proxy endpoint failed validation; `issues` lists every problem, field by field. */
export class ProxyValidationError extends QuarryError {
  override readonly name = 'ProxyValidationError';
  constructor(readonly issues: readonly { readonly field: string; readonly message: string }[], what = 'proxy endpoint') {
    super(`invalid ${what}: ${issues.map((i) => `${i.field}: ${i.message}`).join('; ')}`);
  }
}

/** `item` → `emit.item`; `storage.put` stays as it is. */
function qualify(method: string): string {
  return method.includes('.') ? method : `emit.${method}`;
}

/** A one-line description of any thrown value. */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
