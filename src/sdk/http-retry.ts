/**
 * When `ctx.http` retries and how long it waits (SPEC §13). Pure: the clock and
 * the random draw are parameters.
 */

/** Default limits of `ctx.http`; every request may override them. */
export const HTTP_DEFAULTS = Object.freeze({
  timeoutMs: 30_000,
  retries: 2,
  retryDelayMs: 500,
  maxRetryDelayMs: 30_000,
  maxRetryAfterMs: 120_000,
  maxRedirects: 10,
  maxResponseBytes: 50 * 1024 * 1024,
});

/** Methods the server must treat as safe to repeat (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** 408, 429 and 5xx except 501 (not implemented: a retry cannot help). */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

/** Error codes of a connection that failed in a way a later attempt may not. */
const RETRYABLE_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
]);

/** The error code of a network failure, looking through `cause`. */
export function networkErrorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

export function isRetryableNetworkError(err: unknown): boolean {
  const code = networkErrorCode(err);
  return code !== undefined && RETRYABLE_CODES.has(code);
}

/**
 * Whether a failed attempt may be repeated: POST and PATCH only on 429 (the
 * server refused before acting) unless `retryNonIdempotent`.
 */
export function mayRetry(method: string, failure: { status: number } | 'network' | 'timeout', retryNonIdempotent: boolean): boolean {
  if (failure !== 'network' && failure !== 'timeout') {
    if (!isRetryableStatus(failure.status)) return false;
    if (failure.status === 429) return true;
  }
  return retryNonIdempotent || IDEMPOTENT.has(method);
}

/**
 * `Retry-After` in milliseconds from `now`: delta-seconds, or an HTTP-date (a
 * date in the past is 0). Undefined when absent or malformed.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP-date always names a weekday or month in letters; a bare number that failed above is malformed.
  if (!/[a-z]/i.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * Exponential backoff with jitter: retry n (from 1) waits between half and all
 * of `min(max, base * 2^(n-1))`, so clients that failed together spread out.
 * @param random a draw in [0, 1)
 */
export function backoffDelay(retry: number, baseMs: number, maxMs: number, random: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, retry - 1));
  return Math.round(ceiling / 2 + (random * ceiling) / 2);
}
