/**
 * The exit report of one run (SPEC §5 `--report`). Field names are the
 * original's; `skipped`, `items`, `storage`, `ledger` are additive.
 */
import type { EventSinkCounters } from './event-sinks.js';
import type { ProxyEndpointRedacted } from '../protocol/frames.js';
import type { RunAuthority } from './authority.js';
import type { FlushTrigger, ManifestProxy, PolicyName, RunMetrics, RunOutcome } from '../storage/manifest.js';

export interface RunReport {
  run_id: string;
  job_id?: string;
  attempt: number;
  parent_run_id?: string;
  outcome: RunOutcome;
  message: string;
  /** For `script_error`: the run_error's `error_type`, or `timeout` (`--run-timeout`). */
  error_type?: string;
  exit_code: number;
  duration_ms: number;
  event_count: number;
  policy: {
    name: PolicyName;
    events_received: number;
    events_persisted: number;
    events_dropped: number;
    dropped_by_type: Record<string, number>;
    flush_triggers?: Partial<Record<FlushTrigger, number>>;
  };
  artifacts: { total: number; committed: number; orphaned: number; chunks: number; bytes: number };
  metrics: RunMetrics;
  terminal_summary?: Record<string, unknown>;
  proxy_used?: ProxyEndpointRedacted;
  /** The proxy pool's choice for the run and its rotations, as in the manifest (SPEC §11). */
  proxy?: ManifestProxy;
  /** Tail of the executor's stderr. */
  stderr?: string;
  skipped: boolean;
  /** Item records persisted. */
  items: number;
  storage: { backend: string; location: string; partition: string; finalized: boolean };
  /** What the validator decided, when a ledger was used. */
  ledger?: { location: string; validation: 'valid' | 'invalid' | 'not_run'; reasons: string[]; partition_status: string; authoritative_run_id?: string; authoritative: boolean };
  /** Whether the run's data became authoritative, why, and what to run next (SPEC §8); set when a ledger was used. */
  authority?: RunAuthority;
  /** Live event sinks (SPEC §11): per sink, events sent and sink drops (apart from the policy's drops). */
  event_sinks?: EventSinkCounters[];
  /** The run-completed notification of the invocation (SPEC §11), when `--adapter` was given and the run was validated. */
  notification?: NotificationReport;
}

/** The one-line summary `quarry run` prints (SPEC §5). */
export function summaryLine(r: RunReport): string {
  const parts = [
    `run_id=${r.run_id}`,
    `attempt=${r.attempt}`,
    `outcome=${r.outcome}`,
    `duration=${(r.duration_ms / 1000).toFixed(2)}s`,
    `items=${r.items}`,
    `events=${r.event_count}`,
    `policy=${r.policy.name}`,
  ];
  if (r.policy.events_dropped > 0) parts.push(`dropped=${r.policy.events_dropped}`);
  if (r.artifacts.total > 0) parts.push(`artifacts=${r.artifacts.committed}/${r.artifacts.total}`);
  if (r.skipped) parts.push('skipped=true');
  if (r.proxy) parts.push(`proxy=${r.proxy.pool}#${r.proxy.endpoint_index}${r.proxy.rotations.length > 0 ? ` (rotated ${r.proxy.rotations.length}x)` : ''}`);
  return parts.join(', ');
}

/** What sending a run's (or tree's) notification did (SPEC §11). Never changes the exit code. */
export interface NotificationReport {
  notification_id: string;
  /** Where it went, as recorded (no credentials). */
  target: string;
  /** `pending`: every attempt failed; it stays in the ledger outbox for `quarry adapter drain`. */
  status: 'delivered' | 'pending';
  attempts: number;
  error: string | null;
  /** Earlier attempts' rows of a `--retries` invocation, marked superseded (one notification per invocation). */
  superseded: string[];
}
