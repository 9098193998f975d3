import { describe, expect, it } from 'vitest';
import { AckInbox } from '../../src/executor/ack-inbox.js';
import { FrameWriter } from '../../src/executor/frame-writer.js';
import type { LoadedScript } from '../../src/executor/loader.js';
import { executeRun, exitCodeFor, runMetaOf, runResultFrame } from '../../src/executor/run.js';
import { RunSink } from '../../src/executor/run-sink.js';
import { DEFAULT_SCRIPT_OPTIONS } from '../../src/executor/script-options.js';
import type { RunRequest } from '../../src/protocol/index.js';
import type { QuarryContext, QuarryHooks, QuarryScript } from '../../src/sdk/index.js';
import { fakeBrowserSource, FrameCollector } from '../_harness/executor-fakes.js';

const request: RunRequest = { run_id: 'r1', attempt: 1, job: { n: 1 } };

async function run(scriptFn: QuarryScript, hooks: QuarryHooks = {}, opts: { failAfter?: number; browserFails?: Error; noBrowser?: boolean } = {}) {
  const trace: string[] = [];
  const out = new FrameCollector(opts.failAfter !== undefined ? { failAfter: opts.failAfter } : {});
  const sink = new RunSink(new FrameWriter(out), new AckInbox());
  const logs: string[] = [];
  const script: LoadedScript = { path: '/x.ts', run: scriptFn, hooks, options: opts.noBrowser ? { browser: false } : DEFAULT_SCRIPT_OPTIONS };
  const outcome = await executeRun(request, { script, sink, browsers: fakeBrowserSource(trace, opts.browserFails ? { failWith: opts.browserFails } : {}), log: (l) => logs.push(l) });
  return { outcome, frames: out.frames, trace, logs };
}
const types = (frames: { type: string }[]) => frames.map((f) => f.type);

describe('executeRun', () => {
  it('runs prepare before the browser exists and cleanup after the terminal event', async () => {
    const trace: string[] = [];
    const out = new FrameCollector();
    const sink = new RunSink(new FrameWriter(out), new AckInbox());
    const t = (s: string) => () => void trace.push(s);
    await executeRun(request, {
      sink,
      log: () => {},
      browsers: fakeBrowserSource(trace),
      script: {
        path: '/x.ts',
        options: DEFAULT_SCRIPT_OPTIONS,
        run: t('script'),
        hooks: {
          prepare: () => (trace.push('prepare'), { action: 'continue' }),
          beforeRun: t('beforeRun'),
          afterRun: t('afterRun'),
          beforeTerminal: () => void trace.push(`beforeTerminal frames=${out.frames.length}`),
          cleanup: () => void trace.push(`cleanup frames=${types(out.frames).join(',')}`),
        },
      },
    });
    expect(trace).toEqual(['prepare', 'browser', 'beforeRun', 'script', 'afterRun', 'beforeTerminal frames=0', 'cleanup frames=run_complete', 'context closed']);
  });

  it('gives the script a frozen context with the job, run meta and the run browser objects', async () => {
    let seen: QuarryContext | undefined;
    await run((ctx) => {
      seen = ctx;
    });
    expect(Object.isFrozen(seen)).toBe(true);
    expect(seen).toMatchObject({ job: { n: 1 }, run: { run_id: 'r1', attempt: 1 }, page: { fake: 'page' }, browserContext: { fake: 'context' } });
    expect(Object.isFrozen(seen!.run)).toBe(true);
  });

  it('tells the script its partition keys (category, day) when the request carries storage, frozen, and leaves them out otherwise', () => {
    const withStorage = runMetaOf({ ...request, storage: { dataset: 'd', source: 'ads', category: 'acme', day: '2026-11-03', run_id: 'r1' } });
    expect(withStorage.partition).toEqual({ dataset: 'd', source: 'ads', category: 'acme', day: '2026-11-03' });
    expect(Object.isFrozen(withStorage.partition)).toBe(true);
    expect('partition' in runMetaOf(request)).toBe(false);
  });

  it('opens no browser for a script with options.browser false, and its context has http but no page, browser or context', async () => {
    let seen: Record<string, unknown> | undefined;
    const { outcome, trace } = await run(
      (ctx) => {
        seen = ctx as unknown as Record<string, unknown>;
      },
      { beforeRun: () => undefined },
      { noBrowser: true },
    );
    expect(outcome.status).toBe('completed');
    expect(trace).not.toContain('browser');
    expect(Object.keys(seen!).sort()).toEqual(['emit', 'http', 'job', 'memory', 'run', 'storage']);
    expect(Object.isFrozen(seen)).toBe(true);
  });

  it('gives a browser script ctx.http beside its page', async () => {
    let seen: QuarryContext | undefined;
    await run((ctx) => {
      seen = ctx;
    });
    expect(typeof seen?.http.get).toBe('function');
    expect(seen?.page).toEqual({ fake: 'page' });
  });

  it('waits for a runComplete the script did not await and does not emit a second terminal', async () => {
    const { outcome, frames } = await run((ctx) => {
      void ctx.emit.runComplete({ summary: { pages: 3 } });
    });
    expect(types(frames)).toEqual(['run_complete']);
    expect(outcome).toEqual({ status: 'completed', message: 'run completed' });
  });

  it('lets beforeTerminal write the terminal event itself, which then decides the outcome', async () => {
    const { outcome, frames } = await run(
      () => {},
      { beforeTerminal: (_s, ctx) => ctx.emit.runError({ error_type: 'quota', message: 'daily quota used' }) },
    );
    expect(types(frames)).toEqual(['run_error']);
    expect(outcome).toEqual({ status: 'error', error_type: 'quota', message: 'daily quota used' });
  });

  it('reports a string thrown by the script as the run_error message', async () => {
    const { outcome, frames } = await run(() => {
      throw 'plain string';
    });
    expect(frames.at(-1)).toMatchObject({ type: 'run_error', payload: { error_type: 'script_error', message: 'plain string' } });
    expect(outcome.status).toBe('error');
  });

  it('logs and swallows throws from onError, beforeTerminal and cleanup', async () => {
    const boom = () => {
      throw new Error('hook boom');
    };
    const { outcome, logs } = await run(
      () => {
        throw new Error('script boom');
      },
      { onError: boom, beforeTerminal: boom, cleanup: boom },
    );
    expect(outcome).toMatchObject({ status: 'error', message: 'script boom' });
    expect(logs).toEqual(['onError hook threw (ignored): hook boom', 'beforeTerminal hook threw (ignored): hook boom', 'cleanup hook threw (ignored): hook boom']);
  });

  it('is a crash when the output breaks, even if the script swallowed the SinkFailedError', async () => {
    const { outcome } = await run(async (ctx) => {
      // Small events are handed to the output once per event-loop turn.
      await ctx.emit.info('first').catch(() => {});
      await new Promise((r) => setImmediate(r));
      await ctx.emit.info('second').catch(() => {});
      await new Promise((r) => setImmediate(r));
    }, {}, { failAfter: 1 });
    expect(outcome.status).toBe('crash');
    expect(outcome.message).toMatch(/the output to the runtime failed: EPIPE/);
  });

  it('is a crash when prepare returns something other than continue or skip, before any browser', async () => {
    const { outcome, trace } = await run(() => {}, { prepare: () => ({ action: 'later' }) as never });
    expect(outcome).toEqual({ status: 'crash', message: "prepare hook returned action \"later\"; use 'continue' or 'skip'" });
    expect(trace).toEqual([]);
  });

  it('returns before the context is closed when told to defer its close, handing over the close; otherwise waits for it', async () => {
    const script: LoadedScript = { path: '/x.ts', run: () => undefined, hooks: {}, options: DEFAULT_SCRIPT_OPTIONS };
    const gated = () => {
      let open: () => void = () => undefined;
      const gate = new Promise<void>((r) => (open = r));
      const trace: string[] = [];
      return { trace, open, browsers: fakeBrowserSource(trace, { closeGate: gate }), sink: new RunSink(new FrameWriter(new FrameCollector()), new AckInbox()) };
    };
    const settledSoon = (p: Promise<unknown>): Promise<boolean> => Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 50))]);

    const d = gated();
    let handed: Promise<void> | undefined;
    const deferred = executeRun(request, { script, sink: d.sink, browsers: d.browsers, log: () => {}, deferBrowserClose: (c) => (handed = c) });
    expect(await settledSoon(deferred)).toBe(true);
    expect((await deferred).status).toBe('completed');
    expect(d.trace).toEqual(['browser']);
    expect(await settledSoon(handed!)).toBe(false);
    d.open();
    await handed;
    expect(d.trace).toEqual(['browser', 'context closed']);

    const w = gated();
    const waiting = executeRun(request, { script, sink: w.sink, browsers: w.browsers, log: () => {} });
    expect(await settledSoon(waiting)).toBe(false);
    w.open();
    expect((await waiting).status).toBe('completed');
    expect(w.trace).toEqual(['browser', 'context closed']);
  });

  it('is a crash when the browser cannot be opened, with no terminal event', async () => {
    const { outcome, frames } = await run(() => {}, {}, { browserFails: new Error('no chromium') });
    expect(outcome).toEqual({ status: 'crash', message: 'browser failed to start: no chromium' });
    expect(frames).toEqual([]);
  });
});

describe('run_result and exit codes', () => {
  it('maps completed/error/crash to 0/1/2', () => {
    expect([exitCodeFor('completed'), exitCodeFor('error'), exitCodeFor('crash')]).toEqual([0, 1, 2]);
  });

  it('omits absent outcome fields and reports the proxy without its password', () => {
    expect(runResultFrame({ status: 'crash', message: 'm' }, { protocol: 'http', host: 'h', port: 1, username: 'u', password: 'p' })).toEqual({
      type: 'run_result',
      outcome: { status: 'crash', message: 'm' },
      proxy_used: { protocol: 'http', host: 'h', port: 1, username: 'u' },
    });
    expect(runResultFrame({ status: 'completed' })).toEqual({ type: 'run_result', outcome: { status: 'completed' } });
  });
});
