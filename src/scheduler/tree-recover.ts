/**
 * Resume's first step (SPEC §10): every attempt still in flight in the
 * frontier belonged to an invocation that died (the caller holds the tree's
 * OS lock, so no live process owns one). Each is checked against storage:
 * with a manifest it is recorded done with the manifest's outcome (an
 * `interrupted` one is re-queued by the frontier as usual) and the
 * `enqueue` records it stored are admitted again (duplicates are free), so
 * children whose admission the kill cut off are not lost; without a manifest
 * it is handed back and re-run as attempt + 1.
 *
 * Two guards: a manifest whose policy dropped enqueues cannot tell which
 * children it had, so that run is re-run rather than recorded; and an item
 * whose attempts were lost {@link MAX_LOST_ATTEMPTS} times (its run takes
 * the whole invocation down with it, say) is recorded failed
 * (`executor_crash`) instead of being re-run for ever.
 */
import type { StorageBackend } from '../storage/backend.js';
import { manifestKey, type LogicalPartition } from '../storage/layout.js';
import { parseManifest, type RunManifest } from '../storage/manifest.js';
import { streamRecords } from '../storage/reader.js';
import type { EventRecord } from '../storage/records.js';
import { isRequeueOutcome, type AttemptPartition, type Frontier, type Lease, type WorkItem } from './frontier.js';
import { workItemFor, type EnqueueRequest } from './work-item.js';

/** An item whose attempts were lost this many times is failed instead of re-run again. */
export const MAX_LOST_ATTEMPTS = 10;

/** What recovery did, for the report and the tests. */
export interface RecoverySummary {
  /** In-flight attempts whose manifest was found and recorded. */
  recorded: number;
  /** In-flight attempts without a manifest, handed back to re-run. */
  requeued: number;
  /** Items failed because too many of their attempts were lost. */
  gaveUp: number;
}

/** The partition an item's runs write: the root's, with the item's per-enqueue overrides. */
export function itemPartition(base: LogicalPartition, item: Pick<WorkItem, 'source' | 'category'>): AttemptPartition {
  return { dataset: base.dataset, source: item.source ?? base.source, category: item.category ?? base.category, day: base.day };
}

/**
 * Settles every in-flight attempt of `frontier` against `backend` (see the
 * file comment). Call it holding the tree's lock, before the first lease.
 */
export async function recoverInFlight(frontier: Frontier, backend: StorageBackend, base: LogicalPartition, scriptsRoot: string): Promise<RecoverySummary> {
  const summary: RecoverySummary = { recorded: 0, requeued: 0, gaveUp: 0 };
  const inFlight = await frontier.inFlight();
  if (inFlight.length === 0) return summary;
  const lostBefore = new Map((await frontier.items()).map((i) => [i.key, i.attempts.filter((a) => a.outcome !== null && isRequeueOutcome(a.outcome) && a.outcome !== 'interrupted').length]));
  const owners = new Set<string>();
  for (const lease of inFlight) {
    const partition = itemPartition(base, lease.item);
    const manifest = await readManifestOf(backend, { ...partition, run_id: lease.run_id });
    if (manifest !== undefined && (manifest.policy.dropped_by_type.enqueue ?? 0) === 0) {
      await readmitEnqueues(frontier, backend, manifest, lease, scriptsRoot);
      await frontier.complete(lease, manifest.outcome, partition);
      summary.recorded++;
    } else if ((lostBefore.get(lease.key) ?? 0) + 1 >= MAX_LOST_ATTEMPTS) {
      await frontier.complete(lease, 'executor_crash', partition);
      summary.gaveUp++;
    } else {
      owners.add(lease.owner);
      summary.requeued++;
    }
  }
  for (const owner of owners) await frontier.requeueAbandoned(owner);
  return summary;
}

async function readManifestOf(backend: StorageBackend, p: AttemptPartition & { run_id: string }): Promise<RunManifest | undefined> {
  const key = manifestKey(p);
  if ((await backend.stat(key)) === undefined) return undefined;
  return parseManifest(await backend.get(key), key);
}

async function readmitEnqueues(frontier: Frontier, backend: StorageBackend, manifest: RunManifest, lease: Lease, scriptsRoot: string): Promise<void> {
  const parent = { run_id: lease.run_id, depth: lease.item.depth };
  for await (const r of streamRecords(backend, manifest, { eventTypes: ['enqueue'] })) {
    const e = r as EventRecord;
    if (e.event_type !== 'enqueue') continue;
    await frontier.admit([await workItemFor(scriptsRoot, e.payload as unknown as EnqueueRequest, parent)]);
  }
}
