/**
 * The frontier port's one conformance suite (SPEC §10, STYLE "one conformance
 * suite per port"): every implementation — SQLite here, Redis for §12 — runs
 * it with several concurrent clients of one tree and a shared fake clock.
 * Call `frontierConformance(name, harness)` inside a test file.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock, Frontier, Lease, TreeOptions, WorkItemInput } from '../../src/scheduler/frontier.js';
import { dedupKey, paramsDigest } from '../../src/scheduler/target.js';
import { fakeClock, type FakeClock } from '../_harness/fake-clock.js';

/** How the suite gets frontiers of one implementation. */
export interface FrontierHarness {
  /** Creates a tree with `options` and returns `clients` independent clients of it, all on `clock`. */
  start(options: TreeOptions, clock: Clock, clients: number): Promise<Frontier[]>;
  /** Frees what `start` made (clients are closed by the suite). */
  teardown(): Promise<void>;
}

const ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const LEASE_MS = 30_000;

let treeSeq = 0;
export function treeOptions(over: Partial<TreeOptions> = {}): TreeOptions {
  return {
    tree_id: `01TREE${String(++treeSeq).padStart(4, '0')}${Math.random().toString(36).slice(2, 10).toUpperCase()}`,
    max_depth: 2, max_runs: 100, parallel: 4, retries: 0, lease_ms: LEASE_MS,
    run: { policy: 'strict', source: 'shop', category: 'products', proxy_config: 'proxies.yaml#pool-a', token: '${API_TOKEN}' },
    ...over,
  };
}

/** A work item for page `n` (same n = same key). */
export function page(n: number, depth = 1, over: Partial<WorkItemInput> = {}): WorkItemInput {
  const params = { page: n };
  return {
    key: dedupKey('detail.ts', params), target: 'detail.ts', params, params_digest: paramsDigest(params),
    target_sha256: 'a'.repeat(64), depth, parent_run_id: depth === 0 ? null : 'PARENT', ...over,
  };
}

export const root = (): WorkItemInput => ({ ...page(0, 0), key: dedupKey('listing.ts', {}), target: 'listing.ts', params: {} });

export function frontierConformance(name: string, makeHarness: () => Promise<FrontierHarness>): void {
  describe(`frontier conformance: ${name}`, () => {
    let harness: FrontierHarness | undefined;
    let open: Frontier[] = [];
    let clock: FakeClock;

    async function start(over: Partial<TreeOptions> = {}, clients = 3): Promise<Frontier[]> {
      harness = await makeHarness();
      clock = fakeClock();
      open = await harness.start(treeOptions(over), clock, clients);
      return open;
    }

    afterEach(async () => {
      for (const f of open) await f.close();
      open = [];
      await harness?.teardown();
      harness = undefined;
    });

    it('admits a key once across concurrent clients, counting every other enqueue of it as a duplicate', async () => {
      const clients = await start();
      const batches = clients.map((_, c) => Array.from({ length: 20 }, (_v, i) => page(i + c * 5)));
      const decisions = await Promise.all(clients.map((f, c) => f.admit(batches[c]!)));
      const admittedKeys = decisions.flatMap((d, c) => d.flatMap((x, i) => (x === 'admitted' ? [batches[c]![i]!.key] : [])));
      expect(new Set(admittedKeys).size).toBe(admittedKeys.length);
      expect(admittedKeys.length).toBe(30);
      const counters = await clients[0]!.counters();
      expect(counters).toMatchObject({ admitted: 30, deduplicated: 30, queued: 30, not_executed_cap: 0 });
      // Dedup holds within one batch too.
      expect(await clients[1]!.admit([page(99), page(99)])).toEqual(['admitted', 'duplicate']);
    });

    it('admits exactly max_runs distinct items, root included, and counts each refused key once', async () => {
      const clients = await start({ max_runs: 10 });
      expect(await clients[0]!.admit([root()])).toEqual(['admitted']);
      await Promise.all(clients.map((f, c) => f.admit(Array.from({ length: 12 }, (_v, i) => page(i + c * 4)))));
      const again = await clients[2]!.admit([page(1), page(500)]);
      const c = await clients[1]!.counters();
      expect(c.admitted).toBe(10);
      expect((await clients[0]!.items()).length).toBe(10);
      // 20 distinct pages offered; 9 admitted after the root; 11 refused, 500 makes 12.
      expect(c.not_executed_cap).toBe(12);
      expect(again[1]).toBe('over_cap');
    });

    it('refuses items deeper than max_depth, and stops counting a key once it is admitted shallower', async () => {
      const [f] = await start({ max_depth: 1 });
      expect(await f!.admit([page(1, 2), page(2, 2), page(1, 2)])).toEqual(['over_depth', 'over_depth', 'over_depth']);
      expect((await f!.counters()).not_executed_depth).toBe(2);
      expect(await f!.admit([page(1, 1)])).toEqual(['admitted']);
      expect(await f!.counters()).toMatchObject({ not_executed_depth: 1, admitted: 1 });
    });

    it('gives the root its tree_id as first run_id and every other attempt a fresh ULID', async () => {
      const [f] = await start({ retries: 1 });
      await f!.admit([root(), page(1)]);
      const [r, p] = await f!.lease('w1', 2);
      expect(r!.run_id).toBe(f!.treeId);
      expect(r!.attempt).toBe(1);
      expect(p!.run_id).toMatch(ULID_RE);
      await f!.complete(r!, 'script_error');
      const [r2] = await f!.lease('w1', 1);
      expect(r2!.key).toBe(r!.key);
      expect(r2!.attempt).toBe(2);
      expect(r2!.run_id).toMatch(ULID_RE);
      expect(r2!.run_id).not.toBe(f!.treeId);
      expect(r2!.previous_run_id).toBe(f!.treeId);
    });

    it('leases each item to one owner at a time and never beyond parallel in flight, across clients', async () => {
      const clients = await start({ parallel: 5 });
      await clients[0]!.admit(Array.from({ length: 40 }, (_v, i) => page(i)));
      const grants = await Promise.all(clients.map((f, c) => f.lease(`w${c}`, 4)));
      const all = grants.flat();
      expect(all.length).toBe(5);
      expect(new Set(all.map((l) => l.key)).size).toBe(5);
      expect((await clients[0]!.counters()).running).toBe(5);
      expect(await clients[1]!.lease('w9', 3)).toEqual([]);
      // Run the whole tree, interleaving clients; the bound holds at every step.
      const live = new Map<string, Lease>(all.map((l) => [l.run_id, l]));
      let peak = live.size;
      for (let step = 0; live.size > 0 || (await clients[0]!.counters()).queued > 0; step++) {
        const f = clients[step % clients.length]!;
        const first = live.values().next().value;
        if (first && step % 2 === 0) {
          live.delete(first.run_id);
          await f.complete(first, 'success');
        }
        for (const l of await f.lease(`w${step % clients.length}`, 3)) {
          expect(live.has(l.run_id)).toBe(false);
          live.set(l.run_id, l);
        }
        peak = Math.max(peak, live.size);
        expect(live.size).toBeLessThanOrEqual(5);
        expect((await f.counters()).running).toBe(live.size);
        if (step > 1000) throw new Error('the tree did not drain');
      }
      expect(peak).toBe(5);
      expect(await clients[2]!.counters()).toMatchObject({ admitted: 40, succeeded: 40, running: 0, queued: 0 });
    });

    it('expires a lease after lease_ms exactly and returns its item as attempt + 1 to any client', async () => {
      const [a, b] = await start({ parallel: 1 });
      await a!.admit([page(1)]);
      const [l1] = await a!.lease('dead-worker', 1);
      clock.advance(LEASE_MS - 1);
      expect(await b!.requeueExpired()).toBe(0);
      expect(await b!.lease('w2', 1)).toEqual([]);
      clock.advance(1);
      // lease() requeues what expired before counting parallel, so nothing waits on a dead owner.
      const [l2] = await b!.lease('w2', 1);
      expect(l2).toMatchObject({ key: l1!.key, attempt: 2, owner: 'w2', previous_run_id: l1!.run_id });
      const [item] = await b!.items();
      expect(item!.attempts.map((x) => [x.attempt, x.outcome])).toEqual([[1, 'expired'], [2, null]]);
      expect((await a!.counters()).requeued).toBe(1);
      expect(await a!.renew('dead-worker')).toEqual([]);
    });

    it('requeueExpired returns expired leases and only those', async () => {
      const [a, b] = await start();
      await a!.admit([page(1), page(2)]);
      const [l1] = await a!.lease('w1', 1);
      clock.advance(LEASE_MS / 2);
      await b!.lease('w2', 1);
      clock.advance(LEASE_MS / 2);
      expect(await b!.requeueExpired()).toBe(1);
      expect(await a!.counters()).toMatchObject({ running: 1, queued: 1 });
      const [again] = await a!.lease('w3', 5);
      expect(again).toMatchObject({ key: l1!.key, attempt: 2 });
    });

    it('keeps a renewed lease past lease_ms, and never revives an expired one', async () => {
      const [a, b] = await start();
      await a!.admit([page(1), page(2)]);
      const held = await a!.lease('w1', 2);
      for (let i = 0; i < 5; i++) {
        clock.advance(LEASE_MS / 3);
        expect(await a!.renew('w1')).toEqual(held.map((l) => l.run_id).sort());
        expect(await b!.requeueExpired()).toBe(0);
      }
      expect(await b!.renew('w2')).toEqual([]);
      clock.advance(LEASE_MS);
      expect(await a!.renew('w1')).toEqual([]);
      expect(await b!.requeueExpired()).toBe(2);
    });

    it('records a completion once: repeats, from any client, change nothing', async () => {
      const clients = await start();
      await clients[0]!.admit([page(1)]);
      const [l] = await clients[0]!.lease('w1', 1);
      const part = { dataset: 'd', source: 'shop', category: 'products', day: '2026-01-01' };
      const results = await Promise.all(clients.map((f) => f.complete(l!, 'success', part)));
      expect(results.filter((r) => r.recorded).length).toBe(1);
      expect(await clients[1]!.complete(l!, 'script_error')).toEqual({ recorded: false, state: 'succeeded' });
      const [item] = await clients[2]!.items();
      expect(item).toMatchObject({ state: 'succeeded', final_run_id: l!.run_id });
      expect(item!.attempts).toEqual([expect.objectContaining({ run_id: l!.run_id, outcome: 'success', partition: part })]);
      expect(await clients[0]!.counters()).toMatchObject({ succeeded: 1, failed: 0, retried: 0, running: 0 });
      await expect(clients[0]!.complete({ ...l!, run_id: 'NOPE' }, 'success')).rejects.toThrow(/no attempt/);
    });

    it('re-runs a failed item under retries, then records its last failure as final', async () => {
      const [f] = await start({ retries: 2 });
      await f!.admit([page(1)]);
      const runIds: string[] = [];
      for (const outcome of ['script_error', 'executor_crash', 'script_error'] as const) {
        const [l] = await f!.lease('w', 1);
        runIds.push(l!.run_id);
        await f!.complete(l!, outcome);
      }
      expect(await f!.lease('w', 1)).toEqual([]);
      const [item] = await f!.items();
      expect(item).toMatchObject({ state: 'failed', reason: 'script_error', final_run_id: runIds[2], failures: 3 });
      expect(item!.attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
      expect(await f!.counters()).toMatchObject({ admitted: 1, failed: 1, retried: 2, succeeded: 0 });
    });

    it('re-runs an interrupted attempt as attempt + 1 without counting it against retries', async () => {
      const [f] = await start({ retries: 0 });
      await f!.admit([page(1)]);
      const [l1] = await f!.lease('w', 1);
      expect(await f!.complete(l1!, 'interrupted')).toEqual({ recorded: true, state: 'queued' });
      const [l2] = await f!.lease('w', 1);
      expect(l2!.attempt).toBe(2);
      await f!.complete(l2!, 'success');
      const [item] = await f!.items();
      expect(item).toMatchObject({ state: 'succeeded', final_run_id: l2!.run_id, failures: 0 });
      expect(await f!.counters()).toMatchObject({ succeeded: 1, retried: 0, requeued: 1 });
    });

    it('hands back an owner\'s leases with requeueAbandoned, without counting against retries', async () => {
      const [a, b] = await start({ retries: 0 });
      await a!.admit([page(1), page(2), page(3)]);
      await a!.lease('old', 2);
      await b!.lease('other', 1);
      expect(await b!.requeueAbandoned('old')).toBe(2);
      expect(await a!.inFlight()).toEqual([expect.objectContaining({ owner: 'other' })]);
      const again = await b!.lease('new', 5);
      expect(again.map((l) => l.attempt)).toEqual([2, 2]);
    });

    it('lets the first valid completion win, even from an attempt whose lease expired', async () => {
      const [a, b] = await start({ parallel: 2 });
      await a!.admit([page(1)]);
      const [slow] = await a!.lease('slow', 1);
      clock.advance(LEASE_MS);
      const [fresh] = await b!.lease('fresh', 1);
      expect(fresh!.attempt).toBe(2);
      expect(await a!.complete(slow!, 'success')).toEqual({ recorded: true, state: 'succeeded' });
      expect(await b!.complete(fresh!, 'success')).toEqual({ recorded: true, state: 'succeeded' });
      const [item] = await b!.items();
      expect(item!.final_run_id).toBe(slow!.run_id);
      expect(await a!.counters()).toMatchObject({ succeeded: 1, running: 0 });
    });

    it('admits a missing target as a failed item that is never leased', async () => {
      const [f] = await start({ retries: 3 });
      const missing = page(7, 1, { target_sha256: null, not_found: 'target "x.ts" does not exist' });
      expect(await f!.admit([missing, page(8)])).toEqual(['admitted', 'admitted']);
      const leased = await f!.lease('w', 5);
      expect(leased.map((l) => l.key)).toEqual([page(8).key]);
      expect(await f!.admit([missing])).toEqual(['duplicate']);
      const items = await f!.items();
      expect(items[0]).toMatchObject({ state: 'failed', reason: 'target_not_found', attempts: [], final_run_id: null });
      expect(await f!.counters()).toMatchObject({ admitted: 2, failed: 1, running: 1 });
    });

    it('grants finalization to exactly one caller, once, when nothing admitted is unfinished', async () => {
      const clients = await start();
      await clients[0]!.admit([root(), page(1)]);
      expect(await clients[1]!.claimFinalization()).toBe(false);
      const leases = await clients[0]!.lease('w', 2);
      expect(await clients[1]!.claimFinalization()).toBe(false);
      await clients[0]!.complete(leases[0]!, 'success');
      expect(await clients[1]!.claimFinalization()).toBe(false);
      await clients[0]!.complete(leases[1]!, 'script_error');
      const claims = await Promise.all([...clients, ...clients].map((f) => f.claimFinalization()));
      expect(claims.filter(Boolean).length).toBe(1);
      expect(await clients[2]!.claimFinalization()).toBe(false);
    });

    it('lists leases in flight with their items, for resume to check against storage', async () => {
      const [a, b] = await start();
      await a!.admit([root(), page(1, 1, { source: 'other-shop', category: null })]);
      const leased = await a!.lease('w', 2);
      const listed = await b!.inFlight();
      expect(listed.map((l) => l.run_id)).toEqual(leased.map((l) => l.run_id));
      expect(listed[1]!.item).toMatchObject({ target: 'detail.ts', params: { page: 1 }, depth: 1, parent_run_id: 'PARENT', source: 'other-shop', category: null });
      await a!.complete(leased[0]!, 'success');
      expect((await b!.inFlight()).map((l) => l.run_id)).toEqual([leased[1]!.run_id]);
    });

    it('stores the tree options for resume, with parallel as last set, and refuses a secret', async () => {
      const clients = await start({ parallel: 3 });
      const opts = await clients[1]!.options();
      expect(opts).toMatchObject({ max_depth: 2, max_runs: 100, parallel: 3, retries: 0, lease_ms: LEASE_MS, run: { token: '${API_TOKEN}' } });
      await clients[0]!.setParallel(7);
      expect((await clients[2]!.options()).parallel).toBe(7);
      await expect(clients[0]!.setParallel(0)).rejects.toThrow(/parallel must be an integer/);
      const h = await makeHarness();
      try {
        await expect(h.start(treeOptions({ run: { ledger: 'postgres://u:hunter2@db/q' } }), clock, 1)).rejects.toThrow(/password/);
      } finally {
        await h.teardown();
      }
    });
  });
}
