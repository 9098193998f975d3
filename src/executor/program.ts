/**
 * The executor's program (SPEC §3), loaded by `executor/main.ts` (the binary's
 * entry; bundled into one CommonJS file by scripts/bundle.mjs). The only file
 * that touches the process:
 *
 *   node dist/executor/main.js <script>             run one run: request line on stdin, frames on fd 3 or stdout
 *   node dist/executor/main.js --validate <script>  load and check the script, no browser; exit 0 or 3
 *
 * Exit codes: 0 completed, 1 script error, 2 crash, 3 invalid input.
 * Frames go to the fd the runtime offers (QUARRY_FRAME_FD, after a handshake on
 * stdout), else to stdout; either way process.stdout writes go to stderr.
 */
// Only light modules load before the lifeline is up; the rest (codec, SDK, script loader) can take
// seconds to load on a busy machine, long enough for a killed runtime to be missed (SPEC §5).
import { redactUrlsIn } from '../protocol/redact.js';
import { chromiumPath } from '../runtime/chromium.js';
import { createWriteStream, fstatSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { BrowserSource } from './browser.js';
import { watchRuntime } from './lifeline.js';
import type { LoadedScript } from './loader.js';
import type { RunOutcome } from './run.js';
import type { RunRequest } from '../protocol/frames.js';
import type { Dispatcher } from 'undici';

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
 * stderr, so none reaches the frames when they go to fd 1. Frames use their own handle.
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

/**
 * The fd frames go to: the one the runtime offers (FRAME_FD_ENV), announced by
 * the handshake as the first bytes on fd 1, so that raw writes to fd 1
 * (`fs.writeSync(1, …)`, children with inherited stdio) are only log output;
 * without an offer (an older runtime, a test harness, `quarry debug ipc`
 * captures), fd 1 itself.
 */
async function frameFd(): Promise<number> {
  const { encodeFrameFdHandshake, FRAME_FD, FRAME_FD_ENV } = await import('../protocol/frame-fd.js');
  if (process.env[FRAME_FD_ENV] !== String(FRAME_FD)) return 1;
  let st;
  try {
    st = fstatSync(FRAME_FD);
  } catch {
    return 1; // offered in the environment but not open: a wrapper dropped it
  }
  if (!st.isFIFO() && !st.isSocket()) return 1;
  writeSync(1, encodeFrameFdHandshake(FRAME_FD));
  return FRAME_FD;
}

/** An async, backpressured writable on `fd` (a pipe or socket; a file works too). */
function openFrameOutput(fd: number): Writable {
  const st = fstatSync(fd);
  if (st.isFIFO() || st.isSocket()) return new Socket({ fd, readable: false, writable: true });
  return createWriteStream('', { fd, autoClose: false });
}

/**
 * Loads undici's parts (what `ctx.http`'s first request loads, ~90 ms CPU)
 * while we wait for the request, when the script's source says `browser:
 * false`. A hint, not a decision: nothing of the script runs, and a wrong
 * guess only moves that load (`ctx.http` loads the parts on first use anyway).
 */
function warmHttp(scriptPath: string): void {
  void readFile(scriptPath, 'utf8')
    .then(async (source) => {
      if (/\bbrowser\s*:\s*false\b/.test(source)) await (await import('../sdk/undici-parts.js')).undiciParts();
    })
    .catch(() => undefined);
}

/** msgpackr's switch for its native string extractor (read once, when msgpackr loads). */
const MSGPACKR_NATIVE_OFF = 'MSGPACKR_NATIVE_ACCELERATION_DISABLED';

/**
 * Loads the frame codec without msgpackr's native string extractor: its addon
 * (found through a libc probe, ~20 ms CPU at start, before the executor can
 * take its request) speeds up decoding long strings, and the executor only
 * decodes small frames (acks, a run slot's requests); it encodes, which the
 * extractor does not touch. The environment is as it was before any script runs.
 */
async function withoutNativeMsgpackr<T>(load: () => Promise<T>): Promise<T> {
  const before = process.env[MSGPACKR_NATIVE_OFF];
  process.env[MSGPACKR_NATIVE_OFF] = 'true';
  try {
    return await load();
  } finally {
    if (before === undefined) delete process.env[MSGPACKR_NATIVE_OFF];
    else process.env[MSGPACKR_NATIVE_OFF] = before;
  }
}

async function validate(path: string): Promise<number> {
  const { loadScript } = await import('./loader.js');
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
  const held: { browsers?: BrowserSource } = {};
  // A runtime killed without a word (SIGKILL, OOM) takes us and the browser along at once:
  // nobody is left to report to, so nothing is flushed (SPEC §5). Watched first, before anything loads.
  // In a run slot the watch goes on while the slot waits for its next run.
  process.stderr.on('error', () => {
    stderrBroken = true;
  });
  const runtimePid = Number(process.env.QUARRY_RUNTIME_PID);
  /** True while a run slot waits between runs. */
  let idle = false;
  const lifeline = watchRuntime({
    stdin: process.stdin,
    // Our runtime names itself and holds stdin open until we exit; others may close it early.
    stdinHeldOpen: process.env.QUARRY_RUNTIME_PID !== undefined,
    ...(Number.isSafeInteger(runtimePid) && runtimePid > 0 ? { runtimePid } : {}),
    outputs: [process.stderr],
    onGone: (why) => {
      // A slot between runs: the runtime ended the invocation (or died); nothing to say.
      if (!idle) log(`stopping: ${why}`);
      held.browsers?.killNow();
      process.exit(idle ? 0 : 2);
    },
  });
  const [{ AckInbox }, { createBrowserSource, createSharedBrowserSource }, { FrameWriter }, { readRequestLine }, { loadScript, prepareLoader }, { parseRunRequest, parseRunRequestValue }, { executeRun, exitCodeFor, runResultFrame }, { RunSink }] = await withoutNativeMsgpackr(() => Promise.all([
    import('./ack-inbox.js'), import('./browser.js'), import('./frame-writer.js'), import('./input.js'), import('./loader.js'), import('./request.js'), import('./run.js'), import('./run-sink.js'),
  ]));
  const output = openFrameOutput(await frameFd());
  lifeline.watchOutput(output);
  const writer = new FrameWriter(output);
  const inbox = new AckInbox(log);
  // The loader thread starts while we wait: the runtime sends the request only after the claim.
  prepareLoader(scriptPath);
  warmHttp(scriptPath);
  let request: RunRequest;
  try {
    request = parseRunRequest(await readRequestLine(process.stdin, inbox));
  } catch (err) {
    log(`invalid run request: ${messageOf(err)}`);
    return 3;
  }
  // Run slots (SPEC §10): asked, we say hello first and then serve every run_request on stdin.
  const slots = request.slots === true;
  const runTimers = slots ? await import('./run-timers.js') : undefined;
  const timers = runTimers ? new runTimers.RunTimers() : undefined;
  timers?.install();
  if (slots) await writer.write({ type: 'hello', slots: true }).catch((err: unknown) => log(`could not write hello: ${messageOf(err)}`));

  /**
   * The browser source of a request. The invocation's shared browser (SPEC §10, `shared_browser`) is
   * the runtime's: its source is kept across a slot's runs (one connection, a context prepared ahead).
   * A browser this process launches (`--no-browser-reuse`, a one-run process) or connects to on its
   * own (`browser_ws_endpoint`) serves one run: a slot closes it when the run ends.
   */
  let shared: BrowserSource | undefined;
  const askRuntime = async (): Promise<string> => {
    await writer.write({ type: 'browser_request' });
    const answer = await inbox.nextBrowserEndpoint();
    if (answer.ws_endpoint === undefined) throw new Error(answer.error ?? 'the runtime sent no browser endpoint');
    return answer.ws_endpoint;
  };
  const browsersFor = (req: RunRequest): BrowserSource => {
    if (req.shared_browser === true && req.browser_ws_endpoint === undefined) {
      shared ??= createSharedBrowserSource(askRuntime);
      return shared;
    }
    held.browsers = createBrowserSource({
      executablePath: chromiumPath(req.chromium_path, process.env),
      ...(req.browser_ws_endpoint ? { browserWSEndpoint: req.browser_ws_endpoint } : {}),
      ...(req.proxy ? { launchProxy: req.proxy } : {}),
    });
    return held.browsers;
  };
  /** After a run: its own browser closed (a slot's next run gets a fresh one). */
  const closeRunBrowser = async (): Promise<void> => {
    const b = held.browsers;
    held.browsers = undefined;
    await b?.close();
  };
  /**
   * The last run's context on the shared browser, still closing: its run_result does not wait for
   * Chromium to tear it down, but the slot's next run and the process's end do. Never rejects.
   */
  let contextClosing: Promise<void> | undefined;
  const contextClosed = async (): Promise<void> => {
    const c = contextClosing;
    contextClosing = undefined;
    await c;
  };

  /**
   * A slot's direct connection pool (SPEC §10): its runs' requests without a proxy reuse its
   * keep-alive connections instead of each opening a pool and a connection of its own. Cookies
   * stay per run (the client's jar); a run with a proxy has its own dispatcher, as before. Its
   * dispatches are the process's work, not a run's: the connections' timers and immediates
   * (undici resumes a connection for its next request on an immediate) are never swept
   * between runs, which would strand the connection.
   */
  let directPool: Promise<Dispatcher> | undefined;
  const openDirectPool = async (): Promise<Dispatcher> => {
    const agent = new (await (await import('../sdk/undici-parts.js')).undiciParts()).Agent();
    const dispatch = agent.dispatch.bind(agent);
    agent.dispatch = (options, handler) => runTimers!.asProcessWork(() => dispatch(options, handler));
    return agent;
  };
  const sharedDirectPool = runTimers ? (): Promise<Dispatcher> => (directPool ??= openDirectPool()) : undefined;

  let resultWritten = false;
  const writeResult = async (outcome: RunOutcome, req: RunRequest): Promise<void> => {
    if (resultWritten) return;
    resultWritten = true;
    if (outcome.status === 'crash') log(`executor crash: ${outcome.message ?? 'unknown'}`);
    await writer.write(runResultFrame(outcome, req.proxy)).catch((err: unknown) => log(`could not write run_result: ${messageOf(err)}`));
  };
  const finish = async (): Promise<void> => {
    await Promise.all([closeRunBrowser(), contextClosed().then(() => shared?.close()), directPool?.then((d) => d.destroy()).catch(() => undefined)]);
    await writer.end();
  };

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
        held.browsers?.killNow();
        die();
      }, SIGNAL_EXIT_DEADLINE_MS);
      void (held.browsers?.close() ?? Promise.resolve()).finally(die);
    });
  }
  // A stray rejection in a script (an emit nobody awaited) must not kill the run.
  process.on('unhandledRejection', (reason) => log(`unhandled rejection (ignored): ${messageOf(reason)}`));
  process.on('uncaughtException', (err) => {
    log(`uncaught exception: ${redactUrlsIn(err.stack ?? err.message)}`);
    // Between a slot's runs there is no run to report it for: the slot just ends.
    const reported = idle ? Promise.resolve() : writeResult({ status: 'crash', message: `uncaught exception: ${err.message}` }, request);
    void reported.then(finish).finally(() => process.exit(2));
  });

  for (let n = 0; ; n++) {
    let outcome: RunOutcome;
    let script: LoadedScript | undefined;
    try {
      // A slot's later runs load their script afresh, as if each had its own process.
      script = await loadScript(n === 0 ? scriptPath : (request.script ?? scriptPath), n === 0 ? {} : { fresh: n });
    } catch (err) {
      // One line: writeResult logs the crash message, which names the script and what to fix.
      outcome = { status: 'crash', message: `cannot load script: ${messageOf(err)}`, error_type: 'invalid_input' };
    }
    if (script) {
      try {
        const browsers = browsersFor(request);
        outcome = await executeRun(request, {
          script, browsers, sink: new RunSink(writer, inbox), log,
          ...(sharedDirectPool ? { directPool: sharedDirectPool } : {}),
          ...(browsers === shared ? { deferBrowserClose: (closing: Promise<void>) => { contextClosing = closing.catch(() => undefined); } } : {}),
        });
      } catch (err) {
        outcome = { status: 'crash', message: `executor failure: ${messageOf(err)}` };
      }
    }
    if (slots) await closeRunBrowser();
    await writeResult(outcome!, request);
    idle = true;
    // A leftover timer of this run never fires in the next one.
    timers?.sweep();
    // One run per process without slots; a crash may have left the process (or its browser) unwell: the slot ends.
    if (!slots || outcome!.status === 'crash') {
      await finish();
      return script ? exitCodeFor(outcome!.status) : 3;
    }
    // The next run (or the end) waits for this run's context to be closed, which overlaps the runtime's work on its result.
    const [raw] = await Promise.all([inbox.nextRunRequest(), contextClosed()]);
    if (raw === undefined) {
      // Stdin ended between runs: the invocation is over.
      await finish();
      return 0;
    }
    timers?.sweep();
    idle = false;
    resultWritten = false;
    try {
      request = parseRunRequestValue(raw);
    } catch (err) {
      await writeResult({ status: 'crash', message: `invalid run request: ${messageOf(err)}`, error_type: 'invalid_input' }, { run_id: 'unknown', attempt: 1, job: null });
      await finish();
      return 3;
    }
  }
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
