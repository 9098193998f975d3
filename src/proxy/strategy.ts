/**
 * The proxy strategies of SPEC §11 as pure functions of a pool's state:
 * round robin, random with an optional recency window, sticky by key with an
 * optional TTL; and the marks that move the next selection off an endpoint
 * (`rotate_proxy`, a failed run). No clock, randomness or I/O of their own.
 */
import { createHash } from 'node:crypto';
import type { ProxyPool, ProxyStrategy } from '../sdk/proxy-pool.js';
import type { PoolState, StickyEntry } from './state.js';

/** Most sticky keys a pool remembers; past it the longest unused is forgotten (bounded state). */
export const MAX_STICKY_ENTRIES = 2_000;

/** What one selection needs besides the state. */
export interface SelectInput {
  readonly strategy: ProxyStrategy;
  /** Hashed sticky key (sticky strategy only). */
  readonly stickyKey?: string;
  /** Sticky TTL in ms (sticky strategy only). */
  readonly ttlMs?: number;
  readonly recencyWindow?: number;
  readonly now: number;
  /** Uniform in [0, 1). */
  readonly random: () => number;
}

/** The outcome of one selection. */
export interface Pick {
  readonly index: number;
  /** Sticky only: the key was already on this endpoint. */
  readonly stickyHit?: boolean;
}

/** Identity of a pool's endpoint list, without passwords. */
export function poolFingerprint(pool: ProxyPool): string {
  const ids = pool.endpoints.map((e) => `${e.protocol}://${e.username ?? ''}@${e.host}:${e.port}`);
  return createHash('sha256').update(ids.join('\n')).digest('hex').slice(0, 32);
}

/** A sticky key as stored: a hash, since a key may come from a job's params. */
export function hashStickyKey(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 32);
}

/** A fresh state for `pool`. */
export function emptyState(pool: ProxyPool): PoolState {
  return {
    fingerprint: poolFingerprint(pool),
    cursor: 0,
    last_used: pool.endpoints.map(() => 0),
    recent: [],
    avoid: [],
    sticky: {},
    selections: 0,
    last_used_at: null,
  };
}

/** The stored state if it was made for this endpoint list, else a fresh one. */
export function stateFor(pool: ProxyPool, stored: PoolState | undefined): PoolState {
  if (stored === undefined || stored.fingerprint !== poolFingerprint(pool) || stored.last_used.length !== pool.endpoints.length) return emptyState(pool);
  return stored;
}

const clone = (s: PoolState): PoolState => ({
  ...s,
  last_used: [...s.last_used],
  recent: [...s.recent],
  avoid: [...s.avoid],
  sticky: Object.fromEntries(Object.entries(s.sticky).map(([k, v]) => [k, { ...v, exclude: [...v.exclude] }])),
});

/** Every index of the pool but `skip`; all of them when that would leave none (a pool never blocks). */
function candidates(n: number, skip: readonly number[]): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  const left = all.filter((i) => !skip.includes(i));
  return left.length > 0 ? left : all;
}

/** The first candidate at or after the cursor, cyclically; the cursor moves past it. */
function nextInTurn(s: PoolState, allowed: readonly number[], n: number): number {
  for (let k = 0; k < n; k++) {
    const i = (s.cursor + k) % n;
    if (allowed.includes(i)) {
      s.cursor = (i + 1) % n;
      return i;
    }
  }
  /* c8 ignore next */
  throw new Error('no candidate endpoint');
}

/**
 * Least recently used among `allowed`. The order of `recent` decides, not
 * the timestamps: selections within one millisecond share a timestamp. An
 * endpoint missing from `recent` was used before all of it; among those the
 * older timestamp, then the lower index, goes first.
 */
function leastRecent(s: PoolState, allowed: readonly number[]): number {
  const older = (i: number, j: number): boolean => {
    const pi = s.recent.lastIndexOf(i);
    const pj = s.recent.lastIndexOf(j);
    return pi !== pj ? pi < pj : s.last_used[i]! < s.last_used[j]!;
  };
  return allowed.reduce((best, i) => (older(i, best) ? i : best), allowed[0]!);
}

/** The endpoints a random selection draws from: outside the recency window, else the least recently used. */
function randomPool(s: PoolState, allowed: readonly number[], recencyWindow: number | undefined): number[] {
  const window = recencyWindow ?? 0;
  const recent = window > 0 ? s.recent.slice(-window) : [];
  const fresh = allowed.filter((i) => !recent.includes(i));
  // Every allowed endpoint is that recent (window >= pool size): least recently used, never a block.
  return fresh.length > 0 ? fresh : [leastRecent(s, allowed)];
}

function pickRandom(s: PoolState, allowed: readonly number[], input: SelectInput): number {
  const fresh = randomPool(s, allowed, input.recencyWindow);
  return fresh[Math.min(fresh.length - 1, Math.floor(input.random() * fresh.length))]!;
}

/**
 * The indices the next `random` selection draws from, uniformly (`debug
 * resolve proxy` shows them: one draw alone would say little). Pure.
 */
export function randomCandidates(pool: ProxyPool, stored: PoolState | undefined, recencyWindow: number | undefined): number[] {
  const s = stateFor(pool, stored);
  return randomPool(s, candidates(pool.endpoints.length, s.avoid), recencyWindow);
}

function dropExpired(s: PoolState, now: number): void {
  for (const [k, e] of Object.entries(s.sticky)) if (e.expires_at !== null && e.expires_at <= now) delete s.sticky[k];
  const keys = Object.keys(s.sticky);
  if (keys.length <= MAX_STICKY_ENTRIES) return;
  keys.sort((a, b) => s.sticky[a]!.used_at - s.sticky[b]!.used_at);
  for (const k of keys.slice(0, keys.length - MAX_STICKY_ENTRIES)) delete s.sticky[k];
}

/**
 * Selects an endpoint and returns the state after it. Round robin takes the
 * next endpoint in turn; random draws uniformly among those outside the
 * recency window; sticky keeps a key on its endpoint until the TTL lapses or
 * a rotation moves it, assigning new keys in turn (so keys spread). Both
 * round robin and random skip endpoints marked since their last selection.
 */
export function selectEndpoint(pool: ProxyPool, stored: PoolState | undefined, input: SelectInput): { state: PoolState; pick: Pick } {
  const s = clone(stateFor(pool, stored));
  const n = pool.endpoints.length;
  let pick: Pick;
  if (input.strategy === 'sticky') {
    dropExpired(s, input.now);
    const key = input.stickyKey ?? '';
    const entry: StickyEntry | undefined = s.sticky[key];
    if (entry !== undefined && entry.index !== null && entry.index < n) {
      entry.used_at = input.now;
      pick = { index: entry.index, stickyHit: true };
    } else {
      const index = nextInTurn(s, candidates(n, entry?.exclude ?? []), n);
      s.sticky[key] = { index, expires_at: input.ttlMs !== undefined ? input.now + input.ttlMs : null, exclude: [], used_at: input.now };
      pick = { index, stickyHit: false };
    }
  } else {
    const allowed = candidates(n, s.avoid);
    const index = input.strategy === 'round_robin' ? nextInTurn(s, allowed, n) : pickRandom(s, allowed, input);
    s.avoid = [];
    pick = { index };
  }
  s.last_used[pick.index] = input.now;
  s.recent = [...s.recent, pick.index].slice(-n);
  s.selections++;
  s.last_used_at = input.now;
  return { state: s, pick };
}

/**
 * Moves the next selection off endpoint `index` (a `rotate_proxy`, or a run
 * that failed through it): a sticky key is unassigned and its next
 * assignment avoids the endpoint; otherwise the next round robin or random
 * selection skips it.
 */
export function markEndpoint(pool: ProxyPool, stored: PoolState | undefined, index: number, stickyKey: string | undefined): PoolState {
  const s = clone(stateFor(pool, stored));
  if (stickyKey !== undefined) {
    const entry = s.sticky[stickyKey];
    // Already moved (another run of the key rotated first): nothing to undo.
    if (entry !== undefined && entry.index !== index) return s;
    s.sticky[stickyKey] = { index: null, expires_at: entry?.expires_at ?? null, exclude: [...new Set([...(entry?.exclude ?? []), index])], used_at: entry?.used_at ?? 0 };
    return s;
  }
  if (!s.avoid.includes(index)) s.avoid.push(index);
  return s;
}
