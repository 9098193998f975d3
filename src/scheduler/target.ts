/**
 * Work-item targets and their dedup key (SPEC §10): a target resolves under
 * the scripts root (the working directory locally, `--scripts-dir` on a
 * worker); one that resolves outside it, or to nothing, is a failed item with
 * no run (`target_not_found`), never retried. An admitted item records its
 * target's SHA-256 so a worker can refuse a script that changed since (§12).
 */
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { canonicalJson } from './canonical-json.js';

/** A target found under the scripts root. */
export interface ResolvedTarget {
  readonly ok: true;
  /** Path relative to the scripts root, `/`-separated: the first half of the dedup key. */
  readonly relPath: string;
  /** Absolute real path of the script file. */
  readonly absPath: string;
  /** SHA-256 of the file's bytes, lowercase hex. */
  readonly sha256: string;
}

/** A target that cannot run: the item is failed at once and never retried. */
export interface MissingTarget {
  readonly ok: false;
  readonly reason: 'target_not_found';
  /** The target as written, made relative to the root lexically (`/`-separated): it still keys the item. */
  readonly relPath: string;
  /** One line saying what was wrong and what to do. */
  readonly detail: string;
}

/**
 * Resolves `target` (as enqueued: relative to the scripts root, or absolute)
 * under `scriptsRoot`. Symlinks are followed before the containment check, so
 * a link pointing out of the root is outside it. Never throws for a bad
 * target; throws only when the scripts root itself cannot be resolved.
 *
 * The file-system calls are synchronous: each takes microseconds on a local
 * script, less than a thread-pool round trip, and a listing that enqueues 500
 * pages made 3 500 of those (two realpaths, a stat and a read each) while its
 * tree's runs waited behind them on a loaded machine (docs/benchmarks.md,
 * "Fast no-browser crawl").
 */
export async function resolveTarget(scriptsRoot: string, target: string): Promise<ResolvedTarget | MissingTarget> {
  const root = realpathSync.native(scriptsRoot);
  const lexical = relative(root, resolve(root, target)).split(sep).join('/');
  const missing = (why: string): MissingTarget => ({
    ok: false,
    reason: 'target_not_found',
    relPath: lexical,
    detail: `target ${JSON.stringify(target)} ${why}; targets resolve relative to the scripts root ${root}`,
  });
  if (target === '' || target.includes('\0')) return missing('is not a file path');
  let abs: string;
  try {
    abs = realpathSync.native(resolve(root, target));
  } catch {
    return missing('does not exist');
  }
  const rel = relative(root, abs);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return missing('lies outside the scripts root');
  try {
    if (!statSync(abs).isFile()) return missing('is not a file');
    const sha256 = createHash('sha256').update(readFileSync(abs)).digest('hex');
    return { ok: true, relPath: rel.split(sep).join('/'), absPath: abs, sha256 };
  } catch {
    return missing('cannot be read');
  }
}

/**
 * The dedup key of a work item (SPEC §10): the target's root-relative,
 * `/`-separated path plus its params as RFC 8785 canonical JSON, joined as
 * the canonical JSON array `[path, params]` so no path can be mistaken for
 * params. Absent params count as `{}`. The per-enqueue `source`/`category`
 * are not part of it. Throws {@link CanonicalJsonError} on params JSON cannot carry.
 */
export function dedupKey(relPath: string, params: unknown): string {
  return canonicalJson([relPath, params ?? {}]);
}

/** SHA-256 (hex) of the params' canonical JSON: the manifest's `params digest`. */
export function paramsDigest(params: unknown): string {
  return createHash('sha256').update(canonicalJson(params ?? {})).digest('hex');
}

/** SHA-256 (hex) of a dedup key: the id a queue job may carry (§12 uses it in BullMQ job ids). */
export function keyDigest(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}
