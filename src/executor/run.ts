/**
 * One run, start to terminal event (SPEC §2 hooks and terminal rules):
 *
 *   prepare(job, run)          before any browser; skip → run_complete {skipped, reason}; throw → crash
 *   browser, context, page     cannot start → crash; none for a script with options.browser === false (SPEC §13)
 *   beforeRun → script → afterRun      a throw enters the error path
 *   onError(error)             error path only; throws swallowed
 *   beforeTerminal(signal)     only while emit is open; throws swallowed
 *   terminal event             run_complete, or run_error {error_type: 'script_error'}, unless the script wrote one
 *   cleanup                    after the terminal event; throws swallowed
 *
 * Takes its browser, sink and script as parameters and never touches the
 * process, so one executor process can call it for successive runs.
 */
import type { Dispatcher } from 'undici';
import type { ProxyEndpoint, RunRequest, RunResultFrame } from '../protocol/index.js';
import { redactUrlsIn } from '../protocol/redact.js';
import {
  createEmitAPI,
  createHttpClient,
  createMemoryAPI,
  createStorageAPI,
  EmitFailedError,
  emitFailedError,
  emitSettled,
  redactProxyEndpoint,
  type HttpContext,
  type JobId,
  type PrepareResult,
  type QuarryContext,
  type RunId,
  type RunMeta,
  type TerminalSignal,
} from '../sdk/index.js';
import type { BrowserSource, RunBrowser } from './browser.js';
import type { LoadedScript } from './loader.js';
import type { RunSink } from './run-sink.js';

/** How the run ended, as `run_result.outcome` reports it. */
export interface RunOutcome {
  readonly status: 'completed' | 'error' | 'crash';
  readonly message?: string;
  readonly error_type?: string;
  readonly stack?: string;
  /** True when `prepare` skipped the run. */
  readonly skipped?: boolean;
}

export interface RunDeps {
  readonly script: LoadedScript;
  readonly browsers: BrowserSource;
  readonly sink: RunSink;
  /** Diagnostics for stderr (one line each). */
  readonly log: (line: string) => void;
  /** A run slot's direct (no proxy) connection pool, shared by its runs; each run opens its own without. */
  readonly directPool?: () => Promise<Dispatcher>;
  /**
   * Given the closing of the run's browser context, which then goes on after
   * the run returns (a slot on the shared browser writes `run_result` first and
   * waits for it before its next run); without it the close is awaited here.
   */
  readonly deferBrowserClose?: (closing: Promise<void>) => void;
}

/** Executor exit code for a status (SPEC §3): 0 completed, 1 script error, 2 crash. */
export function exitCodeFor(status: RunOutcome['status']): 0 | 1 | 2 {
  return status === 'completed' ? 0 : status === 'error' ? 1 : 2;
}

/** The `run_result` control frame; the proxy appears without its password. */
export function runResultFrame(outcome: RunOutcome, proxy?: ProxyEndpoint): RunResultFrame {
  return {
    type: 'run_result',
    outcome: {
      status: outcome.status,
      ...(outcome.message !== undefined ? { message: outcome.message } : {}),
      ...(outcome.error_type !== undefined ? { error_type: outcome.error_type } : {}),
      ...(outcome.stack !== undefined ? { stack: outcome.stack } : {}),
    },
    ...(proxy ? { proxy_used: redactProxyEndpoint(proxy) } : {}),
  };
}

// A thrown error often names the URL it failed on (a navigation, a fetch): what the
// executor records of it keeps no credentials, since it becomes a stored event (SPEC §8).
const messageOf = (err: unknown): string => redactUrlsIn(err instanceof Error ? err.message : String(err));
const stackOf = (err: unknown): string | undefined => (err instanceof Error && typeof err.stack === 'string' ? redactUrlsIn(err.stack) : undefined);

function checkPrepareResult(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return `must return { action: 'continue' | 'skip' }, got ${v === undefined ? 'undefined' : JSON.stringify(v)}`;
  const { action, reason } = v as { action?: unknown; reason?: unknown };
  if (action !== 'continue' && action !== 'skip') return `returned action ${JSON.stringify(action)}; use 'continue' or 'skip'`;
  if (action === 'skip' && reason !== undefined && typeof reason !== 'string') return 'returned a skip reason that is not a string';
  return undefined;
}

/** The RunMeta of a request, frozen, optional fields omitted. */
export function runMetaOf(request: RunRequest): RunMeta {
  return Object.freeze({
    run_id: request.run_id as RunId,
    attempt: request.attempt,
    ...(request.job_id !== undefined ? { job_id: request.job_id as JobId } : {}),
    ...(request.parent_run_id !== undefined ? { parent_run_id: request.parent_run_id as RunId } : {}),
    ...(request.storage !== undefined
      ? { partition: Object.freeze({ dataset: request.storage.dataset, source: request.storage.source, category: request.storage.category, day: request.storage.day }) }
      : {}),
  });
}

/** Outcome from what was actually written: the exit code follows the terminal event on the wire. */
function outcomeFromSink(sink: RunSink): RunOutcome {
  if (sink.failure) return { status: 'crash', message: `the output to the runtime failed: ${messageOf(sink.failure.cause)}` };
  if (sink.inputFault) return { status: 'crash', message: sink.inputFault.message };
  const t = sink.terminal;
  if (!t) return { status: 'crash', message: 'the run ended without a terminal event' };
  if (t.type === 'run_error') {
    return { status: 'error', error_type: t.payload.error_type, message: t.payload.message, ...(t.payload.stack !== undefined ? { stack: t.payload.stack } : {}) };
  }
  const summary = t.payload.summary;
  if (summary?.skipped === true) {
    const reason = typeof summary.reason === 'string' ? summary.reason : undefined;
    return { status: 'completed', skipped: true, message: reason !== undefined ? `skipped: ${reason}` : 'skipped' };
  }
  return { status: 'completed', message: 'run completed' };
}

/**
 * Runs one script run to its terminal event and returns its outcome. Never
 * throws for anything the script or browser does; the caller writes
 * `run_result` and maps the status to an exit code.
 */
export async function executeRun(request: RunRequest, deps: RunDeps): Promise<RunOutcome> {
  const { script, sink, log } = deps;
  const { hooks } = script;
  const run = runMetaOf(request);
  const emit = createEmitAPI(sink, run);
  const storage = createStorageAPI(emit, request.storage ? { partition: request.storage } : {});
  let job: unknown = request.job;

  if (hooks.prepare) {
    let decision: PrepareResult;
    try {
      decision = await hooks.prepare(job, run);
    } catch (err) {
      return { status: 'crash', message: `prepare hook threw: ${messageOf(err)}`, ...(stackOf(err) ? { stack: stackOf(err) } : {}) };
    }
    const bad = checkPrepareResult(decision);
    if (bad) return { status: 'crash', message: `prepare hook ${bad}` };
    if (decision.action === 'skip') {
      const summary = { skipped: true, ...(decision.reason !== undefined ? { reason: decision.reason } : {}) };
      await emit.runComplete({ summary }).catch((err: unknown) => log(`could not write run_complete: ${messageOf(err)}`));
      return outcomeFromSink(sink);
    }
    if (decision.job !== undefined) job = decision.job;
  }

  // A script with options.browser === false never gets a browser (SPEC §13): the source is lazy, so nothing is launched.
  let rb: RunBrowser | undefined;
  if (script.options.browser) {
    // Chromium cannot authenticate to a SOCKS5 proxy: it would go out without the proxy or fail obscurely (SPEC §11).
    const p = request.proxy;
    if (p?.protocol === 'socks5' && p.password) {
      return { status: 'crash', message: `refused: the proxy socks5://${p.host}:${p.port} has a password, which a browser run cannot use (Chromium does not authenticate to SOCKS5 proxies); use an http or https endpoint, or a no-browser script (export const options = { browser: false })` };
    }
    try {
      rb = await deps.browsers.openRun(request.proxy);
    } catch (err) {
      return { status: 'crash', message: `browser failed to start: ${messageOf(err)}` };
    }
  }

  const http = createHttpClient(request.proxy ? { proxy: request.proxy } : deps.directPool ? { directPool: deps.directPool } : {});
  const base: HttpContext = { job, run, emit, storage, memory: createMemoryAPI(rb ? { page: rb.page } : {}), http };
  // Hooks are typed with QuarryContext; a no-browser script declared (options.browser: false) that it reads
  // none of page/browser/browserContext, and its HttpContext annotation makes touching them a compile error.
  const ctx = Object.freeze(rb ? { ...base, page: rb.page, browser: rb.browser, browserContext: rb.browserContext } : base) as QuarryContext;

  const swallow = async (name: string, fn: () => unknown): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      log(`${name} hook threw (ignored): ${messageOf(err)}`);
    }
  };

  let failure: { error: unknown } | undefined;
  try {
    if (hooks.beforeRun) await hooks.beforeRun(ctx);
    await script.run(ctx);
    if (hooks.afterRun) await hooks.afterRun(ctx);
  } catch (error) {
    failure = { error };
    if (hooks.onError) await swallow('onError', () => hooks.onError?.(error, ctx));
  }

  // Writes the script started without awaiting still count: wait for them before deciding.
  await emitSettled(emit);
  // An emit that failed unawaited lost its event: the run is no success (SPEC §2).
  const noteLostEmits = (): void => {
    const lost = emitFailedError(emit);
    if (lost !== undefined) failure ??= { error: lost };
  };
  noteLostEmits();
  const open = (): boolean => !sink.terminal && !sink.failure;
  if (open() && hooks.beforeTerminal) {
    const signal: TerminalSignal = failure ? { outcome: 'error', error: failure.error } : { outcome: 'completed' };
    await swallow('beforeTerminal', () => hooks.beforeTerminal?.(signal, ctx));
    await emitSettled(emit);
    noteLostEmits();
  }
  if (open()) {
    try {
      if (failure) {
        const emitFailed = failure.error instanceof EmitFailedError;
        const stack = emitFailed ? undefined : stackOf(failure.error);
        const errorType = emitFailed ? EmitFailedError.ERROR_TYPE : 'script_error';
        await emit.runError({ error_type: errorType, message: messageOf(failure.error), ...(stack ? { stack } : {}) });
      } else {
        await emit.runComplete();
      }
    } catch (err) {
      log(`could not write the terminal event: ${messageOf(err)}`);
    }
  }

  if (hooks.cleanup) await swallow('cleanup', () => hooks.cleanup?.(ctx));
  await emitSettled(emit);
  // A browser that went away under the run (crashed, killed) is why it failed: a crash, not a script error (SPEC §10).
  const lost = rb?.lost() === true;
  const closing = rb?.close();
  if (closing && deps.deferBrowserClose) deps.deferBrowserClose(closing);
  await Promise.all([deps.deferBrowserClose ? undefined : closing, http.close()]);
  const outcome = outcomeFromSink(sink);
  if (lost && outcome.status !== 'completed') return { status: 'crash', message: `the browser died during the run${outcome.message ? ` (${outcome.message})` : ''}` };
  return outcome;
}
