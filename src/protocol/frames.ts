/**
 * Frames that travel between executor and runtime (SPEC §3), beside the event
 * envelope. Discriminated on `type`. Pure types and shape checks.
 */
import { type AnyEventEnvelope, checkEnvelope, isEventType } from './envelope.js';

/** A frame is at most this many bytes, the 4-byte prefix included. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Raw bytes per artifact chunk and per `file_write`. */
export const MAX_CHUNK_BYTES = 8 * 1024 * 1024;
/** Default ceiling for one artifact, across its chunks. */
export const DEFAULT_MAX_ARTIFACT_BYTES = 1024 * 1024 * 1024;
/** Length prefix size. */
export const FRAME_HEADER_BYTES = 4;

export interface ArtifactChunkFrame {
  type: 'artifact_chunk';
  artifact_id: string;
  /** From 1, strictly increasing per artifact. */
  seq: number;
  is_last: boolean;
  data: Uint8Array;
}

export interface FileWriteFrame {
  type: 'file_write';
  /** uint32 from 1; 0 means the executor wants no ack. */
  write_id: number;
  filename: string;
  content_type: string;
  data: Uint8Array;
}

export type RunResultStatus = 'completed' | 'error' | 'crash';

/** A proxy endpoint as the executor reports it: never with a password. */
export interface ProxyEndpointRedacted {
  protocol: 'http' | 'https' | 'socks5';
  host: string;
  port: number;
  username?: string;
}

export interface ProxyEndpoint extends ProxyEndpointRedacted {
  password?: string;
}

export interface RunResultFrame {
  type: 'run_result';
  outcome: {
    status: RunResultStatus;
    message?: string;
    error_type?: string;
    stack?: string;
  };
  proxy_used?: ProxyEndpointRedacted;
}

/** Runtime → executor, on stdin after the run request line. */
export interface FileWriteAckFrame {
  type: 'file_write_ack';
  write_id: number;
  ok: boolean;
  error?: string;
}

/** Everything the executor may write on stdout. */
export type ExecutorFrame = AnyEventEnvelope | ArtifactChunkFrame | FileWriteFrame | RunResultFrame;

/**
 * Run slots (SPEC §10): the first frame of an executor that was asked
 * `slots: true` and can serve successive runs. Valid only as the first frame.
 */
export interface HelloFrame {
  type: 'hello';
  slots: true;
}

/** Run slots (SPEC §10): runtime → executor on stdin, the next run of a slot that said hello. */
export interface RunRequestFrame {
  type: 'run_request';
  request: RunRequest;
}

/**
 * Browser reuse (SPEC §10): executor → runtime, a run of a request with
 * `shared_browser: true` needs the invocation's browser. Answered by one
 * {@link BrowserEndpointFrame} on stdin.
 */
export interface BrowserRequestFrame {
  type: 'browser_request';
}

/** Browser reuse (SPEC §10): runtime → executor on stdin, the answer to a `browser_request`. */
export interface BrowserEndpointFrame {
  type: 'browser_endpoint';
  /** Where to connect (a loopback DevTools WebSocket); absent when the browser could not start. */
  ws_endpoint?: string;
  /** Why there is no browser (one line), when `ws_endpoint` is absent. */
  error?: string;
}

/** Whether a decoded frame is an executor's `browser_request`. */
export function isBrowserRequestFrame(v: unknown): boolean {
  return isObj(v) && v.type === 'browser_request';
}

/** Whether a decoded frame is a slot's `hello`. */
export function isHelloFrame(v: unknown): boolean {
  return isObj(v) && v.type === 'hello' && v.slots === true;
}

/** Storage identity the runtime hands the executor for `storage.put` keys. */
export interface RunRequestStorage {
  dataset: string;
  source: string;
  category: string;
  day: string;
  run_id: string;
}

/** Phase 1 of stdin: one line of JSON (SPEC §3). */
export interface RunRequest {
  run_id: string;
  attempt: number;
  job_id?: string;
  parent_run_id?: string;
  job: unknown;
  proxy?: ProxyEndpoint;
  browser_ws_endpoint?: string;
  storage?: RunRequestStorage;
  /** Quarry extension (additive): where to find Chromium when launching. */
  chromium_path?: string;
  /**
   * Quarry extension (additive): the script to load (the original passes it as
   * argv). In a run slot's later runs (`run_request` frames) it names the run's script.
   */
  script?: string;
  /**
   * Quarry extension (additive, SPEC §10 run slots), first request line only:
   * the runtime can send later runs as `run_request` frames; an executor that
   * can answers with a first frame `{ type: 'hello', slots: true }`.
   */
  slots?: boolean;
  /**
   * Quarry extension (additive, SPEC §10 browser reuse), in a run slot's
   * requests only: the runtime holds the invocation's browser. A run that needs
   * a browser asks with a `browser_request` frame and connects to the
   * `ws_endpoint` of the `browser_endpoint` frame the runtime answers on stdin,
   * instead of launching its own. Absent: the executor launches (or connects to
   * `browser_ws_endpoint`) as before.
   */
  shared_browser?: boolean;
}

/** Raised for a frame whose shape is wrong; the run ends (no resynchronisation). */
export class FrameShapeError extends Error {
  override readonly name = 'FrameShapeError';
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;
const optStr = (v: unknown): boolean => v === undefined || v === null || typeof v === 'string';
const PROXY_PROTOCOLS: ReadonlySet<unknown> = new Set(['http', 'https', 'socks5']);

/** Why a reported proxy endpoint is not one, or undefined: the runtime copies these fields into its report. */
function proxyProblem(p: unknown): string | undefined {
  if (!isObj(p)) return 'not a map';
  if (!PROXY_PROTOCOLS.has(p.protocol)) return 'protocol must be http|https|socks5';
  if (typeof p.host !== 'string') return 'host must be a string';
  if (typeof p.port !== 'number' || !Number.isInteger(p.port) || p.port < 0 || p.port > 65535) return 'port must be an integer 0..65535';
  if (!optStr(p.username)) return 'username must be a string';
  return undefined;
}

/**
 * Narrows a decoded msgpack value to an executor frame, or throws
 * {@link FrameShapeError} naming the first wrong field.
 */
export function toExecutorFrame(v: unknown): ExecutorFrame {
  if (!isObj(v)) throw new FrameShapeError('frame is not a map');
  const t = v.type;
  if (t === 'artifact_chunk') {
    if (typeof v.artifact_id !== 'string' || v.artifact_id === '') throw new FrameShapeError('artifact_chunk.artifact_id missing');
    if (typeof v.seq !== 'number' || !Number.isInteger(v.seq) || v.seq < 1) throw new FrameShapeError('artifact_chunk.seq must be an integer ≥ 1');
    if (typeof v.is_last !== 'boolean') throw new FrameShapeError('artifact_chunk.is_last must be a boolean');
    if (!isBytes(v.data)) throw new FrameShapeError('artifact_chunk.data must be binary');
    if (v.data.byteLength > MAX_CHUNK_BYTES) throw new FrameShapeError(`artifact_chunk.data is ${v.data.byteLength} bytes, over ${MAX_CHUNK_BYTES}`);
    return v as unknown as ArtifactChunkFrame;
  }
  if (t === 'file_write') {
    if (typeof v.write_id !== 'number' || !Number.isInteger(v.write_id) || v.write_id < 0 || v.write_id > 0xffffffff) throw new FrameShapeError('file_write.write_id must be a uint32');
    if (typeof v.filename !== 'string') throw new FrameShapeError('file_write.filename missing');
    if (typeof v.content_type !== 'string') throw new FrameShapeError('file_write.content_type missing');
    if (!isBytes(v.data)) throw new FrameShapeError('file_write.data must be binary');
    if (v.data.byteLength > MAX_CHUNK_BYTES) throw new FrameShapeError(`file_write.data is ${v.data.byteLength} bytes, over ${MAX_CHUNK_BYTES}`);
    return v as unknown as FileWriteFrame;
  }
  if (t === 'run_result') {
    const o = v.outcome;
    if (!isObj(o) || (o.status !== 'completed' && o.status !== 'error' && o.status !== 'crash')) throw new FrameShapeError('run_result.outcome.status must be completed|error|crash');
    for (const k of ['message', 'error_type', 'stack'] as const) {
      if (!optStr(o[k])) throw new FrameShapeError(`run_result.outcome.${k} must be a string`);
    }
    const reason = v.proxy_used === undefined || v.proxy_used === null ? undefined : proxyProblem(v.proxy_used);
    if (reason) throw new FrameShapeError(`run_result.proxy_used: ${reason}`);
    return v as unknown as RunResultFrame;
  }
  if (isEventType(t)) {
    const reason = checkEnvelope(v);
    if (reason) throw new FrameShapeError(`event envelope: ${reason}`);
    return v as unknown as AnyEventEnvelope;
  }
  throw new FrameShapeError(`unknown frame type ${JSON.stringify(t)}`);
}

/** Narrows a decoded value to a `file_write_ack`, or throws {@link FrameShapeError}. */
export function toAckFrame(v: unknown): FileWriteAckFrame {
  if (!isObj(v) || v.type !== 'file_write_ack') throw new FrameShapeError('expected file_write_ack');
  if (typeof v.write_id !== 'number' || typeof v.ok !== 'boolean') throw new FrameShapeError('file_write_ack needs write_id and ok');
  return v as unknown as FileWriteAckFrame;
}
