/**
 * Policy selection (SPEC §6): a validated config compiles into one policy.
 */
import type { PolicyName } from '../../storage/manifest.js';
import type { RunWriter } from '../../storage/run-writer.js';
import type { IngestionPolicy } from './policy.js';
import { StrictPolicy } from './strict.js';

export type FlushMode = 'at_least_once' | 'chunks_first' | 'two_phase';

export type PolicyConfig =
  | { name: 'strict' }
  | { name: 'buffered'; bufferEvents?: number; bufferBytes?: number; flushMode: FlushMode }
  | { name: 'streaming'; flushCount?: number; flushIntervalMs?: number; flushMode: FlushMode };

export const POLICY_NAMES: readonly PolicyName[] = ['strict', 'buffered', 'streaming'];

/** Builds the policy for one run. */
export function createPolicy(cfg: PolicyConfig, writer: RunWriter, _now: () => Date): IngestionPolicy {
  switch (cfg.name) {
    case 'strict':
      return new StrictPolicy(writer);
    default:
      throw new Error(`policy ${cfg.name} is not available yet`);
  }
}

export { PolicyFailureError, type IngestionPolicy } from './policy.js';
