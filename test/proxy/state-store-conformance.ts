/**
 * One conformance suite for every proxy selection state store (SPEC §11,
 * §12): the SQLite file of one machine and the Redis store of a queue
 * deployment must behave the same. Each test opens several clients of one
 * store (separate SQLite connections, separate Redis connections), as runs of
 * different invocations or workers would, and selects through
 * {@link ProxySelector}, so round robin position, sticky map with its TTL,
 * the recency window and rotations are checked as a user sees them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ProxySelector, type ProxyRequest } from '../../src/proxy/selector.js';
import type { ProxyStateStore } from '../../src/proxy/state.js';
import type { ProxyPool } from '../../src/sdk/index.js';

/** A fresh, empty store location per test; `client()` opens one more client of it. */
export interface StoreFixture {
  client(): Promise<ProxyStateStore>;
  teardown(): Promise<void>;
}

const endpoints = (n: number) => Array.from({ length: n }, (_, i) => ({ protocol: 'http' as const, host: '127.0.0.1', port: 9000 + i, username: 'u', password: 'pw-secret' }));
const pool = (over: Partial<ProxyPool> = {}): ProxyPool => ({ name: 'p', strategy: 'round_robin', endpoints: endpoints(4), ...over });
const req = (over: Partial<ProxyRequest> = {}): ProxyRequest => ({ pool: 'p', jobKey: 'k', ...over });

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export function proxyStateConformance(name: string, make: () => Promise<StoreFixture>): void {
  describe(`proxy selection state store: ${name}`, () => {
    let fixture: StoreFixture | undefined;
    const open: ProxyStateStore[] = [];
    afterEach(async () => {
      for (const s of open.splice(0)) await s.close();
      await fixture?.teardown();
      fixture = undefined;
    });

    async function selectors(p: ProxyPool, n: number, opts: { now?: () => number; random?: () => number } = {}): Promise<ProxySelector[]> {
      fixture ??= await make();
      const out: ProxySelector[] = [];
      for (let i = 0; i < n; i++) {
        const store = await fixture.client();
        open.push(store);
        out.push(new ProxySelector(new Map([[p.name, p]]), store, opts));
      }
      return out;
    }

    it('round robin continues across clients: each client takes the next endpoint, never one another client just took', async () => {
      const [a, b] = await selectors(pool(), 2);
      const seq: number[] = [];
      seq.push((await a!.select(req())).index);
      for (let i = 0; i < 3; i++) seq.push((await b!.select(req())).index);
      // a's view of the state is now three selections old: it must still take the next in turn.
      seq.push((await a!.select(req())).index);
      seq.push((await b!.select(req())).index);
      expect(seq).toEqual([0, 1, 2, 3, 0, 1]);
      expect((await a!.state('p')).selections).toBe(6);
    });

    it('concurrent selections from two clients are each applied once: round robin stays exactly even', async () => {
      const [a, b] = await selectors(pool(), 2);
      const per = 40;
      const picks = (await Promise.all([a!, b!].map(async (s) => {
        const mine: number[] = [];
        await Promise.all(Array.from({ length: per }, async () => { mine.push((await s.select(req())).index); }));
        return mine;
      }))).flat();
      expect(picks).toHaveLength(2 * per);
      const counts = [0, 1, 2, 3].map((i) => picks.filter((x) => x === i).length);
      expect(counts).toEqual([20, 20, 20, 20]);
      const state = await b!.state('p');
      expect(state.selections).toBe(2 * per);
      expect(state.cursor).toBe(0);
    });

    it('a sticky key stays on its endpoint whichever client runs it, until its TTL lapses', async () => {
      let now = Date.UTC(2026, 0, 1);
      const p = pool({ strategy: 'sticky', sticky: { scope: 'job', ttl_ms: 60_000 } });
      const [a, b] = await selectors(p, 2, { now: () => now });
      const first = await a!.select(req({ jobKey: 'shop-1' }));
      expect(first.sticky?.hit).toBe(false);
      const other = await a!.select(req({ jobKey: 'shop-2' }));
      expect(other.index).not.toBe(first.index);
      now += 59_000;
      const again = await b!.select(req({ jobKey: 'shop-1' }));
      expect(again).toMatchObject({ index: first.index, sticky: { hit: true } });
      // Used at +59 s, but the TTL runs from the assignment: at +61 s the key is assigned afresh.
      now += 2_000;
      const lapsed = await b!.select(req({ jobKey: 'shop-1' }));
      expect(lapsed.sticky?.hit).toBe(false);
    });

    it('a rotation marked by one client moves the sticky key off its endpoint for the other', async () => {
      const p = pool({ strategy: 'sticky', sticky: { scope: 'job' } });
      const [a, b] = await selectors(p, 2);
      const first = await a!.select(req({ jobKey: 'k1' }));
      await a!.mark(first);
      const next = await b!.select(req({ jobKey: 'k1' }));
      expect(next.index).not.toBe(first.index);
      expect(next.sticky?.hit).toBe(false);
      expect((await a!.select(req({ jobKey: 'k1' }))).index).toBe(next.index);
    });

    it('the recency window holds over the picks of every client', async () => {
      const p = pool({ strategy: 'random', endpoints: endpoints(5), recency_window: 3 });
      const [a, b] = await selectors(p, 2, { random: seeded(7) });
      const seq: number[] = [];
      for (let i = 0; i < 30; i++) seq.push((await (i % 2 === 0 ? a! : b!).select(req())).index);
      for (let i = 3; i < seq.length; i++) expect(seq.slice(i - 3, i)).not.toContain(seq[i]);
      expect(new Set(seq).size).toBe(5);
    });

    it('a failed run marked by one client is skipped by the next round robin selection of another', async () => {
      const [a, b] = await selectors(pool(), 2);
      const s0 = await a!.select(req());
      expect(s0.index).toBe(0);
      await a!.mark(await a!.select(req()));
      expect((await b!.select(req())).index).toBe(2);
    });

    it('a pool whose endpoint list changed starts afresh; read never creates state', async () => {
      const [a] = await selectors(pool(), 1);
      expect(await a!.store.read('p')).toBeUndefined();
      await a!.select(req());
      await a!.select(req());
      const [b] = await selectors(pool({ endpoints: endpoints(3) }), 1);
      expect((await b!.select(req())).index).toBe(0);
      expect(JSON.stringify(await b!.store.read('p'))).not.toContain('pw-secret');
    });
  });
}
