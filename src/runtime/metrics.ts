/**
 * The run's §9 counters, built once from what the run observed. Each run
 * stores its own; `stats metrics` sums them over runs.
 */
import type { PolicyCounters, RunMetrics, RunOutcome } from '../storage/manifest.js';
import type { WriteCounters } from '../storage/run-writer.js';

export interface MetricsInput {
  outcome: RunOutcome;
  counters: PolicyCounters;
  launched: boolean;
  ipcDecodeErrors: number;
  writes: WriteCounters;
  executor: string;
  storageBackend: string;
}

export function buildMetrics(i: MetricsInput): RunMetrics {
  const crashed = i.outcome === 'executor_crash';
  return {
    runs_started_total: 1,
    runs_completed_total: i.outcome === 'success' ? 1 : 0,
    runs_failed_total: i.outcome === 'script_error' || i.outcome === 'policy_failure' || i.outcome === 'version_mismatch' ? 1 : 0,
    runs_crashed_total: crashed ? 1 : 0,
    events_received_total: i.counters.events_received,
    events_persisted_total: i.counters.events_persisted,
    events_dropped_total: i.counters.events_dropped,
    events_dropped_by_type: { ...i.counters.dropped_by_type },
    flush_triggers: { ...(i.counters.flush_triggers ?? {}) },
    executor_launch_success_total: i.launched ? 1 : 0,
    executor_launch_failure_total: i.launched ? 0 : 1,
    executor_crash_total: crashed ? 1 : 0,
    ipc_decode_errors_total: i.ipcDecodeErrors,
    lode_write_success_total: i.writes.success,
    lode_write_failure_total: i.writes.failure,
    lode_write_retry_total: i.writes.retry,
    dimensions: { policy: i.counters.name, executor: i.executor, storage_backend: i.storageBackend },
  };
}

/** Sums metrics of many runs (`stats metrics`). */
export function sumMetrics(all: readonly RunMetrics[]): Omit<RunMetrics, 'dimensions'> {
  const out: Omit<RunMetrics, 'dimensions'> = {
    runs_started_total: 0, runs_completed_total: 0, runs_failed_total: 0, runs_crashed_total: 0,
    events_received_total: 0, events_persisted_total: 0, events_dropped_total: 0, events_dropped_by_type: {},
    flush_triggers: {}, executor_launch_success_total: 0, executor_launch_failure_total: 0, executor_crash_total: 0,
    ipc_decode_errors_total: 0, lode_write_success_total: 0, lode_write_failure_total: 0, lode_write_retry_total: 0,
  };
  for (const m of all) {
    for (const k of Object.keys(out) as (keyof typeof out)[]) {
      if (k === 'events_dropped_by_type' || k === 'flush_triggers') continue;
      out[k] += m[k];
    }
    for (const [t, n] of Object.entries(m.events_dropped_by_type)) out.events_dropped_by_type[t] = (out.events_dropped_by_type[t] ?? 0) + n;
    for (const [t, n] of Object.entries(m.flush_triggers)) {
      const key = t as keyof typeof out.flush_triggers;
      out.flush_triggers[key] = (out.flush_triggers[key] ?? 0) + (n ?? 0);
    }
  }
  return out;
}
