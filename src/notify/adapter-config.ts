/**
 * Run-completed adapters (SPEC §11): the options a sender takes, compiled and
 * checked by pure functions, and the target recorded in a run's settings —
 * which never holds a secret: a webhook URL without user info or query, a
 * Redis URL without user info plus its channel as the fragment.
 */
import type { AdapterKind, AdapterTarget } from '../ledger/outbox.js';

/** Defaults of §11 (the original's). */
export const ADAPTER_DEFAULTS = {
  /** Per attempt, not for all retries together (the original's timeout covered all, so a timed-out request was never retried). */
  timeoutMs: 10_000,
  retries: 3,
  channel: 'quarry:run_completed',
} as const;

/** What sends a notification: the live URL (credentials included, in memory only), headers and retry settings. */
export interface AdapterOptions {
  kind: AdapterKind;
  /** Webhook: the URL posted to. Redis: the server URL. Credentials and query allowed: never recorded. */
  url: string;
  /** Redis: the PUBLISH channel. */
  channel: string;
  headers: Record<string, string>;
  timeoutMs: number;
  retries: number;
}

/** A problem with adapter options: the message quotes the bad value. */
export class AdapterConfigError extends Error {
  override readonly name = 'AdapterConfigError';
}

/** `k=v` header flags as a record. @throws AdapterConfigError quoting a malformed one. */
export function parseHeaders(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list) {
    const at = h.indexOf('=');
    const name = at > 0 ? h.slice(0, at).trim() : '';
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new AdapterConfigError(`--adapter-header ${JSON.stringify(h)} must be name=value with a valid header name`);
    out[name] = h.slice(at + 1);
  }
  return out;
}

/**
 * Checks and compiles adapter options.
 * @throws AdapterConfigError naming the flag and the bad value.
 */
export function compileAdapter(input: { kind: string; url: string | undefined; channel?: string | undefined; headers?: readonly string[]; timeoutMs?: number | undefined; retries?: number | undefined }): AdapterOptions {
  if (input.kind !== 'webhook' && input.kind !== 'redis') throw new AdapterConfigError(`--adapter ${JSON.stringify(input.kind)} must be webhook or redis`);
  const url = input.url ?? '';
  if (url === '') throw new AdapterConfigError(`--adapter ${input.kind} needs --adapter-url (${input.kind === 'webhook' ? 'the http(s) URL to POST to' : 'the redis:// server URL'})`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AdapterConfigError(`--adapter-url is not a URL (${input.kind === 'webhook' ? 'e.g. https://hooks.example.com/quarry' : 'e.g. redis://127.0.0.1:6379'})`);
  }
  const schemes = input.kind === 'webhook' ? ['http:', 'https:'] : ['redis:', 'rediss:'];
  if (!schemes.includes(u.protocol)) throw new AdapterConfigError(`--adapter-url for ${input.kind} must start with ${schemes.map((s) => `${s}//`).join(' or ')}, got ${u.protocol}//`);
  const timeoutMs = input.timeoutMs ?? ADAPTER_DEFAULTS.timeoutMs;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new AdapterConfigError(`--adapter-timeout must be more than 0 (per attempt, e.g. 10s), got ${timeoutMs}ms`);
  const retries = input.retries ?? ADAPTER_DEFAULTS.retries;
  if (!Number.isSafeInteger(retries) || retries < 0) throw new AdapterConfigError(`--adapter-retries must be 0 or more, got ${retries}`);
  const channel = input.channel ?? ADAPTER_DEFAULTS.channel;
  if (channel === '') throw new AdapterConfigError('--adapter-channel must not be empty');
  const headers = parseHeaders(input.headers ?? []);
  if (input.kind === 'redis' && Object.keys(headers).length > 0) throw new AdapterConfigError('--adapter-header is for webhooks; Redis PUBLISH has no headers');
  return { kind: input.kind, url, channel, headers, timeoutMs, retries };
}

/** The URL without user info, query or fragment: what is recorded and shown. */
function bare(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  u.search = '';
  u.hash = '';
  return u.toString();
}

/** The target recorded in settings and in the outbox (SPEC §8: no credentials, no query, never headers). */
export function recordedTarget(a: AdapterOptions): AdapterTarget {
  return a.kind === 'webhook' ? { kind: 'webhook', target: bare(a.url) } : { kind: 'redis', target: `${bare(a.url)}#${encodeURIComponent(a.channel)}` };
}

/**
 * Where a recorded row goes, with the credentials `given` carries when it
 * names the same place (drain's own flags, SPEC §11). A row whose target
 * `given` does not match is sent to its recorded target as is.
 */
export function resolveTarget(row: AdapterTarget, given: AdapterOptions | undefined, defaults: { headers: Record<string, string>; timeoutMs: number; retries: number }): AdapterOptions {
  if (given !== undefined && given.kind === row.kind && recordedTarget(given).target === row.target) return given;
  if (row.kind === 'webhook') return { kind: 'webhook', url: row.target, channel: ADAPTER_DEFAULTS.channel, ...defaults };
  const hash = row.target.lastIndexOf('#');
  const url = hash >= 0 ? row.target.slice(0, hash) : row.target;
  const channel = hash >= 0 ? decodeURIComponent(row.target.slice(hash + 1)) : ADAPTER_DEFAULTS.channel;
  return { kind: 'redis', url, channel, ...defaults, headers: {} };
}
