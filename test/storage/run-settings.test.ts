/**
 * The `settings` a claim and a manifest record (SPEC §8 state-driven retry):
 * optional, so what older Quarry versions stored still parses; checked when
 * present; and never holding a secret.
 */
import { describe, expect, it } from 'vitest';
import type { PolicyConfig } from '../../src/runtime/policies/index.js';
import { endpointWithoutCredentials, policyFromRecord, recordPolicy, recordSettings } from '../../src/runtime/settings.js';
import { manifestKey, runClaimKey, type RunPartition } from '../../src/storage/layout.js';
import { ManifestError, parseManifest, serializeManifest } from '../../src/storage/manifest.js';
import { parseClaim } from '../../src/storage/reader.js';
import { MemoryBackend } from '../_harness/memory-backend.js';
import { eventsOf, writeRun } from './run-fixture.js';

const PARTITION: RunPartition = { dataset: 'quarry', source: 's', category: 'default', day: '2026-11-23', run_id: 'r-1' };

async function stored(): Promise<{ manifest: Record<string, unknown>; claim: Record<string, unknown> }> {
  const backend = new MemoryBackend();
  await writeRun(backend, { partition: PARTITION, outcome: 'success', events: eventsOf('r-1', ['item', 'run_complete']) });
  return {
    manifest: JSON.parse((await backend.get(manifestKey(PARTITION))).toString()) as Record<string, unknown>,
    claim: JSON.parse((await backend.get(runClaimKey('quarry', 'r-1'))).toString()) as Record<string, unknown>,
  };
}

const SETTINGS = recordSettings({ policy: { name: 'streaming', flushMode: 'chunks_first', flushCount: 5, flushIntervalMs: 2000 }, timeoutMs: 60_000, retries: 2 });

describe('recorded run settings', () => {
  it('a manifest and a claim without settings (written before they were recorded) still parse', async () => {
    const { manifest, claim } = await stored();
    expect(manifest.settings).toBeUndefined();
    expect(parseManifest(serializeManifest(manifest as never)).settings).toBeUndefined();
    expect(parseClaim(JSON.stringify(claim), 'claim.json').settings).toBeUndefined();
  });

  it('settings round-trip through the manifest and the claim', async () => {
    const { manifest, claim } = await stored();
    expect(parseManifest(JSON.stringify({ ...manifest, settings: SETTINGS })).settings).toEqual(SETTINGS);
    expect(parseClaim(JSON.stringify({ ...claim, settings: SETTINGS }), 'claim.json').settings).toEqual(SETTINGS);
    expect(SETTINGS).toEqual({
      policy: { name: 'streaming', flush_mode: 'chunks_first', flush_count: 5, flush_interval_ms: 2000 },
      run_timeout_ms: 60_000, retries: 2, browser: { mode: 'launch' }, proxy: null, adapter: null, event_sinks: [],
    });
  });

  it('malformed settings are a ManifestError naming the file and the field', async () => {
    const { manifest, claim } = await stored();
    const bad: Array<[unknown, string]> = [
      ['strict', 'settings: not an object'],
      [{ ...SETTINGS, policy: { name: 'lazy' } }, 'policy.name "lazy" is not strict, buffered or streaming'],
      [{ ...SETTINGS, policy: { name: 'strict', buffer_events: 3 } }, 'policy.buffer_events is not an option of strict'],
      [{ ...SETTINGS, policy: { name: 'buffered', flush_mode: 'two_phase' } }, 'policy buffered records none of buffer_events, buffer_bytes'],
      [{ ...SETTINGS, policy: { name: 'buffered', flush_mode: 'two_phase', buffer_events: -1 } }, 'policy.buffer_events is not a whole number above 0'],
      [{ ...SETTINGS, policy: { name: 'streaming', flush_mode: 'sometimes', flush_count: 1 } }, 'policy.flush_mode "sometimes" is not one of'],
      [{ ...SETTINGS, run_timeout_ms: 0 }, 'run_timeout_ms is not null or a whole number above 0'],
      [{ ...SETTINGS, retries: 1.5 }, 'retries is not a whole number, 0 or more'],
      [{ ...SETTINGS, browser: { mode: 'endpoint' } }, 'browser is not'],
      [{ ...SETTINGS, proxy: undefined }, 'proxy is not null or { pool, strategy }'],
      [{ ...SETTINGS, adapter: { kind: 'webhook' } }, 'adapter is not { kind, target } or null'],
      [{ ...SETTINGS, event_sinks: [{ kind: 'redis' }] }, 'an event sink is not { kind, target }'],
    ];
    for (const [settings, message] of bad) {
      expect(() => parseManifest(JSON.stringify({ ...manifest, settings }), 'm.json')).toThrow(ManifestError);
      expect(() => parseManifest(JSON.stringify({ ...manifest, settings }), 'm.json')).toThrow(`m.json: settings: ${message.replace(/^settings: /, '')}`);
      expect(() => parseClaim(JSON.stringify({ ...claim, settings }), 'c.json')).toThrow(`c.json: settings: ${message.replace(/^settings: /, '')}`);
    }
  });

  it('every policy and its options come back as the config the run took', () => {
    const configs: PolicyConfig[] = [
      { name: 'strict' },
      { name: 'buffered', flushMode: 'two_phase', bufferEvents: 10 },
      { name: 'buffered', flushMode: 'at_least_once', bufferBytes: 4096 },
      { name: 'buffered', flushMode: 'chunks_first', bufferEvents: 3, bufferBytes: 100 },
      { name: 'streaming', flushMode: 'at_least_once', flushCount: 7 },
      { name: 'streaming', flushMode: 'two_phase', flushIntervalMs: 250 },
    ];
    for (const c of configs) expect(policyFromRecord(recordPolicy(c))).toEqual(c);
  });

  it('a browser endpoint is recorded without its user, password or secret query values', () => {
    const s = recordSettings({ policy: { name: 'strict' }, browserWsEndpoint: 'wss://alice:hunter2@browsers.example:3000/chromium?token=s3cret&stealth=1' });
    expect(s.browser).toEqual({ mode: 'endpoint', endpoint: 'wss://browsers.example:3000/chromium?token=***&stealth=1' });
    expect(JSON.stringify(s)).not.toMatch(/alice|hunter2|s3cret/);
    expect(endpointWithoutCredentials('ws://TOKEN123@host:9222/devtools/browser/x')).toBe('ws://host:9222/devtools/browser/x');
    expect(endpointWithoutCredentials('ws://127.0.0.1:9222/devtools/browser/abc')).toBe('ws://127.0.0.1:9222/devtools/browser/abc');
    expect(endpointWithoutCredentials('not a url')).not.toContain('not a url');
    expect(recordSettings({ policy: { name: 'strict' } })).toMatchObject({ run_timeout_ms: null, retries: 0, browser: { mode: 'launch' } });
  });
});
