/**
 * Quarry's script SDK (SPEC §2): what a script imports as `quarry/sdk`.
 *
 * ```ts
 * import type { QuarryContext } from 'quarry/sdk';
 * export default async function run(ctx: QuarryContext<{ url: string }>) {
 *   await ctx.page.goto(ctx.job.url);
 *   await ctx.emit.item({ item_type: 'title', data: { title: await ctx.page.title() } });
 * }
 * ```
 *
 * A script that needs no browser (SPEC §13) exports `options` and takes an `HttpContext`:
 *
 * ```ts
 * import type { HttpContext, ScriptOptions } from 'quarry/sdk';
 * export const options: ScriptOptions = { browser: false };
 * export default async function run(ctx: HttpContext<{ url: string }>) {
 *   const html = await ctx.http.getText(ctx.job.url);
 *   await ctx.emit.item({ item_type: 'page', data: { bytes: html.length } });
 * }
 * ```
 *
 * Depends on the wire protocol, and on undici for `ctx.http` (imported on the
 * first request). `createEmitAPI`, `createStorageAPI`, `createMemoryAPI` and
 * `createHttpClient` are for hosts (the executor, tests); a script gets ready
 * instances on its context.
 */
export type {
  AfterRunHook,
  ArtifactId,
  BeforeRunHook,
  BeforeTerminalHook,
  BinaryData,
  Brand,
  CleanupHook,
  EmitAPI,
  EmitArtifactOptions,
  EmitCheckpointOptions,
  EmitEnqueueOptions,
  EmitItemOptions,
  EmitLogOptions,
  EmitRotateProxyOptions,
  EmitRunCompleteOptions,
  EmitRunErrorOptions,
  EmitSink,
  EventId,
  HttpContext,
  HttpScript,
  JobId,
  MemoryAPI,
  MemoryPressureLevel,
  MemorySnapshot,
  MemorySnapshotOptions,
  MemoryUsage,
  OnErrorHook,
  OutboundFrame,
  PrepareHook,
  PrepareResult,
  QuarryContext,
  QuarryHooks,
  QuarryScript,
  QuarryScriptModule,
  RunId,
  RunMeta,
  RunPartitionMeta,
  ScriptOptions,
  StorageAPI,
  StoragePutOptions,
  StoragePutResult,
  TerminalSignal,
} from './types.js';
export { HOOK_NAMES } from './types.js';
export {
  EmitFailedError,
  EmitValidationError,
  ProxyValidationError,
  QuarryError,
  SinkFailedError,
  SizeLimitError,
  StorageFilenameError,
  StorageWriteError,
  TerminalEventError,
  type SizeLimitSubject,
  type TerminalEventType,
} from './errors.js';
export { createEmitAPI, emitFailedError, emitSettled, unobservedEmitFailures, type EmitOptions } from './emit.js';
export type { EmitFailure } from './emit-chain.js';
export { checkStorageFilename, createStorageAPI, sidecarKey, type StorageOptions } from './storage.js';
export { createBatcher, type Batcher, type BatcherOptions } from './batcher.js';
export { createStorageBatcher, type PendingStoragePut, type StorageBatcher, type StorageBatcherOptions } from './storage-batcher.js';
export {
  classifyPressure,
  createMemoryAPI,
  MEMORY_PRESSURE_LEVELS,
  readBrowserMemory,
  readCgroupMemory,
  readNodeMemory,
  type MemoryOptions,
  type MemorySources,
} from './memory.js';
export {
  assertProxyEndpoint,
  PROXY_PROTOCOLS,
  proxyServerUrl,
  redactProxyEndpoint,
  validateProxyEndpoint,
  type ProxyEndpoint,
  type ProxyEndpointRedacted,
  type ProxyIssue,
  type ProxyProtocol,
  type ProxyValidationResult,
} from './proxy.js';
export {
  assertProxyPool,
  POOL_NAME_RE,
  PROXY_STICKY_SCOPES,
  PROXY_STRATEGIES,
  validateProxyPool,
  type ProxyPool,
  type ProxySticky,
  type ProxyStickyScope,
  type ProxyStrategy,
} from './proxy-pool.js';
export type { HttpClient, HttpCookie, HttpCookieJar, HttpGetOptions, HttpPostOptions, HttpRequestOptions, HttpResponse } from './http-types.js';
export { createHttpClient, type HttpClientOptions, type RunHttpClient } from './http-client.js';
export { CookieJar } from './http-cookies.js';
export {
  HttpBodyParseError,
  HttpError,
  HttpNetworkError,
  HttpOptionsError,
  HttpRedirectLimitError,
  HttpResponseTooLargeError,
  HttpStatusError,
  HttpTimeoutError,
  redactUrl,
  type HttpErrorContext,
} from './http-errors.js';
export { backoffDelay, HTTP_DEFAULTS, isRetryableStatus, parseRetryAfter } from './http-retry.js';
export { CONTRACT_VERSION, type LogLevel } from '../protocol/index.js';
