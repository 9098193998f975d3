/**
 * The run-fenced partition layout (SPEC §7). Pure key arithmetic: every key a
 * writer or reader uses comes from here, so the layout has one definition.
 *
 * ```
 * datasets/<dataset>/partitions/source=<s>/category=<c>/day=<d>/run_id=<r>/
 *   event_type=<t>/part-000001.jsonl   records (JSON lines)
 *   files/<filename> (+ .meta.json)    sidecar files
 *   artifacts/<artifact_id>            artifact bytes
 *   _manifest.json                     written last: the run's commit record
 * datasets/<dataset>/runs/<run_id>.json   run claim, created exclusively at start
 * datasets/<dataset>/trees/<root_run_id>.json   tree manifest (fan-out)
 * ```
 */

/** The logical partition: what the ledger keeps one authoritative run for. */
export interface LogicalPartition {
  dataset: string;
  source: string;
  category: string;
  day: string;
}

/** A run partition: a logical partition plus the run that wrote it. */
export interface RunPartition extends LogicalPartition {
  run_id: string;
}

export const DEFAULT_DATASET = 'quarry';
export const DEFAULT_CATEGORY = 'default';
export const MANIFEST_NAME = '_manifest.json';

const NAME_RE = /^[A-Za-z0-9._-]{1,128}$/;
/** `--run-id` syntax (SPEC §5). */
export const RUN_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

/** Why `value` cannot be a partition key value, or undefined if it can. */
export function checkKeyValue(what: string, value: string): string | undefined {
  if (!NAME_RE.test(value) || value === '.' || value === '..') {
    return `${what} ${JSON.stringify(value)} must be 1-128 characters of A-Z a-z 0-9 . _ - (it becomes a storage path segment)`;
  }
  return undefined;
}

/** Why `day` is not a real `YYYY-MM-DD` date, or undefined. */
export function checkDay(day: string): string | undefined {
  if (!DAY_RE.test(day)) return `day ${JSON.stringify(day)} must be YYYY-MM-DD`;
  const d = new Date(`${day}T00:00:00Z`);
  if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== day) return `day ${JSON.stringify(day)} is not a calendar date`;
  return undefined;
}

/** The UTC day of an instant, `YYYY-MM-DD`. */
export function utcDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

export function datasetPrefix(dataset: string): string {
  return `datasets/${dataset}/`;
}

export function partitionsPrefix(dataset: string): string {
  return `datasets/${dataset}/partitions/`;
}

/** Folder of a logical partition (ends in `/`). */
export function logicalPrefix(p: LogicalPartition): string {
  return `${partitionsPrefix(p.dataset)}source=${p.source}/category=${p.category}/day=${p.day}/`;
}

/** Folder of a run partition (ends in `/`). */
export function runPrefix(p: RunPartition): string {
  return `${logicalPrefix(p)}run_id=${p.run_id}/`;
}

export function manifestKey(p: RunPartition): string {
  return `${runPrefix(p)}${MANIFEST_NAME}`;
}

/** Claim object: created exclusively when a run starts, so a run_id exists once per dataset. */
export function runClaimKey(dataset: string, runId: string): string {
  return `${datasetPrefix(dataset)}runs/${runId}.json`;
}

export function runClaimsPrefix(dataset: string): string {
  return `${datasetPrefix(dataset)}runs/`;
}

export function treeManifestKey(dataset: string, rootRunId: string): string {
  return `${datasetPrefix(dataset)}trees/${rootRunId}.json`;
}

/** Records segment `n` (from 1) of one event type, relative to the run folder. */
export function segmentName(eventType: string, n: number): string {
  return `event_type=${eventType}/part-${String(n).padStart(6, '0')}.jsonl`;
}

/** True when `key` (a full key or a path in a run folder) names a records segment made by {@link segmentName}. */
export function isSegmentKey(key: string): boolean {
  return /(^|\/)event_type=[^/]+\/part-\d{6,}\.jsonl$/.test(key);
}

/** Metrics records live beside the event types, under their own folder. */
export const METRICS_EVENT_TYPE = 'metrics';

/** Artifact bytes, relative to the run folder. Unsafe ids are hex-encoded so any id maps to one safe name. */
export function artifactName(artifactId: string): string {
  const safe = NAME_RE.test(artifactId) && artifactId !== '.' && artifactId !== '..' ? artifactId : `x-${Buffer.from(artifactId, 'utf8').toString('hex')}`;
  return `artifacts/${safe}`;
}

export function sidecarName(filename: string): string {
  return `files/${filename}`;
}

export function sidecarMetaName(filename: string): string {
  return `files/${filename}.meta.json`;
}

/** Parses `.../source=s/category=c/day=d/run_id=r/...` back into keys, or undefined. */
export function parseRunPrefix(key: string): RunPartition | undefined {
  const m = /^datasets\/([^/]+)\/partitions\/source=([^/]+)\/category=([^/]+)\/day=([^/]+)\/run_id=([^/]+)\//.exec(key);
  if (!m) return undefined;
  return { dataset: m[1]!, source: m[2]!, category: m[3]!, day: m[4]!, run_id: m[5]! };
}
