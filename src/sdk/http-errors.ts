/**
 * Errors of `ctx.http` (SPEC §13). Each names what failed (method, URL without
 * credentials, attempt, and the status when there was one) and its class says
 * what to do. All extend {@link HttpError}, itself a `QuarryError`, so they
 * match with `instanceof` across copies of the SDK.
 */
import { redactUrl } from '../protocol/redact.js';
import { QuarryError } from './errors.js';

// One redaction rule for every URL Quarry shows (password, token user names, secret query parameters).
export { redactUrl };

/** What every HTTP error carries. */
export interface HttpErrorContext {
  readonly method: string;
  /** Redacted: password, token user name and secret query values masked ({@link redactUrl}). */
  readonly url: string;
  /** Attempts made for this hop, from 1. */
  readonly attempt: number;
}

const where = (c: HttpErrorContext): string => `${c.method} ${c.url} (attempt ${c.attempt})`;

/** Base of every `ctx.http` failure. */
export abstract class HttpError extends QuarryError {
  readonly method: string;
  readonly url: string;
  readonly attempt: number;
  constructor(context: HttpErrorContext, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.method = context.method;
    this.url = context.url;
    this.attempt = context.attempt;
  }
}

/**
 * The server answered with a status of 400 or more (after the retries, for a
 * retryable one). What to do: a 4xx is the request's fault (check the URL,
 * headers, cookies); a 5xx or 429 that outlived the retries means come back
 * later; pass `throwOnHttpError: false` to handle statuses yourself.
 */
export class HttpStatusError extends HttpError {
  override readonly name = 'HttpStatusError';
  constructor(
    context: HttpErrorContext,
    readonly status: number,
    /** True for 408, 429 and 5xx: a later try may succeed. */
    readonly retryable: boolean,
    /** Set when the server's `Retry-After` exceeded `maxRetryAfterMs`, so it was not waited for. */
    readonly retryAfterMs?: number,
  ) {
    const advice = retryAfterMs !== undefined
      ? `the server asks to wait ${Math.ceil(retryAfterMs / 1000)} s (Retry-After), more than maxRetryAfterMs: try later`
      : retryable
        ? 'still failing after the retries: try later or raise retries'
        : 'not retried: check the URL, headers and cookies, or pass throwOnHttpError: false to handle it';
    super(context, `${where(context)} answered ${status}; ${advice}`);
  }
}

/** The connection failed or broke (refused, reset, DNS, TLS) on the last attempt; `code` is Node's or undici's error code. */
export class HttpNetworkError extends HttpError {
  override readonly name = 'HttpNetworkError';
  constructor(
    context: HttpErrorContext,
    readonly code: string | undefined,
    cause: unknown,
  ) {
    super(context, `${where(context)} failed: ${cause instanceof Error ? cause.message : String(cause)}${code ? ` (${code})` : ''}; check the host, the proxy and the network`, { cause });
  }
}

/** The last attempt took longer than `timeoutMs` (connecting, headers and body together). What to do: raise `timeoutMs` or `retries`. */
export class HttpTimeoutError extends HttpError {
  override readonly name = 'HttpTimeoutError';
  constructor(
    context: HttpErrorContext,
    readonly timeoutMs: number,
  ) {
    super(context, `${where(context)} timed out after ${timeoutMs} ms; raise timeoutMs or retries`);
  }
}

/** More redirects than `maxRedirects`. What to do: check for a redirect loop (often a missing cookie) or raise the limit. */
export class HttpRedirectLimitError extends HttpError {
  override readonly name = 'HttpRedirectLimitError';
  constructor(
    context: HttpErrorContext,
    readonly maxRedirects: number,
    /** The URLs redirected through, without credentials. */
    readonly redirects: readonly string[],
  ) {
    super(context, `${where(context)} redirected more than ${maxRedirects} times (last to ${redirects[redirects.length - 1] ?? '?'}); check for a redirect loop or raise maxRedirects`);
  }
}

/** The body (as sent, or once decompressed) exceeded `maxResponseBytes`; reading stopped there. What to do: raise the limit if the page is really that large. */
export class HttpResponseTooLargeError extends HttpError {
  override readonly name = 'HttpResponseTooLargeError';
  constructor(
    context: HttpErrorContext,
    readonly status: number,
    /** Bytes announced or read when the limit was hit. */
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(context, `${where(context)} answered ${status} with a body of more than ${limit} bytes (${bytes} seen); raise maxResponseBytes if it is expected`);
  }
}

/** `response.json()` on a body that is not JSON. */
export class HttpBodyParseError extends HttpError {
  override readonly name = 'HttpBodyParseError';
  constructor(
    context: HttpErrorContext,
    readonly status: number,
    cause: unknown,
  ) {
    super(context, `${where(context)} answered ${status} with a body that is not JSON: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** The request options are wrong (two bodies, a bad URL, a negative limit). Nothing was sent. */
export class HttpOptionsError extends HttpError {
  override readonly name = 'HttpOptionsError';
  constructor(
    context: HttpErrorContext,
    readonly reason: string,
  ) {
    super(context, `ctx.http: ${context.method} ${context.url}: ${reason}`);
  }
}
