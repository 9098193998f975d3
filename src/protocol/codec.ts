/**
 * The frame codec (SPEC §3): 4-byte big-endian length + msgpack payload.
 * Pure: turns values into bytes and bytes into values, with the size limits as
 * named constants. Streams, drain and backpressure live with the callers.
 */
import { Packr, Unpackr } from 'msgpackr';
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES } from './frames.js';

export type FrameErrorKind = 'truncated' | 'oversize' | 'malformed';

/**
 * Deepest nesting of maps and arrays a decoded frame may hold. Deeper values
 * would decode but overflow the stack later, when a record line is serialized.
 */
export const MAX_FRAME_NESTING = 512;

/** A fatal stream error: the run ends, nothing is resynchronised (SPEC §3). */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  constructor(
    readonly kind: FrameErrorKind,
    /** Byte offset in the stream where the bad frame starts. */
    readonly offset: number,
    message: string,
  ) {
    super(`${kind} frame at byte ${offset}: ${message}`);
  }
}

// Plain maps, no records, no extension types for our own values; `undefined`
// properties are omitted like JSON (SPEC §1.3) and undefined array slots become nil.
// `skipValues` exists in msgpackr but not in its typings.
const packr = new Packr({ useRecords: false, variableMapSize: true, skipValues: [undefined], encodeUndefinedAsNil: true } as ConstructorParameters<typeof Packr>[0]);
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** msgpack-encodes one value (no length prefix). */
export function encodePayload(value: unknown): Buffer {
  return packr.pack(value);
}

/**
 * Encodes one frame: length prefix + msgpack payload.
 * @throws RangeError when the frame would exceed {@link MAX_FRAME_BYTES}.
 */
export function encodeFrame(value: unknown): Buffer {
  const payload = packr.pack(value);
  const total = FRAME_HEADER_BYTES + payload.length;
  if (total > MAX_FRAME_BYTES) throw new RangeError(`frame of ${total} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`);
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32BE(payload.length, 0);
  payload.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Why a decoded value is not plain msgpack data (SPEC §1.3), or undefined when
 * it is: nil, booleans, numbers, strings, binary, arrays and maps, at most
 * {@link MAX_FRAME_NESTING} deep. msgpack's own timestamp (extension -1) is
 * accepted as a Date, which stores as its ISO string; msgpackr's private
 * extensions (bigint, Error, Set, RegExp, typed arrays, shared references,
 * undefined) are refused: nothing downstream can store them, and references
 * can build cycles.
 */
function unplain(v: unknown, depth: number): string | undefined {
  switch (typeof v) {
    case 'string':
    case 'number':
    case 'boolean':
      return undefined;
    case 'object':
      break;
    default:
      return `a ${typeof v} value (msgpack extension types are not part of the protocol)`;
  }
  if (v === null || v instanceof Uint8Array || v instanceof Date) return undefined;
  if (depth >= MAX_FRAME_NESTING) return `maps and arrays nested deeper than ${MAX_FRAME_NESTING}`;
  if (Array.isArray(v)) {
    for (const x of v) {
      const bad = unplain(x, depth + 1);
      if (bad) return bad;
    }
    return undefined;
  }
  if (Object.getPrototypeOf(v) !== Object.prototype) return `a ${(v as object).constructor?.name ?? 'non-plain'} object (msgpack extension types are not part of the protocol)`;
  for (const k in v) {
    const bad = unplain((v as Record<string, unknown>)[k], depth + 1);
    if (bad) return bad;
  }
  return undefined;
}

/** Unpacks one payload and checks it is plain data. @throws Error (msgpackr's, or ours) when it is not. */
function unpackPlain(buf: Buffer | Uint8Array, range?: { start: number; end: number }): unknown {
  const v: unknown = range ? unpackr.unpack(buf as Buffer, range) : unpackr.unpack(buf);
  const bad = unplain(v, 0);
  if (bad) throw new Error(`it holds ${bad}`);
  return v;
}

/**
 * Decodes one msgpack payload.
 * @throws Error if it is malformed, has trailing bytes or is not plain data (see {@link FrameDecoder}).
 */
export function decodePayload(payload: Uint8Array): unknown {
  return unpackPlain(payload);
}

/**
 * Incremental frame decoder. Feed it bytes in any split with {@link push};
 * call {@link end} when the stream closes. Frames come back decoded (msgpack
 * values, shape unchecked). Any error is final: the decoder refuses further input.
 */
export class FrameDecoder {
  #chunks: Buffer[] = [];
  /** Read position inside #chunks[0]. */
  #headOff = 0;
  #buffered = 0;
  /** Stream offset of the first buffered byte. */
  #offset = 0;
  #failed: FrameError | undefined;
  readonly #maxFrameBytes: number;

  constructor(maxFrameBytes: number = MAX_FRAME_BYTES) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes consumed as complete frames so far. */
  get offset(): number {
    return this.#offset;
  }

  /** The fatal error, once one was met (possibly deferred behind good frames by {@link push}). */
  get error(): FrameError | undefined {
    return this.#failed;
  }

  /** Bytes received but not yet a whole frame. */
  get pendingBytes(): number {
    return this.#buffered;
  }

  /**
   * Adds bytes and returns every frame now complete, in order. When a bad
   * frame follows good ones in the same bytes, the good ones are returned
   * first and the error is thrown by the next {@link push} or {@link end}.
   * @throws FrameError on an oversize length, or `malformed` for a payload that
   * is not msgpack or not plain data: an extension type other than msgpack's
   * timestamp, or maps/arrays nested deeper than {@link MAX_FRAME_NESTING}.
   */
  push(chunk: Buffer): unknown[] {
    if (this.#failed) throw this.#failed;
    const out: unknown[] = [];
    try {
      this.#decodeInto(chunk, out);
    } catch (err) {
      if (out.length === 0) throw err;
    }
    return out;
  }

  #decodeInto(chunk: Buffer, out: unknown[]): void {
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    while (this.#buffered >= FRAME_HEADER_BYTES) {
      const len = this.#peekLength();
      const total = FRAME_HEADER_BYTES + len;
      if (total > this.#maxFrameBytes) {
        throw this.#fail('oversize', `declared length ${len} + ${FRAME_HEADER_BYTES} exceeds the ${this.#maxFrameBytes}-byte limit`);
      }
      if (this.#buffered < total) break;
      const first = this.#chunks[0]!;
      try {
        if (first.length - this.#headOff >= total) {
          // The common case: the frame lies inside one read; decode it in place, no copy, no view.
          out.push(unpackPlain(first, { start: this.#headOff + FRAME_HEADER_BYTES, end: this.#headOff + total }));
          this.#advance(total);
        } else {
          const frame = this.#take(total);
          out.push(unpackPlain(frame.subarray(FRAME_HEADER_BYTES)));
        }
      } catch (err) {
        throw this.#fail('malformed', `payload of ${len} bytes is not valid msgpack (${(err as Error).message})`);
      }
      this.#offset += total;
    }
  }

  /**
   * Declares the end of the stream.
   * @throws FrameError('truncated') when a partial frame is left over.
   */
  end(): void {
    if (this.#failed) throw this.#failed;
    if (this.#buffered > 0) {
      const detail = this.#buffered < FRAME_HEADER_BYTES
        ? `${this.#buffered} byte(s) of a length prefix`
        : `${this.#buffered - FRAME_HEADER_BYTES} of ${this.#peekLength()} payload bytes`;
      throw this.#fail('truncated', `stream ended inside a frame: ${detail}`);
    }
  }

  #fail(kind: FrameErrorKind, message: string): FrameError {
    this.#failed = new FrameError(kind, this.#offset, message);
    this.#chunks = [];
    return this.#failed;
  }

  #peekLength(): number {
    const first = this.#chunks[0]!;
    if (first.length - this.#headOff >= FRAME_HEADER_BYTES) return first.readUInt32BE(this.#headOff);
    const head = Buffer.alloc(FRAME_HEADER_BYTES);
    let filled = 0;
    let off = this.#headOff;
    for (const c of this.#chunks) {
      filled += c.copy(head, filled, off, Math.min(c.length, off + FRAME_HEADER_BYTES - filled));
      off = 0;
      if (filled === FRAME_HEADER_BYTES) break;
    }
    return head.readUInt32BE(0);
  }

  /** Drops n bytes from the front of the buffered chunks. */
  #advance(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const c = this.#chunks[0]!;
      const avail = c.length - this.#headOff;
      if (avail > n) {
        this.#headOff += n;
        return;
      }
      n -= avail;
      this.#chunks.shift();
      this.#headOff = 0;
    }
  }

  /** Removes exactly n buffered bytes that span several chunks, as one copied buffer. */
  #take(n: number): Buffer {
    const frame = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[0]!;
      const want = Math.min(n - filled, c.length - this.#headOff);
      c.copy(frame, filled, this.#headOff, this.#headOff + want);
      filled += want;
      this.#advance(want);
    }
    return frame;
  }
}
