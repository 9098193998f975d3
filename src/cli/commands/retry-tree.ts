/**
 * `quarry retry` of a partition whose last attempt came from a crawl tree
 * (SPEC §8): the tree is re-run as a whole — a new tree, whose root's
 * `parent_run_id` is the old root, with the old tree's root script, job,
 * partition, policy and bounds (its tree manifest's options) — never one
 * member alone, whose data could not become authoritative by itself.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { ulid } from 'ulid';
import { policyFromRecord } from '../../runtime/settings.js';
import type { JsonValue } from '../../scheduler/canonical-json.js';
import type { StorageBackend } from '../../storage/backend.js';
import { readManifest } from '../../storage/reader.js';
import { readTreeManifest } from '../../storage/tree-manifest.js';
import type { CliIO } from '../io.js';
import { runTreeInvocation, stateDirFor, type TreeInvocation } from './run-tree.js';
import type { RunPlan } from './run.js';
import type { PreparedProxy } from './proxy-setup.js';

/** What a tree retry takes from the `retry` command line. */
export interface TreeRetryContext {
  backend: StorageBackend;
  dataset: string;
  storage: RunPlan['storage'];
  /** The ledger target (with its secrets) and `--ledger` as given. */
  ledger: string;
  ledgerGiven?: string;
  quiet: boolean;
  chromiumPath?: string;
  runTimeoutMs?: number;
  retries?: number;
  /** The pool the old tree's runs took their proxies from, given again: each run selects afresh (SPEC §11). */
  proxy?: PreparedProxy;
  /** `--state-dir`, where the new tree's frontier and the proxy selection state live. */
  stateDir?: string;
}

/**
 * Re-runs tree `oldTreeId` as a new tree, whose root's `parent_run_id` is
 * `parentRunId` (the old tree's last root attempt), and returns its exit code; 2 (with
 * one line) when it cannot: no tree manifest, or a root script that is gone
 * or changed since (both hashes shown).
 */
export async function retryTree(oldTreeId: string, parentRunId: string, ctx: TreeRetryContext, io: CliIO): Promise<number> {
  const stored = await readTreeManifest(ctx.backend, ctx.dataset, oldTreeId);
  if (stored === undefined) {
    io.stderr(`quarry retry: tree ${oldTreeId} has no tree manifest (it never finished): continue it with quarry run --resume ${oldTreeId}\n`);
    return 2;
  }
  const m = stored.manifest;
  const rootItem = m.items.find((i) => i.depth === 0);
  const rootAttempt = rootItem?.attempts[0];
  if (rootItem === undefined || rootAttempt === undefined) {
    io.stderr(`quarry retry: tree ${oldTreeId}: its manifest lists no root run; it cannot be re-run\n`);
    return 2;
  }
  const root = await readManifest(ctx.backend, { dataset: ctx.dataset, ...rootAttempt.partition, run_id: rootAttempt.run_id });
  if (root === undefined) {
    io.stderr(`quarry retry: tree ${oldTreeId}: its root run ${rootAttempt.run_id} has no manifest; it cannot be re-run\n`);
    return 2;
  }
  const scriptPath = root.script.path;
  // Targets resolve where the old tree's did: the root script's folder as the tree saw it.
  const rel = rootItem.target;
  if (!scriptPath.endsWith(rel)) {
    io.stderr(`quarry retry: tree ${oldTreeId}: root script ${scriptPath} does not end in its target ${rel}; it cannot be re-run\n`);
    return 2;
  }
  const scriptsRoot = scriptPath.slice(0, scriptPath.length - rel.length).replace(/\/$/, '') || '/';
  if (!existsSync(scriptPath)) {
    io.stderr(`quarry retry: tree ${oldTreeId}: root script ${scriptPath} no longer exists\n`);
    return 2;
  }
  const now = createHash('sha256').update(readFileSync(scriptPath)).digest('hex');
  if (rootItem.target_sha256 !== null && now !== rootItem.target_sha256) {
    io.stderr(`quarry retry: tree ${oldTreeId}: root script ${scriptPath} changed since the tree ran (SHA-256 then ${rootItem.target_sha256}, now ${now}); not re-run\n`);
    return 2;
  }
  const treeId = ulid();
  if (!ctx.quiet) io.stderr(`quarry retry: re-running tree ${oldTreeId} as a new tree ${treeId} (root parent ${parentRunId})\n`);
  const inv: TreeInvocation = {
    treeId,
    resume: false,
    scriptPath,
    scriptsRoot,
    job: root.job as JsonValue,
    partition: { dataset: ctx.dataset, source: root.source, category: root.category, day: root.day },
    policy: root.settings ? policyFromRecord(root.settings.policy) : { name: 'strict' },
    storage: ctx.storage,
    ledger: ctx.ledger,
    ...(ctx.ledgerGiven ? { ledgerGiven: ctx.ledgerGiven } : {}),
    tree: { depth: m.options.depth, maxRuns: m.options.max_runs, parallel: m.options.parallel, allowFailedChildren: m.options.allow_failed_children },
    retries: ctx.retries ?? m.options.retries,
    ...(ctx.runTimeoutMs ?? root.settings?.run_timeout_ms ? { runTimeoutMs: (ctx.runTimeoutMs ?? root.settings?.run_timeout_ms)! } : {}),
    ...(ctx.chromiumPath ? { chromiumPath: ctx.chromiumPath } : {}),
    jobId: m.job_id,
    parentRunId,
    stateDir: stateDirFor(ctx.stateDir, ctx.storage, io),
    ...(ctx.proxy ? { proxy: ctx.proxy } : {}),
    quiet: ctx.quiet,
  };
  return runTreeInvocation(inv, io);
}
