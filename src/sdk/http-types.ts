/**
 * The types of `ctx.http` (SPEC §13): the HTTP client every run gets, and the
 * only way a no-browser script fetches. Types only; the client is in
 * `http-client.ts`.
 */

/** Per-request options. Every limit has a default (see {@link HTTP_DEFAULTS}); a request may override it. */
export interface HttpRequestOptions {
  /** Default `GET`. */
  readonly method?: string;
  /** Request headers; a `cookie` header here is sent in addition to the jar's cookies. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Appended to the URL's query string. */
  readonly query?: Readonly<Record<string, string | number | boolean>>;
  /** A raw body; give at most one of `body`, `json`, `form`. */
  readonly body?: string | Uint8Array;
  /** Sent as `application/json` (and `accept: application/json` unless set). */
  readonly json?: unknown;
  /** Sent as `application/x-www-form-urlencoded`. */
  readonly form?: Readonly<Record<string, string>>;
  /** Per attempt, from connecting to the last body byte. */
  readonly timeoutMs?: number;
  /** Retries after the first attempt, on 408, 429, 5xx (not 501), timeouts and network errors. */
  readonly retries?: number;
  /** First backoff; it doubles per retry (with jitter), up to `maxRetryDelayMs`. A `Retry-After` header takes its place. */
  readonly retryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
  /** A `Retry-After` longer than this is not waited for: the request fails at once. */
  readonly maxRetryAfterMs?: number;
  /**
   * Retry POST and PATCH on 5xx, timeouts and network errors too, where the
   * server may have acted on the first attempt. They are always retried on 429.
   */
  readonly retryNonIdempotent?: boolean;
  /** Redirects followed before `HttpRedirectLimitError`; 0 returns the 3xx response. */
  readonly maxRedirects?: number;
  /** Largest body accepted, compressed and decoded; more is `HttpResponseTooLargeError`. */
  readonly maxResponseBytes?: number;
  /** Default true: a final status of 400 or more rejects with `HttpStatusError`. */
  readonly throwOnHttpError?: boolean;
  readonly signal?: AbortSignal;
}

/** Options of `get`, which sends no body. */
export type HttpGetOptions = Omit<HttpRequestOptions, 'method' | 'body' | 'json' | 'form'>;
/** Options of `post`. */
export type HttpPostOptions = Omit<HttpRequestOptions, 'method'>;

/** A response whose body was read in full (within `maxResponseBytes`) and decompressed. */
export interface HttpResponse {
  /** The final URL, after redirects, without credentials. */
  readonly url: string;
  readonly status: number;
  /** Lower-case names; repeated headers joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
  /** Attempts made for the final hop (1 when the first one answered). */
  readonly attempts: number;
  /** URLs redirected through, in order, without credentials. */
  readonly redirects: readonly string[];
  /** The body decoded with the `content-type` charset (UTF-8 when absent or unknown). */
  text(): string;
  /** @throws HttpBodyParseError when the body is not JSON. */
  json<T = unknown>(): T;
}

/** A cookie as the jar holds it. */
export interface HttpCookie {
  readonly name: string;
  readonly value: string;
  /** Lower case, without a leading dot. */
  readonly domain: string;
  /** True when the cookie had no `Domain` attribute: sent to exactly that host. */
  readonly hostOnly: boolean;
  readonly path: string;
  readonly secure: boolean;
  readonly httpOnly: boolean;
  /** Epoch milliseconds; absent for a session cookie (which lives as long as the run). */
  readonly expiresAt?: number;
}

/** The run's cookie jar: filled from `Set-Cookie`, sent on matching requests, dropped with the run. */
export interface HttpCookieJar {
  /** Cookies that would be sent to `url` (all of them without a URL). */
  list(url?: string | URL): HttpCookie[];
  /** Stores one `Set-Cookie` value as if `url` had answered it. Ignored when the domain does not match. */
  set(url: string | URL, setCookie: string): void;
  clear(): void;
}

/**
 * The run's HTTP client (SPEC §13), on undici. Requests use the run's proxy and
 * the run's cookie jar; failures reject with an `HttpError` subclass that names
 * the method, the URL (without credentials), the status and the attempt.
 */
export interface HttpClient {
  request(url: string | URL, options?: HttpRequestOptions): Promise<HttpResponse>;
  get(url: string | URL, options?: HttpGetOptions): Promise<HttpResponse>;
  post(url: string | URL, options?: HttpPostOptions): Promise<HttpResponse>;
  /** `get(url)` then `text()`. */
  getText(url: string | URL, options?: HttpGetOptions): Promise<string>;
  /** `get(url)` then `json()`. */
  getJson<T = unknown>(url: string | URL, options?: HttpGetOptions): Promise<T>;
  readonly cookies: HttpCookieJar;
}
