import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePools, ProxyConfigError } from '../../src/proxy/pools-config.js';
import { ProxySelector, stickyKeyOf, UnknownPoolError, type ProxyRequest } from '../../src/proxy/selector.js';
import { proxyStatePath, SqliteProxyStateStore } from '../../src/proxy/sqlite-state-store.js';
import { MAX_STICKY_ENTRIES, selectEndpoint } from '../../src/proxy/strategy.js';
import { validateProxyPool, type ProxyPool } from '../../src/sdk/index.js';

const dirs: string[] = [];
const stores: SqliteProxyStateStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'quarry-proxy-'));
  dirs.push(d);
  return d;
}

function store(dir: string): SqliteProxyStateStore {
  const s = SqliteProxyStateStore.open(proxyStatePath(dir));
  stores.push(s);
  return s;
}

const endpoints = (n: number) => Array.from({ length: n }, (_, i) => ({ protocol: 'http' as const, host: '127.0.0.1', port: 9000 + i, username: 'u', password: 'pw-secret' }));
const pool = (over: Partial<ProxyPool> = {}): ProxyPool => ({ name: 'p', strategy: 'round_robin', endpoints: endpoints(3), ...over });

/** A seeded generator, so the random strategy's sequences are reproducible. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function selector(p: ProxyPool, dir = stateDir(), opts: { now?: () => number; random?: () => number } = {}): ProxySelector {
  return new ProxySelector(new Map([[p.name, p]]), store(dir), opts);
}

const req = (over: Partial<ProxyRequest> = {}): ProxyRequest => ({ pool: 'p', jobKey: 'k', ...over });

async function sequence(sel: ProxySelector, n: number, r: (i: number) => ProxyRequest = () => req()): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await sel.select(r(i))).index);
  return out;
}

describe('pool validation', () => {
  it('validateProxyPool names every bad field and never echoes a password', () => {
    const r = validateProxyPool({ name: 'a b', strategy: 'fastest', endpoints: [{ protocol: 'http', host: 'h', port: 0, username: 'u', password: 'hunter2' }], recency_window: 0, colour: 1 });
    expect(r.valid).toBe(false);
    expect(r.errors.map((e) => e.field)).toEqual(['colour', 'name', 'strategy', 'endpoints[0].port', 'recency_window']);
    expect(JSON.stringify(r)).not.toContain('hunter2');
  });

  it('a sticky pool needs a scope; recency_window on round robin is a warning', () => {
    expect(validateProxyPool({ name: 's', strategy: 'sticky', endpoints: endpoints(1) }).errors[0]?.field).toBe('sticky');
    const w = validateProxyPool({ name: 'r', strategy: 'round_robin', endpoints: endpoints(2), recency_window: 1 });
    expect(w.valid).toBe(true);
    expect(w.warnings[0]?.field).toBe('recency_window');
  });

  it('pools are read keyed by name or as a list with names; a name clash is refused', () => {
    const keyed = parsePools({ eu: { strategy: 'random', endpoints: endpoints(1) } }, 'f', 'proxies');
    expect([...keyed.pools.keys()]).toEqual(['eu']);
    const listed = parsePools([{ name: 'us', strategy: 'round_robin', endpoints: endpoints(2) }], 'f', 'pools');
    expect(listed.pools.get('us')?.endpoints).toHaveLength(2);
    expect(() => parsePools({ eu: { name: 'us', strategy: 'random', endpoints: endpoints(1) } }, 'f', 'proxies')).toThrow(ProxyConfigError);
    expect(() => parsePools({ eu: { strategy: 'random', endpoints: [] } }, 'f', 'proxies')).toThrow(/proxies\.eu\.endpoints/);
  });
});

describe('strategies', () => {
  it('round robin visits every endpoint in turn', async () => {
    expect(await sequence(selector(pool()), 7)).toEqual([0, 1, 2, 0, 1, 2, 0]);
  });

  it('round robin continues where the last selector left it: the state is in the state dir', async () => {
    const dir = stateDir();
    expect(await sequence(selector(pool(), dir), 2)).toEqual([0, 1]);
    expect(await sequence(selector(pool(), dir), 2)).toEqual([2, 0]);
  });

  it('a changed endpoint list starts a fresh state', async () => {
    const dir = stateDir();
    expect(await sequence(selector(pool(), dir), 2)).toEqual([0, 1]);
    expect(await sequence(selector(pool({ endpoints: endpoints(4) }), dir), 2)).toEqual([0, 1]);
  });

  it('random covers the pool, and with recency_window never repeats one of the last N', async () => {
    const sel = selector(pool({ strategy: 'random', endpoints: endpoints(5), recency_window: 3 }), stateDir(), { random: seeded(7) });
    const seq = await sequence(sel, 60);
    expect(new Set(seq).size).toBe(5);
    for (let i = 1; i < seq.length; i++) expect(seq.slice(Math.max(0, i - 3), i)).not.toContain(seq[i]);
  });

  it('random without a window repeats sometimes (so the window is what prevents it)', async () => {
    const seq = await sequence(selector(pool({ strategy: 'random', endpoints: endpoints(5) }), stateDir(), { random: seeded(7) }), 60);
    expect(seq.some((v, i) => i > 0 && seq[i - 1] === v)).toBe(true);
  });

  it('a window as large as the pool degrades to least recently used, never blocking', async () => {
    const sel = selector(pool({ strategy: 'random', recency_window: 10 }), stateDir(), { random: seeded(1) });
    const seq = await sequence(sel, 9);
    expect(seq.slice(3, 6).sort()).toEqual([0, 1, 2]);
    expect(seq.slice(6, 9).sort()).toEqual([0, 1, 2]);
  });

  it('least recently used goes by the order of selection when selections share a millisecond', async () => {
    const sel = selector(pool({ strategy: 'random', recency_window: 10 }), stateDir(), { random: seeded(1), now: () => 1_000 });
    const seq = await sequence(sel, 9);
    expect(seq.slice(3, 6)).toEqual(seq.slice(0, 3));
    expect(seq.slice(6, 9)).toEqual(seq.slice(0, 3));
    expect([...seq.slice(0, 3)].sort()).toEqual([0, 1, 2]);
  });

  it('sticky by job keeps a key on one endpoint and spreads keys across the pool', async () => {
    const sel = selector(pool({ strategy: 'sticky', sticky: { scope: 'job' } }));
    const first = await sequence(sel, 3, (i) => req({ jobKey: `item-${i}` }));
    expect(first).toEqual([0, 1, 2]);
    const again = await sequence(sel, 3, (i) => req({ jobKey: `item-${i}` }));
    expect(again).toEqual(first);
  });

  it('sticky by domain and origin read the job url; the flags are the fallback', async () => {
    const r = (url: string | undefined, o: Partial<ProxyRequest> = {}) => req({ job: url ? { url } : {}, ...o });
    expect(stickyKeyOf('domain', r('https://Shop.example/a?x=1'))).toEqual({ key: 'domain:shop.example', source: 'job_url' });
    expect(stickyKeyOf('origin', r('https://shop.example:8443/a'))).toEqual({ key: 'origin:https://shop.example:8443', source: 'job_url' });
    expect(stickyKeyOf('domain', r(undefined, { domain: 'flag.example' }))).toEqual({ key: 'domain:flag.example', source: 'flag' });
    expect(stickyKeyOf('origin', r(undefined))).toEqual({ key: 'job:k', source: 'job_fallback' });
    expect(stickyKeyOf('domain', r('https://a.example/', { stickyKey: 'mine' }))).toEqual({ key: 'key:mine', source: 'explicit' });

    const sel = selector(pool({ strategy: 'sticky', sticky: { scope: 'domain' } }));
    const seq = await sequence(sel, 6, (i) => r(`https://${i % 2 === 0 ? 'a' : 'b'}.example/page/${i}`, { jobKey: `i${i}` }));
    expect(seq).toEqual([0, 1, 0, 1, 0, 1]);
  });

  it('a sticky assignment lapses after ttl_ms and is made again', async () => {
    let now = 1_000;
    const sel = selector(pool({ strategy: 'sticky', sticky: { scope: 'job', ttl_ms: 500 } }), stateDir(), { now: () => now });
    expect((await sel.select(req())).index).toBe(0);
    now += 499;
    expect((await sel.select(req())).sticky?.hit).toBe(true);
    now += 1;
    const after = await sel.select(req());
    expect(after.sticky?.hit).toBe(false);
    expect(after.index).toBe(1);
  });

  it('a mark (rotate_proxy, a failed run) moves the next selection off the endpoint', async () => {
    const rr = selector(pool());
    const a = await rr.select(req());
    await rr.mark(a);
    // Round robin would give 1 next anyway; mark 1 before selecting to see the skip.
    await rr.mark({ ...a, index: 1 });
    expect((await rr.select(req())).index).toBe(2);
    expect((await rr.select(req())).index).toBe(0);

    const st = selector(pool({ strategy: 'sticky', sticky: { scope: 'job' } }));
    const s1 = await st.select(req());
    await st.mark(s1);
    const s2 = await st.select(req());
    expect(s2.index).not.toBe(s1.index);
    expect((await st.select(req())).index).toBe(s2.index);
  });

  it('the sticky map is bounded', () => {
    const p = pool({ strategy: 'sticky', sticky: { scope: 'job' } });
    const full = selectEndpoint(p, undefined, { strategy: 'sticky', stickyKey: 'k', now: 0, random: Math.random }).state;
    for (let i = 0; i < MAX_STICKY_ENTRIES + 5; i++) full.sticky[`k${i}`] = { index: 0, expires_at: null, exclude: [], used_at: i + 1 };
    const next = selectEndpoint(p, full, { strategy: 'sticky', stickyKey: 'new', now: 10 ** 6, random: Math.random }).state;
    expect(Object.keys(next.sticky)).toHaveLength(MAX_STICKY_ENTRIES + 1);
    expect(next.sticky.new).toBeDefined();
    expect(next.sticky.k).toBeUndefined();
  });

  it('the stored state holds no password and no raw sticky key', async () => {
    const dir = stateDir();
    const sel = selector(pool({ strategy: 'sticky', sticky: { scope: 'job' } }), dir);
    await sel.select(req({ jobKey: 'params-with-token-abc' }));
    const raw = JSON.stringify(await sel.store.read('p'));
    expect(raw).not.toContain('pw-secret');
    expect(raw).not.toContain('token-abc');
  });

  it('an unknown pool is one clear error naming the pools there are', async () => {
    await expect(selector(pool()).select(req({ pool: 'nope' }))).rejects.toThrow(UnknownPoolError);
    await expect(selector(pool()).select(req({ pool: 'nope' }))).rejects.toThrow(/pools: p/);
  });

  it('debug resolution without commit does not move the state', async () => {
    const sel = selector(pool());
    expect((await sel.select(req(), false)).index).toBe(0);
    expect((await sel.select(req(), false)).index).toBe(0);
    expect((await sel.select(req())).index).toBe(0);
    expect((await sel.select(req())).index).toBe(1);
  });
});
