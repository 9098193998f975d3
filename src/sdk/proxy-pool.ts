/**
 * Proxy pools (SPEC §11): the shape of a pool in the config file (`proxies:`)
 * or in a `--proxy-config` JSON file, and its validation. Field names are the
 * config file's (snake_case), as in the original Quarry's guide.
 */
import type { ProxyEndpoint } from '../protocol/index.js';
import { ProxyValidationError } from './errors.js';
import { validateProxyEndpoint, type ProxyIssue, type ProxyValidationResult } from './proxy.js';

/** How a pool picks an endpoint for a run. */
export const PROXY_STRATEGIES = ['round_robin', 'random', 'sticky'] as const;
export type ProxyStrategy = (typeof PROXY_STRATEGIES)[number];

/** What a sticky pool keys its assignments by. */
export const PROXY_STICKY_SCOPES = ['job', 'domain', 'origin'] as const;
export type ProxyStickyScope = (typeof PROXY_STICKY_SCOPES)[number];

/** Sticky assignments: by `scope`, forgotten `ttl_ms` after they were made (never, when absent). */
export interface ProxySticky {
  readonly scope: ProxyStickyScope;
  readonly ttl_ms?: number;
}

/** One pool of endpoints and how to rotate through them. */
export interface ProxyPool {
  readonly name: string;
  readonly strategy: ProxyStrategy;
  readonly endpoints: readonly ProxyEndpoint[];
  readonly sticky?: ProxySticky;
  /** `random` avoids the last N endpoints it chose (least recently used when every endpoint is that recent). */
  readonly recency_window?: number;
}

/** A pool name: also a file-safe key of the selection state. */
export const POOL_NAME_RE = /^[A-Za-z0-9._-]{1,128}$/;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isPositiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
const POOL_KEYS = new Set(['name', 'strategy', 'endpoints', 'sticky', 'recency_window']);
const ENDPOINT_KEYS = new Set(['protocol', 'host', 'port', 'username', 'password']);

/**
 * Checks a pool: a name, a known strategy, at least one valid endpoint,
 * `sticky.scope` job|domain|origin with an optional positive `ttl_ms`, a
 * positive `recency_window`. Unknown keys are errors (a typo must not run
 * with a default). Warns when `recency_window` is set on a strategy that
 * does not use it, and when a socks5 endpoint has credentials.
 * Messages quote bad values, never a password.
 * @param prefix field prefix for messages, e.g. `proxies.eu`.
 */
export function validateProxyPool(value: unknown, prefix = ''): ProxyValidationResult {
  const f = (name: string): string => (prefix ? `${prefix}.${name}` : name);
  const errors: ProxyIssue[] = [];
  const warnings: ProxyIssue[] = [];
  if (!isObj(value)) {
    errors.push({ field: prefix || 'pool', message: 'must be an object { name, strategy, endpoints, sticky?, recency_window? }' });
    return { valid: false, errors, warnings };
  }
  for (const k of Object.keys(value)) if (!POOL_KEYS.has(k)) errors.push({ field: f(k), message: `unknown key (known: ${[...POOL_KEYS].join(', ')})` });
  const { name, strategy, endpoints, sticky, recency_window } = value;
  if (typeof name !== 'string' || !POOL_NAME_RE.test(name)) errors.push({ field: f('name'), message: `must match [A-Za-z0-9._-]{1,128}, got ${JSON.stringify(name)}` });
  if (typeof strategy !== 'string' || !(PROXY_STRATEGIES as readonly string[]).includes(strategy)) {
    errors.push({ field: f('strategy'), message: `must be one of ${PROXY_STRATEGIES.join('|')}, got ${JSON.stringify(strategy)}` });
  }
  if (!Array.isArray(endpoints) || endpoints.length === 0) {
    errors.push({ field: f('endpoints'), message: 'must be a non-empty list of { protocol, host, port, username?, password? }' });
  } else {
    endpoints.forEach((e, i) => {
      const at = f(`endpoints[${i}]`);
      if (isObj(e)) for (const k of Object.keys(e)) if (!ENDPOINT_KEYS.has(k)) errors.push({ field: `${at}.${k}`, message: `unknown key (known: ${[...ENDPOINT_KEYS].join(', ')})` });
      const r = validateProxyEndpoint(e, at);
      errors.push(...r.errors);
      warnings.push(...r.warnings);
    });
  }
  if (sticky !== undefined) {
    if (!isObj(sticky)) {
      errors.push({ field: f('sticky'), message: 'must be an object { scope, ttl_ms? }' });
    } else {
      for (const k of Object.keys(sticky)) if (k !== 'scope' && k !== 'ttl_ms') errors.push({ field: f(`sticky.${k}`), message: 'unknown key (known: scope, ttl_ms)' });
      if (!(PROXY_STICKY_SCOPES as readonly unknown[]).includes(sticky.scope)) {
        errors.push({ field: f('sticky.scope'), message: `must be one of ${PROXY_STICKY_SCOPES.join('|')}, got ${JSON.stringify(sticky.scope)}` });
      }
      if (sticky.ttl_ms !== undefined && !isPositiveInt(sticky.ttl_ms)) errors.push({ field: f('sticky.ttl_ms'), message: `must be a whole number of milliseconds, 1 or more, got ${JSON.stringify(sticky.ttl_ms)}` });
    }
  } else if (strategy === 'sticky') {
    errors.push({ field: f('sticky'), message: 'strategy sticky needs sticky: { scope: job|domain|origin, ttl_ms? }' });
  }
  if (recency_window !== undefined) {
    if (!isPositiveInt(recency_window)) errors.push({ field: f('recency_window'), message: `must be a whole number, 1 or more, got ${JSON.stringify(recency_window)}` });
    else if (strategy !== 'random') warnings.push({ field: f('recency_window'), message: `only the random strategy uses it; ${JSON.stringify(strategy)} ignores it` });
  }
  return { valid: errors.length === 0, errors, warnings };
}

/**
 * Returns `value` as a ProxyPool (a copy of known fields), or throws.
 * @throws ProxyValidationError listing every problem.
 */
export function assertProxyPool(value: unknown, prefix = ''): ProxyPool {
  const r = validateProxyPool(value, prefix);
  if (!r.valid) throw new ProxyValidationError(r.errors, 'proxy pool');
  const v = value as unknown as ProxyPool;
  return {
    name: v.name,
    strategy: v.strategy,
    endpoints: v.endpoints.map((e) => ({
      protocol: e.protocol,
      host: e.host,
      port: e.port,
      ...(e.username ? { username: e.username } : {}),
      ...(e.password ? { password: e.password } : {}),
    })),
    ...(v.sticky ? { sticky: { scope: v.sticky.scope, ...(v.sticky.ttl_ms !== undefined ? { ttl_ms: v.sticky.ttl_ms } : {}) } } : {}),
    ...(v.recency_window !== undefined ? { recency_window: v.recency_window } : {}),
  };
}
