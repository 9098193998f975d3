/**
 * `ctx.http` (SPEC §13): an HTTP client on undici for one run. It follows
 * redirects itself (so every hop passes through the cookie jar and counts
 * towards `maxRedirects`), retries 408/429/5xx, timeouts and network errors with
 * exponential backoff or the server's `Retry-After`, bounds each attempt by
 * `timeoutMs` and each body by `maxResponseBytes`, and goes through the run's
 * proxy. undici is imported on the first request, so a run that never fetches
 * pays nothing for it.
 */
import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import type { Dispatcher } from 'undici';
import type { ProxyEndpoint } from '../protocol/index.js';
import { CookieJar } from './http-cookies.js';
import {
  HttpBodyParseError,
  HttpNetworkError,
  HttpOptionsError,
  HttpRedirectLimitError,
  HttpResponseTooLargeError,
  HttpStatusError,
  HttpTimeoutError,
  redactUrl,
  type HttpErrorContext,
} from './http-errors.js';
import { backoffDelay, HTTP_DEFAULTS, isRetryableNetworkError, isRetryableStatus, mayRetry, networkErrorCode, parseRetryAfter } from './http-retry.js';
import type { HttpClient, HttpRequestOptions, HttpResponse } from './http-types.js';
import { proxyServerUrl } from './proxy.js';
import { undiciParts } from './undici-parts.js';

/** The limits a request runs with, defaults filled in. */
type Limits = { -readonly [K in keyof typeof HTTP_DEFAULTS]: number };

/** Options of {@link createHttpClient}. */
export interface HttpClientOptions {
  /** The run's proxy: http/https through undici's ProxyAgent, socks5 through its Socks5ProxyAgent. */
  readonly proxy?: ProxyEndpoint;
  /** Limits for every request of this client, over {@link HTTP_DEFAULTS}. */
  readonly defaults?: Partial<Limits>;
  /** Default `user-agent` header. */
  readonly userAgent?: string;
  /** Clock (epoch ms) for cookie expiry and `Retry-After` dates. */
  readonly now?: () => number;
  /** Draw in [0, 1) for backoff jitter. */
  readonly random?: () => number;
  /**
   * A direct (no proxy) connection pool the host shares across runs (a run
   * slot's, SPEC §10), used instead of one of this client's own and never
   * closed by it. Cookies stay this client's. Ignored with `proxy`.
   */
  readonly directPool?: () => Promise<Dispatcher>;
}

/** The client a host (the executor) holds: the script's `HttpClient` plus `close`. */
export interface RunHttpClient extends HttpClient {
  /** Closes the connection pool; requests after it fail. Never rejects. */
  close(): Promise<void>;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const DEFAULT_USER_AGENT = 'quarry';

interface HopResult {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  readonly attempts: number;
}

/** Thrown inside one attempt when its timer fired. */
class AttemptTimeout extends Error {}

function flattenHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function charsetOf(contentType: string | undefined): string {
  const m = /charset\s*=\s*"?([^";\s]+)/i.exec(contentType ?? '');
  return m?.[1] ?? 'utf-8';
}

function decodeText(body: Uint8Array, contentType: string | undefined): string {
  try {
    return new TextDecoder(charsetOf(contentType)).decode(body);
  } catch {
    return new TextDecoder('utf-8').decode(body); // an unknown charset label
  }
}

/** Undoes `content-encoding` (outermost last), never producing more than `limit` bytes. */
function decompress(body: Buffer, encoding: string | undefined, limit: number): Buffer {
  let out = body;
  const codings = (encoding ?? '').split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '' && s !== 'identity');
  for (const coding of codings.reverse()) {
    const opts = { maxOutputLength: limit };
    if (coding === 'gzip' || coding === 'x-gzip') out = gunzipSync(out, opts);
    else if (coding === 'br') out = brotliDecompressSync(out, opts);
    else if (coding === 'deflate') {
      // Servers send "deflate" both zlib-wrapped (as the RFC says) and raw.
      try {
        out = inflateSync(out, opts);
      } catch (err) {
        if (networkErrorCode(err) === 'ERR_BUFFER_TOO_LARGE') throw err;
        out = inflateRawSync(out, opts);
      }
    } else return out; // a coding we never asked for: hand over the bytes as they came
  }
  return out;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function openDispatcher(proxy: ProxyEndpoint | undefined): Promise<Dispatcher> {
  if (!proxy) return new (await undiciParts()).Agent();
  const undici = await import('undici');
  const uri = proxyServerUrl(proxy);
  if (proxy.protocol === 'socks5') {
    return new undici.Socks5ProxyAgent(uri, proxy.username ? { username: proxy.username, password: proxy.password ?? '' } : {});
  }
  const token = proxy.username ? `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}` : undefined;
  return new undici.ProxyAgent({ uri, ...(token ? { token } : {}) });
}

function limitsOf(base: Limits, o: HttpRequestOptions, context: HttpErrorContext): Limits {
  const out = { ...base };
  for (const key of Object.keys(HTTP_DEFAULTS) as (keyof Limits)[]) {
    const v = o[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new HttpOptionsError(context, `${key} must be an integer >= 0, got ${JSON.stringify(v)}`);
    out[key] = v;
  }
  if (out.timeoutMs === 0) throw new HttpOptionsError(context, 'timeoutMs must be at least 1');
  return out;
}

/**
 * A client for one run, with its own cookie jar and connection pool.
 * Requests reject with an `HttpError` subclass; see `http-errors.ts`.
 */
export function createHttpClient(options: HttpClientOptions = {}): RunHttpClient {
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const jar = new CookieJar(now);
  const base: Limits = { ...HTTP_DEFAULTS, ...options.defaults };
  let dispatcher: Promise<Dispatcher> | undefined;

  /** One attempt at one URL: send, keep its cookies, read the body within the limit. */
  async function attempt(method: string, target: URL, headers: Record<string, string>, body: string | Uint8Array | undefined, limits: Limits, context: HttpErrorContext, signal: AbortSignal | undefined): Promise<Omit<HopResult, 'attempts'>> {
    const { request } = await undiciParts();
    dispatcher ??= !options.proxy && options.directPool ? options.directPool() : openDispatcher(options.proxy);
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new AttemptTimeout());
    }, limits.timeoutMs);
    const onAbort = (): void => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const jarCookie = jar.header(target);
    const cookie = [headers.cookie, jarCookie].filter((c) => c !== undefined && c !== '').join('; ');
    const sent = { ...headers, ...(cookie ? { cookie } : {}) };
    try {
      const res = await request(target, { method: method as Dispatcher.HttpMethod, headers: sent, body: body ?? null, dispatcher: await dispatcher, signal: controller.signal });
      const setCookie = res.headers['set-cookie'];
      for (const sc of setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie]) jar.set(target, sc);
      const flat = flattenHeaders(res.headers);
      const announced = Number(flat['content-length']);
      const tooLarge = (bytes: number): HttpResponseTooLargeError => new HttpResponseTooLargeError(context, res.statusCode, bytes, limits.maxResponseBytes);
      if (Number.isFinite(announced) && announced > limits.maxResponseBytes) {
        res.body.destroy();
        throw tooLarge(announced);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > limits.maxResponseBytes) {
          res.body.destroy();
          throw tooLarge(size);
        }
        chunks.push(chunk as Buffer);
      }
      let decoded: Buffer;
      try {
        decoded = decompress(Buffer.concat(chunks), flat['content-encoding'], limits.maxResponseBytes);
      } catch (err) {
        if (networkErrorCode(err) === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(limits.maxResponseBytes + 1);
        throw new HttpNetworkError(context, networkErrorCode(err), err);
      }
      return { status: res.statusCode, headers: flat, body: decoded };
    } catch (err) {
      if (timedOut) throw new AttemptTimeout();
      if (signal?.aborted) throw signal.reason;
      throw err;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** One URL with its retries; returns the last response, retryable or not. */
  async function hop(method: string, target: URL, headers: Record<string, string>, body: string | Uint8Array | undefined, limits: Limits, rno: boolean, signal: AbortSignal | undefined): Promise<HopResult> {
    for (let n = 1; ; n++) {
      const context: HttpErrorContext = { method, url: redactUrl(target), attempt: n };
      const canRetry = n <= limits.retries;
      let res: Omit<HopResult, 'attempts'>;
      try {
        res = await attempt(method, target, headers, body, limits, context, signal);
      } catch (err) {
        if (err instanceof AttemptTimeout) {
          if (canRetry && mayRetry(method, 'timeout', rno)) {
            await sleep(backoffDelay(n, limits.retryDelayMs, limits.maxRetryDelayMs, random()), signal);
            continue;
          }
          throw new HttpTimeoutError(context, limits.timeoutMs);
        }
        if (err instanceof HttpResponseTooLargeError || err instanceof HttpNetworkError || signal?.aborted) throw err;
        if (canRetry && isRetryableNetworkError(err) && mayRetry(method, 'network', rno)) {
          await sleep(backoffDelay(n, limits.retryDelayMs, limits.maxRetryDelayMs, random()), signal);
          continue;
        }
        throw new HttpNetworkError(context, networkErrorCode(err), err);
      }
      if (canRetry && isRetryableStatus(res.status) && mayRetry(method, { status: res.status }, rno)) {
        const retryAfter = parseRetryAfter(res.headers['retry-after'], now());
        if (retryAfter !== undefined && retryAfter > limits.maxRetryAfterMs) throw new HttpStatusError(context, res.status, true, retryAfter);
        await sleep(retryAfter ?? backoffDelay(n, limits.retryDelayMs, limits.maxRetryDelayMs, random()), signal);
        continue;
      }
      return { ...res, attempts: n };
    }
  }

  async function request(url: string | URL, o: HttpRequestOptions = {}): Promise<HttpResponse> {
    let method = (o.method ?? 'GET').toUpperCase();
    const shown = redactUrl(url);
    const early: HttpErrorContext = { method, url: shown, attempt: 0 };
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      throw new HttpOptionsError(early, 'not an absolute URL; give http(s)://host/path');
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new HttpOptionsError(early, `protocol ${target.protocol} is not supported; use http or https`);
    for (const [k, v] of Object.entries(o.query ?? {})) target.searchParams.append(k, String(v));
    const limits = limitsOf(base, o, early);
    const bodies = [o.body, o.json, o.form].filter((b) => b !== undefined).length;
    if (bodies > 1) throw new HttpOptionsError(early, 'give at most one of body, json and form');

    let headers: Record<string, string> = { 'user-agent': options.userAgent ?? DEFAULT_USER_AGENT, accept: '*/*', 'accept-encoding': 'gzip, deflate, br' };
    let body: string | Uint8Array | undefined = o.body;
    if (o.json !== undefined) {
      body = JSON.stringify(o.json);
      headers = { ...headers, accept: 'application/json', 'content-type': 'application/json' };
    } else if (o.form !== undefined) {
      body = new URLSearchParams(o.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    for (const [k, v] of Object.entries(o.headers ?? {})) headers[k.toLowerCase()] = v;

    const redirects: string[] = [];
    for (;;) {
      const r = await hop(method, target, headers, body, limits, o.retryNonIdempotent === true, o.signal);
      const context: HttpErrorContext = { method, url: redactUrl(target), attempt: r.attempts };
      const location = r.headers.location;
      if (REDIRECTS.has(r.status) && location !== undefined && limits.maxRedirects > 0) {
        const next = new URL(location, target);
        redirects.push(redactUrl(next));
        if (redirects.length > limits.maxRedirects) throw new HttpRedirectLimitError(context, limits.maxRedirects, redirects);
        // 303, and 301/302 after a POST, continue as a GET without the body, as browsers do.
        if (r.status === 303 || ((r.status === 301 || r.status === 302) && method === 'POST')) {
          if (method !== 'HEAD') method = 'GET';
          body = undefined;
          const { 'content-type': _ct, 'content-length': _cl, ...rest } = headers;
          headers = rest;
        }
        // Credentials the script gave for one origin are not handed to another.
        if (next.origin !== target.origin) {
          const { authorization: _a, cookie: _c, ...rest } = headers;
          headers = rest;
        }
        target = next;
        continue;
      }
      if (r.status >= 400 && o.throwOnHttpError !== false) throw new HttpStatusError(context, r.status, isRetryableStatus(r.status));
      const contentType = r.headers['content-type'];
      const bodyBytes = new Uint8Array(r.body.buffer, r.body.byteOffset, r.body.byteLength);
      return Object.freeze({
        url: redactUrl(target),
        status: r.status,
        headers: Object.freeze(r.headers),
        body: bodyBytes,
        attempts: r.attempts,
        redirects: Object.freeze([...redirects]),
        text: () => decodeText(bodyBytes, contentType),
        json: <T>(): T => {
          try {
            return JSON.parse(decodeText(bodyBytes, contentType)) as T;
          } catch (err) {
            throw new HttpBodyParseError(context, r.status, err);
          }
        },
      });
    }
  }

  return Object.freeze({
    request,
    get: (url, o) => request(url, { ...o, method: 'GET' }),
    post: (url, o) => request(url, { ...o, method: 'POST' }),
    getText: async (url, o) => (await request(url, { ...o, method: 'GET' })).text(),
    getJson: async <T>(url: string | URL, o?: HttpRequestOptions) => (await request(url, { ...o, method: 'GET' })).json<T>(),
    cookies: jar,
    async close() {
      const d = dispatcher;
      dispatcher = undefined;
      // A shared pool is its host's to close.
      if (d && (options.proxy || !options.directPool)) await d.then((x) => x.close()).catch(() => undefined);
    },
  } satisfies RunHttpClient);
}
