import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserHandle } from '../../src/executor/browser.js';
import { events, fixture, runExecutor, runResult, sharedBrowser, tempDir } from '../_harness/executor-harness.js';

let browser: { handle: BrowserHandle; wsEndpoint: string };
const tmp = tempDir();
beforeAll(async () => {
  browser = await sharedBrowser();
});
afterAll(async () => {
  await browser?.handle.close();
  tmp.remove();
});

let n = 0;
/** Runs hooks.ts in `mode`; returns the run and the hook trace it wrote. */
async function runHooks(mode: string, extra: Record<string, unknown> = {}) {
  const trace = join(tmp.dir, `trace-${++n}.txt`);
  const request = { run_id: `run-${n}`, attempt: 1, job: { trace, mode }, browser_ws_endpoint: browser.wsEndpoint, ...extra };
  const run = await runExecutor(fixture('hooks.ts'), request);
  let lines: string[] = [];
  try {
    lines = readFileSync(trace, 'utf8').trim().split('\n');
  } catch {
    // no hook ran
  }
  expect(run.decodeError).toBeUndefined();
  return { run, trace: lines, types: events(run.frames).map((e) => e.type) };
}

describe('executor hook order (SPEC §2)', () => {
  it('success path: prepare, beforeRun, script, afterRun, beforeTerminal (emit open), run_complete, cleanup (emit closed); exit 0', async () => {
    const { run, trace, types } = await runHooks('ok');
    expect(trace).toEqual(['prepare attempt=1', 'beforeRun', 'script note=- frozen=true', 'afterRun', 'beforeTerminal completed', 'cleanup emit=TerminalEventError']);
    expect(types).toEqual(['item', 'log', 'run_complete']);
    expect(events(run.frames).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(run.frames.at(-1)).toEqual({ type: 'run_result', outcome: { status: 'completed', message: 'run completed' } });
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/onError|beforeTerminal hook threw/);
  });

  it('error path: a script throw runs onError then beforeTerminal(error), emits run_error script_error, skips afterRun; exit 1', async () => {
    const { run, trace, types } = await runHooks('throw');
    expect(trace).toEqual(['prepare attempt=1', 'beforeRun', 'script note=- frozen=true', 'onError script exploded', 'beforeTerminal error script exploded', 'cleanup emit=TerminalEventError']);
    expect(types).toEqual(['item', 'log', 'run_error']);
    const terminal = events(run.frames).at(-1)!;
    expect(terminal.payload).toMatchObject({ error_type: 'script_error', message: 'script exploded' });
    expect((terminal.payload as { stack?: string }).stack).toContain('TypeError: script exploded');
    expect(runResult(run.frames)?.outcome).toMatchObject({ status: 'error', error_type: 'script_error', message: 'script exploded' });
    expect(run.code).toBe(1);
  });

  it('error path: a beforeRun throw skips the script and afterRun', async () => {
    const { run, trace, types } = await runHooks('before-run-throw');
    expect(trace).toEqual(['prepare attempt=1', 'beforeRun', 'onError beforeRun exploded', 'beforeTerminal error beforeRun exploded', 'cleanup emit=TerminalEventError']);
    expect(types).toEqual(['log', 'run_error']);
    expect(run.code).toBe(1);
  });

  it('error path: an afterRun throw enters the error path after the script', async () => {
    const { run, trace } = await runHooks('after-run-throw');
    expect(trace).toEqual(['prepare attempt=1', 'beforeRun', 'script note=- frozen=true', 'afterRun', 'onError afterRun exploded', 'beforeTerminal error afterRun exploded', 'cleanup emit=TerminalEventError']);
    expect(run.code).toBe(1);
  });

  it('skip path: prepare skip emits run_complete {skipped, reason} and runs no other hook and no browser; exit 0', async () => {
    // No browser endpoint and a Chromium that cannot start: any browser start would crash the run.
    const trace = join(tmp.dir, 'trace-skip.txt');
    const run = await runExecutor(fixture('hooks.ts'), { run_id: 'run-skip', attempt: 1, job: { trace, mode: 'skip' }, chromium_path: '/nonexistent/chromium' });
    expect(readFileSync(trace, 'utf8').trim().split('\n')).toEqual(['prepare attempt=1']);
    expect(events(run.frames).map((e) => [e.type, e.payload])).toEqual([['run_complete', { summary: { skipped: true, reason: 'already scraped today' } }]]);
    expect(runResult(run.frames)?.outcome).toEqual({ status: 'completed', message: 'skipped: already scraped today' });
    expect(run.code).toBe(0);
  });

  it('skip path without a reason leaves reason out of the summary', async () => {
    const { run } = await runHooks('skip-no-reason');
    expect(events(run.frames).map((e) => e.payload)).toEqual([{ summary: { skipped: true } }]);
  });

  it('a prepare throw is a crash: no terminal event, run_result crash, exit 2', async () => {
    const { run, trace } = await runHooks('prepare-throw');
    expect(trace).toEqual(['prepare attempt=1']);
    expect(events(run.frames)).toEqual([]);
    expect(runResult(run.frames)?.outcome).toMatchObject({ status: 'crash', message: 'prepare hook threw: prepare exploded' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('prepare exploded');
  });

  it('prepare can hand the script a rewritten job', async () => {
    const { trace } = await runHooks('rewrite-job');
    expect(trace[2]).toBe('script note=rewritten by prepare frozen=true');
  });

  it('a run_error the script emits itself decides the outcome: no second terminal, beforeTerminal skipped, exit 1', async () => {
    const { run, trace, types } = await runHooks('script-run-error');
    expect(types).toEqual(['item', 'run_error']);
    expect(trace).toEqual(['prepare attempt=1', 'beforeRun', 'script note=- frozen=true', 'afterRun', 'cleanup emit=TerminalEventError']);
    expect(runResult(run.frames)?.outcome).toEqual({ status: 'error', error_type: 'blocked', message: 'captcha wall' });
    expect(run.code).toBe(1);
  });

  it('copies run identity from the request into every envelope', async () => {
    const { run } = await runHooks('ok', { attempt: 3, job_id: 'job-7', parent_run_id: 'run-prev' });
    for (const e of events(run.frames)) expect(e).toMatchObject({ attempt: 3, job_id: 'job-7', parent_run_id: 'run-prev', contract_version: '1.0.0' });
  });
});
