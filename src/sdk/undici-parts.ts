/**
 * The two parts of undici a direct (no proxy) `ctx.http` request needs, its
 * `Agent` and `request`, loaded from their own files: undici's entry also
 * loads every other client, the mocks, caches, fetch, WebSocket and
 * EventSource (~245 ms CPU at start against ~90 ms for these two on the
 * reference machine, docs/benchmarks.md). An undici that moved them is loaded
 * whole, as before.
 */
import { createRequire } from 'node:module';
import type { Dispatcher } from 'undici';

/** undici's top-level `request(url, options)`, for a URL object and an explicit dispatcher. */
export type RequestFn = (url: URL, options: Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & { dispatcher: Dispatcher }) => Promise<Dispatcher.ResponseData>;

/** What a direct request needs from undici. */
export interface UndiciParts {
  readonly Agent: new () => Dispatcher;
  readonly request: RequestFn;
}

type ApiRequest = (this: Dispatcher, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;

let parts: Promise<UndiciParts> | undefined;

/** undici's Agent and request, loaded once per process. */
export function undiciParts(): Promise<UndiciParts> {
  parts ??= load();
  return parts;
}

async function load(): Promise<UndiciParts> {
  try {
    const req = createRequire(import.meta.url);
    const Agent = req('undici/lib/dispatcher/agent.js') as unknown;
    const apiRequest = req('undici/lib/api/api-request.js') as unknown;
    if (typeof Agent !== 'function' || typeof apiRequest !== 'function') throw new Error('undici moved its files');
    return {
      Agent: Agent as UndiciParts['Agent'],
      // What undici's entry does for request(url, { dispatcher }): origin and path from the URL.
      request: (url, { dispatcher, ...options }) => (apiRequest as ApiRequest).call(dispatcher, { ...options, origin: url.origin, path: `${url.pathname}${url.search}` }),
    };
  } catch {
    const undici = await import('undici');
    return { Agent: undici.Agent, request: (url, options) => undici.request(url, options) };
  }
}
