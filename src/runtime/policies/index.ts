/**
 * Policy selection (SPEC §6): a validated config compiles into one policy.
 */
import type { PolicyName } from '../../storage/manifest.js';
import type { RunWriter } from '../../storage/run-writer.js';
import type { IngestionPolicy } from './policy.js';
import { BufferedPolicy } from './buffered.js';
import { StreamingPolicy, type StreamingDeps } from './streaming.js';
import { StrictPolicy } from './strict.js';

export type FlushMode = 'at_least_once' | 'chunks_first' | 'two_phase';

export type PolicyConfig =
  | { name: 'strict' }
  | { name: 'buffered'; bufferEvents?: number; bufferBytes?: number; flushMode: FlushMode }
  | { name: 'streaming'; flushCount?: number; flushIntervalMs?: number; flushMode: FlushMode };

export const POLICY_NAMES: readonly PolicyName[] = ['strict', 'buffered', 'streaming'];

const realDeps = (warn: (m: string) => void) => ({
  sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
  warn,
  setInterval: (fn: () => void, ms: number) => setInterval(fn, ms),
  clearInterval: (h: unknown) => clearInterval(h as NodeJS.Timeout),
});

/** Builds the policy for one run. `warn` receives one-line operator notices (drop totals); `deps` replace the real clock and timers. */
export function createPolicy(cfg: PolicyConfig, writer: RunWriter, warn: (message: string) => void = () => undefined, deps?: Partial<StreamingDeps>): IngestionPolicy {
  const d = { ...realDeps(warn), ...deps };
  switch (cfg.name) {
    case 'strict':
      return new StrictPolicy(writer);
    case 'buffered':
      return new BufferedPolicy(writer, cfg, d);
    case 'streaming':
      return new StreamingPolicy(writer, cfg, d);
  }
}

export { PolicyFailureError, type IngestionPolicy } from './policy.js';
