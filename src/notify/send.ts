/**
 * Sending one notification (SPEC §11): webhook POST or Redis PUBLISH, with a
 * timeout PER ATTEMPT and up to `retries` retries after backoff 1/2/4 s (×2
 * onwards) plus jitter. A webhook answer 2xx is delivered; 4xx is final (the
 * receiver refused this body: sending it again cannot help); 5xx, a network
 * error or a timeout are retried. Never throws: the result says what happened.
 */
import { redactUrlsIn } from '../protocol/redact.js';
import type { AdapterOptions } from './adapter-config.js';

/** What one delivery did. */
export interface SendResult {
  delivered: boolean;
  /** Requests made. */
  attempts: number;
  /** Why the last attempt failed (no secret in it); null when delivered. */
  error: string | null;
  /** Each attempt's result, in order: `200`, `503`, `timeout`, `network: ECONNREFUSED`. */
  trail: string[];
}

/** Test and benchmark knobs; the defaults are §11's. */
export interface SendOptions {
  /** Backoff before retry n (1-based). Default {@link backoffMs}. */
  backoff?: (n: number) => number;
  /** Stops waiting between attempts (an interrupted command). */
  signal?: AbortSignal;
}

/** Backoff before retry `n` (1-based): 1 s, 2 s, 4 s, … capped at 30 s, plus up to 25 % jitter so senders do not retry in step. */
export function backoffMs(n: number, random: () => number = Math.random): number {
  const base = Math.min(30_000, 1000 * 2 ** (n - 1));
  return base + Math.floor(random() * base * 0.25);
}

type Attempt = { ok: true; note: string } | { ok: false; final: boolean; note: string };

async function postOnce(a: AdapterOptions, body: string): Promise<Attempt> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), a.timeoutMs);
  try {
    const res = await fetch(a.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'quarry-adapter', ...a.headers },
      body,
      signal: controller.signal,
      redirect: 'manual',
    });
    // The body is read (and dropped) inside the timeout too: a receiver that hangs after its headers is a timeout.
    await res.arrayBuffer();
    const note = String(res.status);
    if (res.status >= 200 && res.status < 300) return { ok: true, note };
    return { ok: false, final: res.status >= 400 && res.status < 500, note };
  } catch (err) {
    if (controller.signal.aborted) return { ok: false, final: false, note: `timeout after ${a.timeoutMs}ms` };
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, final: false, note: `network: ${cause?.code ?? cause?.message ?? (err as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

/** A Redis connection per target, kept for a drain's many rows; closed by {@link closePublishers}. */
const publishers = new Map<string, Promise<import('ioredis').Redis>>();

async function publisher(url: string, timeoutMs: number): Promise<import('ioredis').Redis> {
  let p = publishers.get(url);
  if (p === undefined) {
    p = (async () => {
      const { Redis } = await import('ioredis');
      const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: timeoutMs, retryStrategy: () => null });
      r.on('error', () => undefined);
      return r;
    })();
    publishers.set(url, p);
  }
  return p;
}

/** Closes the Redis connections sends opened. */
export async function closePublishers(): Promise<void> {
  const all = [...publishers.values()];
  publishers.clear();
  for (const p of all) (await p).disconnect();
}

async function publishOnce(a: AdapterOptions, body: string): Promise<Attempt> {
  const r = await publisher(a.url, a.timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${a.timeoutMs}ms`)), a.timeoutMs);
    });
    if (r.status === 'wait' || r.status === 'end' || r.status === 'close') {
      if (r.status !== 'wait') publishers.delete(a.url);
      await Promise.race([r.connect(), timeout]);
    }
    const receivers = await Promise.race([r.publish(a.channel, body), timeout]);
    return { ok: true, note: `published to ${receivers} subscriber(s)` };
  } catch (err) {
    // A failed connection is dropped: the next attempt connects afresh.
    publishers.delete(a.url);
    r.disconnect();
    return { ok: false, final: false, note: `redis: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

/** Sends `body` to the adapter, retrying as §11 says. Never throws. */
export async function sendNotification(a: AdapterOptions, body: string, options: SendOptions = {}): Promise<SendResult> {
  const backoff = options.backoff ?? ((n: number) => backoffMs(n));
  const trail: string[] = [];
  for (let n = 0; ; n++) {
    const r = a.kind === 'webhook' ? await postOnce(a, body) : await publishOnce(a, body);
    trail.push(r.note);
    if (r.ok) return { delivered: true, attempts: n + 1, error: null, trail };
    const error = redactUrlsIn(`${a.kind === 'webhook' ? 'POST' : 'PUBLISH'} attempt ${n + 1}: ${r.note}${r.final ? ' (4xx: not retried)' : ''}`);
    if (r.final || n >= a.retries || options.signal?.aborted) return { delivered: false, attempts: n + 1, error, trail };
    await wait(backoff(n + 1), options.signal);
    if (options.signal?.aborted) return { delivered: false, attempts: n + 1, error, trail };
  }
}
