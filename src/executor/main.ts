#!/usr/bin/env node
/**
 * The executor binary (SPEC §3), the only file that touches the process:
 *
 *   node dist/executor/main.js <script>             run one run: request line on stdin, frames on stdout
 *   node dist/executor/main.js --validate <script>  load and check the script, no browser; exit 0 or 3
 *
 * Exit codes: 0 completed, 1 script error, 2 crash, 3 invalid input.
 * Stdout carries frames only: every other write to it goes to stderr.
 */
import { redactUrlsIn } from '../protocol/redact.js';
import { createWriteStream, fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { AckInbox } from './ack-inbox.js';
import { createBrowserSource, DEFAULT_CHROMIUM_PATH, type BrowserSource } from './browser.js';
import { FrameWriter } from './frame-writer.js';
import { readRequestLine } from './input.js';
import { watchRuntime } from './lifeline.js';
import { loadScript, type LoadedScript } from './loader.js';
import { parseRunRequest } from './request.js';
import { executeRun, exitCodeFor, runResultFrame, type RunOutcome } from './run.js';
import { RunSink } from './run-sink.js';

const USAGE = 'usage: node dist/executor/main.js <script>  (run request as one JSON line on stdin)\n       node dist/executor/main.js --validate <script>';

/** Set once stderr broke (EPIPE: the runtime is gone); writing on would only raise more errors. */
let stderrBroken = false;
const log = (line: string): void => {
  if (stderrBroken || process.stderr.destroyed) return;
  process.stderr.write(`[quarry-executor] ${line}\n`);
};

/** How long an interrupted executor gets to close its browser before it kills it and exits anyway. */
const SIGNAL_EXIT_DEADLINE_MS = 2_000;

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Sends every write to process.stdout (console.log, libraries, the script) to
 * stderr, so nothing but frames reaches fd 1. Frames use their own handle on fd 1.
 */
function divertStrayStdout(): void {
  const stderr = process.stderr;
  const divert = (chunk: unknown, encoding?: unknown, cb?: unknown): boolean => {
    const callback = typeof encoding === 'function' ? encoding : cb;
    const enc = typeof encoding === 'string' ? (encoding as BufferEncoding) : undefined;
    stderr.write(chunk as string | Uint8Array, enc ?? 'utf8', callback as ((err?: Error | null) => void) | undefined);
    // Stray writers do not own stdout's backpressure: report "keep going".
    return true;
  };
  process.stdout.write = divert as typeof process.stdout.write;
}

/** An async, backpressured writable on fd 1 (a pipe or socket; a file works too). */
function openFrameOutput(): Writable {
  const st = fstatSync(1);
  if (st.isFIFO() || st.isSocket()) return new Socket({ fd: 1, readable: false, writable: true });
  return createWriteStream('', { fd: 1, autoClose: false });
}

async function validate(path: string): Promise<number> {
  try {
    const s = await loadScript(path);
    const hooks = Object.keys(s.hooks);
    log(`valid: ${s.path} (default export${hooks.length ? `, hooks: ${hooks.join(', ')}` : ''})`);
    return 0;
  } catch (err) {
    log(`invalid script: ${messageOf(err)}`);
    return 3;
  }
}

async function runOnce(scriptPath: string): Promise<number> {
  const output = openFrameOutput();
  const writer = new FrameWriter(output);
  const inbox = new AckInbox(log);
  const held: { browsers?: BrowserSource } = {};
  // A runtime killed without a word (SIGKILL, OOM) takes us and the browser along at once:
  // nobody is left to report to, so nothing is flushed (SPEC §5).
  process.stderr.on('error', () => {
    stderrBroken = true;
  });
  watchRuntime({
    stdin: process.stdin,
    // Our runtime names itself and holds stdin open until we exit; others may close it early.
    stdinHeldOpen: process.env.QUARRY_RUNTIME_PID !== undefined,
    outputs: [output, process.stderr],
    onGone: (why) => {
      log(`stopping: ${why}`);
      held.browsers?.killNow();
      process.exit(2);
    },
  });
  let request;
  try {
    request = parseRunRequest(await readRequestLine(process.stdin, inbox));
  } catch (err) {
    log(`invalid run request: ${messageOf(err)}`);
    return 3;
  }

  const finish = async (outcome: RunOutcome, browsers?: BrowserSource): Promise<void> => {
    if (outcome.status === 'crash') log(`executor crash: ${outcome.message ?? 'unknown'}`);
    await writer.write(runResultFrame(outcome, request.proxy)).catch((err: unknown) => log(`could not write run_result: ${messageOf(err)}`));
    await browsers?.close();
    await writer.end();
  };

  let script: LoadedScript;
  try {
    script = await loadScript(scriptPath);
  } catch (err) {
    // One line: finish() logs the crash message, which names the script and what to fix.
    await finish({ status: 'crash', message: `cannot load script: ${messageOf(err)}` });
    return 3;
  }

  const browsers = createBrowserSource({
    executablePath: request.chromium_path ?? process.env.QUARRY_CHROMIUM_PATH ?? DEFAULT_CHROMIUM_PATH,
    ...(request.browser_ws_endpoint ? { browserWSEndpoint: request.browser_ws_endpoint } : {}),
    ...(request.proxy ? { launchProxy: request.proxy } : {}),
  });

  held.browsers = browsers;

  // Interrupted: close the browser and delete its profile, then die of the same signal. A close
  // that hangs (a wedged browser, an orphan whose pipes are gone) is cut short by a hard deadline.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig} received: closing the browser`);
      const die = (): void => {
        process.removeAllListeners(sig);
        process.kill(process.pid, sig);
      };
      setTimeout(() => {
        browsers.killNow();
        die();
      }, SIGNAL_EXIT_DEADLINE_MS);
      void browsers.close().finally(die);
    });
  }
  // A stray rejection in a script (an emit nobody awaited) must not kill the run.
  process.on('unhandledRejection', (reason) => log(`unhandled rejection (ignored): ${messageOf(reason)}`));
  process.on('uncaughtException', (err) => {
    log(`uncaught exception: ${redactUrlsIn(err.stack ?? err.message)}`);
    void finish({ status: 'crash', message: `uncaught exception: ${err.message}` }, browsers).finally(() => process.exit(2));
  });

  let outcome: RunOutcome;
  try {
    outcome = await executeRun(request, { script, browsers, sink: new RunSink(writer, inbox), log });
  } catch (err) {
    outcome = { status: 'crash', message: `executor failure: ${messageOf(err)}` };
  }
  await finish(outcome, browsers);
  return exitCodeFor(outcome.status);
}

async function main(argv: readonly string[]): Promise<number> {
  divertStrayStdout();
  const [first, second, ...rest] = argv;
  if (first === '--validate') {
    if (second === undefined || rest.length > 0) {
      log(USAGE);
      return 3;
    }
    return validate(second);
  }
  if (first === undefined || first.startsWith('--') || second !== undefined) {
    log(USAGE);
    return 3;
  }
  return runOnce(first);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`executor failure: ${redactUrlsIn(err instanceof Error ? (err.stack ?? err.message) : String(err))}`);
    process.exit(2);
  },
);
