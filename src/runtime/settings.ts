/**
 * Between a run's configuration and the `settings` its claim and manifest
 * record (SPEC §8 "State-driven retry"): what `quarry retry` reads back to
 * re-run a partition the way its last run ran. Pure.
 */
import { redactUrl } from '../protocol/redact.js';
import type { RecordedPolicy, RunSettings } from '../storage/run-settings.js';
import type { AdapterTarget } from '../ledger/outbox.js';
import type { PolicyConfig } from './policies/index.js';

/** What {@link recordSettings} needs of a run's configuration. */
export interface SettingsSource {
  policy: PolicyConfig;
  timeoutMs?: number;
  browserWsEndpoint?: string;
  retries?: number;
  /** The run-completed adapter, as recorded (no credentials, SPEC §11). */
  adapter?: AdapterTarget;
  /** The run's proxy pool choice (pool and strategy are recorded, never an endpoint's password). */
  proxyRecord?: { pool: string; strategy: string };
  /** Event sinks as recorded (no credentials). */
  eventSinkTargets?: ReadonlyArray<{ kind: string; target: string }>;
}

/** Option names of a policy config and of its record: the only difference between the two. */
const POLICY_KEYS: ReadonlyArray<readonly [config: string, recorded: string]> = [
  ['name', 'name'], ['flushMode', 'flush_mode'], ['bufferEvents', 'buffer_events'], ['bufferBytes', 'buffer_bytes'],
  ['flushCount', 'flush_count'], ['flushIntervalMs', 'flush_interval_ms'],
];

function renamed(from: object, side: 0 | 1): Record<string, unknown> {
  const src = from as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const pair of POLICY_KEYS) {
    const v = src[pair[side]];
    if (v !== undefined) out[pair[1 - side]!] = v;
  }
  return out;
}

/** A policy config in the manifest's words. */
export function recordPolicy(p: PolicyConfig): RecordedPolicy {
  return renamed(p, 0) as RecordedPolicy;
}

/** A recorded policy (checked by `runSettingsProblem`) back as the config a run takes: the inverse of {@link recordPolicy}. */
export function policyFromRecord(p: RecordedPolicy): PolicyConfig {
  return renamed(p, 1) as PolicyConfig;
}

/**
 * A browser endpoint as recorded: no user info at all, and secret query
 * values masked by the one redaction rule. So the recorded form can never
 * reconnect to a browser that needs credentials: a retry takes it again.
 */
export function endpointWithoutCredentials(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    if (u.username !== '' || u.password !== '') {
      u.username = '';
      u.password = '';
      return redactUrl(u);
    }
  } catch {
    // redactUrl names an unparseable URL without its text.
  }
  return redactUrl(endpoint);
}

/** The settings to record for a run: nothing in them is a secret. */
export function recordSettings(cfg: SettingsSource): RunSettings {
  return {
    policy: recordPolicy(cfg.policy),
    run_timeout_ms: cfg.timeoutMs ?? null,
    retries: cfg.retries ?? 0,
    browser: cfg.browserWsEndpoint !== undefined ? { mode: 'endpoint', endpoint: endpointWithoutCredentials(cfg.browserWsEndpoint) } : { mode: 'launch' },
    proxy: cfg.proxyRecord ? { pool: cfg.proxyRecord.pool, strategy: cfg.proxyRecord.strategy } : null,
    adapter: cfg.adapter !== undefined ? { kind: cfg.adapter.kind, target: cfg.adapter.target } : null,
    event_sinks: (cfg.eventSinkTargets ?? []).map((s) => ({ kind: s.kind, target: s.target })),
  };
}
