/**
 * Stored record lines (SPEC §7): one JSON object per line, keys in a fixed
 * order so the same event stream gives the same bytes whatever the policy
 * (SPEC §6), run identity aside.
 */
import type { AnyEventEnvelope } from '../protocol/envelope.js';
import type { RunPartition } from './layout.js';
import type { RunMetrics } from './manifest.js';

export type RecordKind = 'event' | 'artifact_event' | 'metrics';

/** A stored event record, as a reader parses it back. */
export interface EventRecord {
  record_kind: 'event' | 'artifact_event';
  dataset: string;
  source: string;
  category: string;
  day: string;
  run_id: string;
  event_type: string;
  seq: number;
  event_id: string;
  ts: string;
  contract_version: string;
  attempt: number;
  job_id?: string;
  parent_run_id?: string;
  payload: Record<string, unknown>;
  /** For artifact events: where the bytes are, relative to the run folder. */
  artifact_path?: string;
}

export interface MetricsRecord {
  record_kind: 'metrics';
  dataset: string;
  source: string;
  category: string;
  day: string;
  run_id: string;
  event_type: 'metrics';
  metrics: RunMetrics;
}

export type StoredRecord = EventRecord | MetricsRecord;

/**
 * Serializes one event as a record line (with trailing newline).
 * `artifactPath` is set for artifact events, whose record kind is `artifact_event`.
 */
export function eventRecordLine(p: RunPartition, e: AnyEventEnvelope, artifactPath?: string): string {
  return recordLineSerializer(p)(e, artifactPath);
}

/** True when a payload holds bytes somewhere (rare): only then is the slower replacer needed. */
export function hasBinary(v: unknown, depth = 0): boolean {
  if (v instanceof Uint8Array) return true;
  if (typeof v !== 'object' || v === null || depth > 64) return false;
  if (Array.isArray(v)) return v.some((x) => hasBinary(x, depth + 1));
  for (const k in v) if (hasBinary((v as Record<string, unknown>)[k], depth + 1)) return true;
  return false;
}

/** Serializes the run's metrics record line. */
export function metricsRecordLine(p: RunPartition, metrics: RunMetrics): string {
  const rec: MetricsRecord = {
    record_kind: 'metrics',
    dataset: p.dataset,
    source: p.source,
    category: p.category,
    day: p.day,
    run_id: p.run_id,
    event_type: 'metrics',
    metrics,
  };
  return `${JSON.stringify(rec)}\n`;
}

/**
 * Binary values decoded from msgpack (Uint8Array) are stored as
 * `{ "$binary": base64 }` rather than as a map of indices; bigints as strings.
 */
function jsonReplacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // Buffer#toJSON runs before the replacer, so look at the holder's raw value.
  const raw = this[key];
  if (raw instanceof Uint8Array) return { $binary: Buffer.from(raw).toString('base64') };
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/**
 * A record-line serializer for one run partition: the fields that never
 * change within a run (record kind, partition keys, event type) are
 * serialized once per event type. The ingestion hot path keeps one per run;
 * {@link eventRecordLine} is the one-off form. Key order (part of the format):
 * record_kind, dataset, source, category, day, run_id, event_type, seq,
 * event_id, ts, contract_version, attempt, [job_id], [parent_run_id],
 * payload, [artifact_path].
 */
export function recordLineSerializer(p: RunPartition): RecordLineSerializer {
  const prefixes = new Map<string, string>();
  // The last event serialized and its payload's JSON (only when the payload holds no bytes), for payloadJsonOf.
  let lastEvent: AnyEventEnvelope | undefined;
  let lastPayloadJson: string | undefined;
  const keys = `"dataset":${JSON.stringify(p.dataset)},"source":${JSON.stringify(p.source)},"category":${JSON.stringify(p.category)},"day":${JSON.stringify(p.day)},"run_id":${JSON.stringify(p.run_id)}`;
  const serialize = (e: AnyEventEnvelope, artifactPath?: string): string => {
    const kind = artifactPath === undefined ? 'event' : 'artifact_event';
    const cacheKey = `${kind}\u0000${e.type}`;
    let prefix = prefixes.get(cacheKey);
    if (prefix === undefined) {
      prefix = `{"record_kind":"${kind}",${keys},"event_type":${JSON.stringify(e.type)},"seq":`;
      prefixes.set(cacheKey, prefix);
    }
    let line = `${prefix}${e.seq},"event_id":${JSON.stringify(e.event_id)},"ts":${JSON.stringify(e.ts)},"contract_version":${JSON.stringify(e.contract_version)},"attempt":${e.attempt}`;
    if (e.job_id !== undefined && e.job_id !== null) line += `,"job_id":${JSON.stringify(e.job_id)}`;
    if (e.parent_run_id !== undefined && e.parent_run_id !== null) line += `,"parent_run_id":${JSON.stringify(e.parent_run_id)}`;
    const binary = hasBinary(e.payload);
    const payload = JSON.stringify(e.payload, binary ? jsonReplacer : undefined);
    lastEvent = e;
    lastPayloadJson = binary ? undefined : payload;
    line += `,"payload":${payload}`;
    if (artifactPath !== undefined) line += `,"artifact_path":${JSON.stringify(artifactPath)}`;
    return `${line}}\n`;
  };
  return Object.assign(serialize, { payloadJsonOf: (e: AnyEventEnvelope): string | undefined => (e === lastEvent ? lastPayloadJson : undefined) });
}

/**
 * Serializes events as record lines (see {@link recordLineSerializer}), and
 * hands back the payload JSON it just made, so a live copy of the event (an
 * event sink, SPEC §11) need not encode the payload again.
 */
export interface RecordLineSerializer {
  (e: AnyEventEnvelope, artifactPath?: string): string;
  /**
   * The JSON of `e.payload` when `e` is the event serialized last and its
   * payload holds no bytes (stored as `{"$binary"}` objects, a form only
   * storage uses); otherwise undefined.
   */
  payloadJsonOf(e: AnyEventEnvelope): string | undefined;
}
