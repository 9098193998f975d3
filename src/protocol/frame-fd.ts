/**
 * Which file descriptor carries the executor's frames (SPEC §3: stray output
 * must not corrupt the frame stream).
 *
 * `process.stdout` can be diverted inside the executor, but writes that bypass
 * it — `fs.writeSync(1, …)`, a child process spawned with inherited stdio —
 * land on fd 1 whatever we do. So the runtime offers a separate pipe on
 * {@link FRAME_FD} (named in the environment by {@link FRAME_FD_ENV}), and an
 * executor that takes it says so with one handshake frame as the very first
 * bytes of its stdout; from then on its stdout is plain log output and its
 * frames travel on the offered fd. An executor that does not know the offer
 * (a custom `--executor`, an older one) just writes frames on stdout, and the
 * runtime reads them there, as before. Pure: bytes in, decision out.
 */
import { decodePayload, encodeFrame } from './codec.js';
import { FRAME_HEADER_BYTES } from './frames.js';
import { FRAME_FD } from './frame-fd-offer.js';

export { FRAME_FD, FRAME_FD_ENV } from './frame-fd-offer.js';

/** `type` of the handshake frame. */
export const FRAME_FD_HANDSHAKE_TYPE = 'frame_fd';

/** The handshake: `{ type: 'frame_fd', fd }`, written first on stdout by an executor that takes the offer. */
export interface FrameFdHandshake {
  readonly type: typeof FRAME_FD_HANDSHAKE_TYPE;
  readonly fd: number;
}

/** A handshake payload is a few bytes; a longer first frame is certainly something else. */
const MAX_HANDSHAKE_PAYLOAD = 64;

/** The bytes an executor writes on stdout to say its frames go to `fd`. */
export function encodeFrameFdHandshake(fd: number = FRAME_FD): Buffer {
  const hello: FrameFdHandshake = { type: FRAME_FD_HANDSHAKE_TYPE, fd };
  return encodeFrame(hello);
}

/** What the first bytes of an executor's stdout say about where its frames are. */
export type FrameFdDecision =
  /** Not enough bytes yet to tell. */
  | { readonly kind: 'undecided' }
  /** No handshake: stdout carries the frames, from its first byte (nothing is consumed). */
  | { readonly kind: 'stdout' }
  /** The handshake for `fd`; the `consumed` bytes were the handshake, what follows on stdout is log output. */
  | { readonly kind: 'fd'; readonly fd: number; readonly consumed: number };

/**
 * Reads the start of an executor's stdout. `offered` is the fd the runtime
 * offered: a handshake naming another fd is not one (the frames stay on
 * stdout, where a bad frame is then reported as usual). Call again with more
 * bytes while it answers `undecided`; at end of stream, undecided means stdout.
 */
export function detectFrameFd(start: Uint8Array, offered: number = FRAME_FD): FrameFdDecision {
  if (start.length < FRAME_HEADER_BYTES) return { kind: 'undecided' };
  const length = ((start[0]! << 24) >>> 0) + (start[1]! << 16) + (start[2]! << 8) + start[3]!;
  if (length === 0 || length > MAX_HANDSHAKE_PAYLOAD) return { kind: 'stdout' };
  const end = FRAME_HEADER_BYTES + length;
  if (start.length < end) return { kind: 'undecided' };
  let hello: unknown;
  try {
    hello = decodePayload(start.subarray(FRAME_HEADER_BYTES, end));
  } catch {
    return { kind: 'stdout' };
  }
  if (typeof hello !== 'object' || hello === null) return { kind: 'stdout' };
  const h = hello as Record<string, unknown>;
  if (h.type !== FRAME_FD_HANDSHAKE_TYPE || h.fd !== offered) return { kind: 'stdout' };
  return { kind: 'fd', fd: offered, consumed: end };
}
