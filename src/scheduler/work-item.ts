/**
 * Turns a root script or an `enqueue` payload into a work item for
 * `Frontier.admit` (SPEC §10): the target resolved under the scripts root,
 * its SHA-256, the dedup key, depth = parent + 1. A target outside the root
 * or missing still becomes an item — a failed one (`target_not_found`).
 */
import type { JsonValue } from './canonical-json.js';
import type { WorkItemInput } from './frontier.js';
import { dedupKey, paramsDigest, resolveTarget } from './target.js';

/** What an `enqueue` event carries (the envelope's payload). */
export interface EnqueueRequest {
  readonly target: string;
  readonly params?: Record<string, unknown>;
  readonly source?: string;
  readonly category?: string;
}

/** The run that enqueued, or null for the root. */
export interface ItemParent {
  readonly run_id: string;
  readonly depth: number;
}

/**
 * Builds the work item for `req` under `scriptsRoot`. Throws
 * CanonicalJsonError when the params have no canonical JSON form (the caller
 * counts that enqueue as refused; it cannot be keyed).
 */
export async function workItemFor(scriptsRoot: string, req: EnqueueRequest, parent: ItemParent | null): Promise<WorkItemInput> {
  const params = (req.params ?? {}) as JsonValue;
  const digest = paramsDigest(params);
  const t = await resolveTarget(scriptsRoot, req.target);
  const common = {
    params,
    params_digest: digest,
    depth: parent === null ? 0 : parent.depth + 1,
    parent_run_id: parent?.run_id ?? null,
    source: req.source ?? null,
    category: req.category ?? null,
  };
  if (!t.ok) return { ...common, key: dedupKey(t.relPath, params), target: t.relPath, target_sha256: null, not_found: t.detail };
  return { ...common, key: dedupKey(t.relPath, params), target: t.relPath, target_sha256: t.sha256 };
}
