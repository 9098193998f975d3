/**
 * The event envelope and its payloads (SPEC §4). Pure types and checks: no I/O.
 *
 * Field names are the original Quarry's, so frames written by either side decode
 * on the other (SPEC §1.3).
 */

/** Contract version we write into every envelope. A breaking change bumps the major. */
export const CONTRACT_VERSION = '1.0.0';

/** Contract majors this runtime can ingest. */
export const SUPPORTED_CONTRACT_MAJORS: readonly number[] = [1];

/** Every event type of §4, as it appears in `type`. */
export const EVENT_TYPES = [
  'item',
  'artifact',
  'checkpoint',
  'enqueue',
  'rotate_proxy',
  'log',
  'run_error',
  'run_complete',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** Events a policy may drop, counted (SPEC §6). Everything else is never droppable. */
export const DROPPABLE_EVENT_TYPES: ReadonlySet<EventType> = new Set<EventType>(['log', 'enqueue', 'rotate_proxy']);

/** Terminal events: after one, the run accepts no further events. */
export const TERMINAL_EVENT_TYPES: ReadonlySet<EventType> = new Set<EventType>(['run_error', 'run_complete']);

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export interface ItemPayload {
  item_type: string;
  data: Record<string, unknown>;
}
export interface ArtifactPayload {
  artifact_id: string;
  name: string;
  content_type: string;
  size_bytes: number;
}
export interface CheckpointPayload {
  checkpoint_id: string;
  note?: string;
}
export interface EnqueuePayload {
  target: string;
  params: Record<string, unknown>;
  source?: string;
  category?: string;
}
export interface RotateProxyPayload {
  reason?: string;
}
export interface LogPayload {
  level: LogLevel;
  message: string;
  fields?: Record<string, unknown>;
}
export interface RunErrorPayload {
  error_type: string;
  message: string;
  stack?: string;
}
export interface RunCompletePayload {
  summary?: Record<string, unknown>;
}

/** Payload type for each event type. */
export interface PayloadByType {
  item: ItemPayload;
  artifact: ArtifactPayload;
  checkpoint: CheckpointPayload;
  enqueue: EnqueuePayload;
  rotate_proxy: RotateProxyPayload;
  log: LogPayload;
  run_error: RunErrorPayload;
  run_complete: RunCompletePayload;
}

/** The envelope every event travels in (SPEC §4). Optional fields are omitted, never `undefined` on the wire. */
export interface EventEnvelope<T extends EventType = EventType> {
  contract_version: string;
  event_id: string;
  run_id: string;
  seq: number;
  type: T;
  ts: string;
  payload: PayloadByType[T];
  attempt: number;
  job_id?: string;
  parent_run_id?: string;
}

/** Distributes over the union so `env.type === 'item'` narrows `env.payload`. */
export type AnyEventEnvelope = { [K in EventType]: EventEnvelope<K> }[EventType];

const EVENT_TYPE_SET: ReadonlySet<string> = new Set(EVENT_TYPES);

export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && EVENT_TYPE_SET.has(value);
}

/** Parses `major.minor.patch`; returns the major or undefined when malformed. */
export function contractMajor(version: string): number | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  return m ? Number(m[1]) : undefined;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const isStr = (v: unknown): v is string => typeof v === 'string';
const optStr = (v: unknown): boolean => v === undefined || v === null || typeof v === 'string';

/**
 * Checks the payload fields §4 requires for `type`. Returns a reason string when
 * invalid, undefined when valid. Unknown extra fields are allowed (additive changes).
 */
export function checkPayload(type: EventType, p: unknown): string | undefined {
  if (!isObj(p)) return 'payload is not a map';
  switch (type) {
    case 'item':
      if (!isStr(p.item_type) || p.item_type === '') return 'item.item_type must be a non-empty string';
      if (!isObj(p.data)) return 'item.data must be a map';
      return undefined;
    case 'artifact':
      if (!isStr(p.artifact_id) || p.artifact_id === '') return 'artifact.artifact_id must be a non-empty string';
      if (!isStr(p.name)) return 'artifact.name must be a string';
      if (!isStr(p.content_type)) return 'artifact.content_type must be a string';
      if (typeof p.size_bytes !== 'number' || !Number.isInteger(p.size_bytes) || p.size_bytes < 0) return 'artifact.size_bytes must be a non-negative integer';
      return undefined;
    case 'checkpoint':
      if (!isStr(p.checkpoint_id) || p.checkpoint_id === '') return 'checkpoint.checkpoint_id must be a non-empty string';
      if (!optStr(p.note)) return 'checkpoint.note must be a string';
      return undefined;
    case 'enqueue':
      if (!isStr(p.target) || p.target === '') return 'enqueue.target must be a non-empty string';
      if (!isObj(p.params)) return 'enqueue.params must be a map';
      if (!optStr(p.source) || !optStr(p.category)) return 'enqueue.source/category must be strings';
      return undefined;
    case 'rotate_proxy':
      return optStr(p.reason) ? undefined : 'rotate_proxy.reason must be a string';
    case 'log':
      if (!isStr(p.level) || !(LOG_LEVELS as readonly string[]).includes(p.level)) return `log.level must be one of ${LOG_LEVELS.join('|')}`;
      if (!isStr(p.message)) return 'log.message must be a string';
      if (p.fields !== undefined && p.fields !== null && !isObj(p.fields)) return 'log.fields must be a map';
      return undefined;
    case 'run_error':
      if (!isStr(p.error_type)) return 'run_error.error_type must be a string';
      if (!isStr(p.message)) return 'run_error.message must be a string';
      if (!optStr(p.stack)) return 'run_error.stack must be a string';
      return undefined;
    case 'run_complete':
      if (p.summary !== undefined && p.summary !== null && !isObj(p.summary)) return 'run_complete.summary must be a map';
      return undefined;
  }
}

/**
 * Checks the envelope's own fields (not run identity or sequence: the runtime
 * checks those against the run). Returns a reason or undefined.
 */
export function checkEnvelope(v: Record<string, unknown>): string | undefined {
  if (!isStr(v.contract_version)) return 'contract_version missing';
  if (!isStr(v.event_id) || v.event_id === '') return 'event_id missing';
  if (!isStr(v.run_id) || v.run_id === '') return 'run_id missing';
  if (typeof v.seq !== 'number' || !Number.isInteger(v.seq) || v.seq < 1) return 'seq must be an integer ≥ 1';
  if (!isEventType(v.type)) return `unknown event type ${JSON.stringify(v.type)}`;
  if (!isStr(v.ts)) return 'ts missing';
  if (typeof v.attempt !== 'number' || !Number.isInteger(v.attempt) || v.attempt < 1) return 'attempt must be an integer ≥ 1';
  if (!optStr(v.job_id) || !optStr(v.parent_run_id)) return 'job_id/parent_run_id must be strings';
  return checkPayload(v.type, v.payload);
}

/** What the runtime knows of its run when the next event arrives. */
export interface RunExpectation {
  run_id: string;
  attempt: number;
  /** seq of the last accepted event; null before the first. */
  lastSeq: number | null;
  /** The contract_version last accepted in this run, if any (a known one is not re-parsed). */
  contractVersion: string | undefined;
}

/** Why an event does not belong in its run: `version` ends the run as `version_mismatch`, `stream` as a stream error. */
export interface EventRefusal {
  kind: 'stream' | 'version';
  message: string;
}

/**
 * The runtime's checks of an envelope against its run (SPEC §4): `run_id` and
 * `attempt` match, the contract major is one this runtime speaks, `seq` is
 * exactly the previous + 1. Pure: the caller keeps the state.
 * @returns the refusal, or undefined when the event is the run's next one.
 */
export function checkEventInRun(e: AnyEventEnvelope, run: RunExpectation): EventRefusal | undefined {
  if (e.run_id !== run.run_id) return { kind: 'stream', message: `event seq ${e.seq} has run_id ${e.run_id}, expected ${run.run_id}` };
  if (e.attempt !== run.attempt) return { kind: 'stream', message: `event seq ${e.seq} has attempt ${e.attempt}, expected ${run.attempt}` };
  if (e.contract_version !== run.contractVersion) {
    const major = contractMajor(e.contract_version);
    if (major === undefined || !SUPPORTED_CONTRACT_MAJORS.includes(major)) {
      return { kind: 'version', message: `event seq ${e.seq} speaks contract_version ${e.contract_version}; this runtime speaks ${SUPPORTED_CONTRACT_MAJORS.map((m) => `${m}.x`).join(', ')}` };
    }
  }
  const expected = (run.lastSeq ?? 0) + 1;
  if (e.seq !== expected) return { kind: 'stream', message: `seq gap: got event seq ${e.seq}, expected ${expected}` };
  return undefined;
}
