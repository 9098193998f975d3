/**
 * The `quarry` program: what `cli/main.ts` (the binary's entry) loads once it
 * started a run's executor. The only module that reads argv for the commands,
 * installs signal handlers and calls `process.exit`. Commands load lazily so
 * `--help` and `version` never pay for the browser, S3 or database clients.
 * Built twice: as tsc's ES module and, by scripts/bundle.mjs, as one CommonJS
 * file (`dist/cli/program.cjs`) that the entry loads when it is there.
 */
import type { CliIO } from './io.js';
import { COMMANDS, findCommand, topLevelHelp } from './registry.js';
import { CommandFailure, UsageError } from './flags.js';
import { redactUrlsIn } from '../protocol/redact.js';
import { armKillPoint, KILL_POINT_ENV, parseKillPoint } from '../runtime/kill-point.js';
import { disposeSpeculativeExecutor } from '../runtime/executor-process.js';

/** Exit code for a bug in quarry itself (not the script, not the input). */
const EXIT_INTERNAL = 70;

// The AWS SDK warns on every start under Node 20 about its own support
// schedule; a user cannot act on it and it would break one-line errors.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Commands that, interrupted, flush and finalize what they started before exiting 130/143. */
const FINALIZE_ON_SIGNAL = new Set(['run', 'retry', 'export', 'worker']);

async function main(argv: string[]): Promise<number> {
  const controller = new AbortController();
  let signalName: 'SIGINT' | 'SIGTERM' | undefined;
  const running: { command?: string } = {};
  const onSignal = (sig: 'SIGINT' | 'SIGTERM') => () => {
    const code = sig === 'SIGINT' ? 130 : 143;
    // A second signal (Ctrl-C twice) exits at once: a run's executor and browser follow their
    // runtime on their own (SPEC §5), and a run left without a manifest is never read.
    if (signalName) {
      process.stderr.write(`quarry: ${sig} again: exiting now\n`);
      process.exit(code);
    }
    signalName = sig;
    controller.abort(sig);
    // Commands that only read (or, like validate, write in transactions that roll back) have
    // nothing to finalize: they stop at once. run, retry and export finalize on the abort.
    if (running.command !== undefined && !FINALIZE_ON_SIGNAL.has(running.command)) {
      process.stderr.write(`quarry ${running.command}: interrupted by ${sig}\n`);
      process.exit(code);
    }
  };
  // A reader that goes away (`quarry read | head`) is not an error: stop quietly.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  process.on('SIGINT', onSignal('SIGINT'));
  process.on('SIGTERM', onSignal('SIGTERM'));

  const io: CliIO = {
    stdout: (t) => void process.stdout.write(t),
    stdoutWrite: (t) => (process.stdout.write(t) ? Promise.resolve() : new Promise((r) => process.stdout.once('drain', () => r()))),
    stderr: (t) => void process.stderr.write(t),
    env: process.env,
    cwd: process.cwd(),
    stdoutIsTTY: process.stdout.isTTY === true,
    stderrIsTTY: process.stderr.isTTY === true,
    signal: controller.signal,
  };

  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.stdout(topLevelHelp());
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version' || argv[0] === '-v') argv = ['version'];

  const found = findCommand(argv);
  if (!found) {
    const known = COMMANDS.map((c) => c.words.join(' ')).join(', ');
    io.stderr(`quarry: unknown command ${JSON.stringify(argv.filter((a) => !a.startsWith('-')).slice(0, 2).join(' '))}; commands: ${known}. See quarry --help\n`);
    return 2;
  }
  const name = found.command.words.join(' ');
  running.command = name;
  // Test-only (docs/contracts/run.md, "Test-only kill points"): the runtime SIGKILLs itself at a named point.
  const killPoint = process.env[KILL_POINT_ENV];
  if (killPoint !== undefined && killPoint !== '') {
    try {
      armKillPoint(parseKillPoint(killPoint));
    } catch (err) {
      io.stderr(`quarry ${name}: ${(err as Error).message}\n`);
      return 2;
    }
  }
  try {
    return await found.command.run(found.rest, io, process.stdin);
  } catch (err) {
    // Messages may quote what the user typed (a job, a URL): no credentials in them survive.
    if (err instanceof UsageError) {
      io.stderr(`quarry ${name}: ${redactUrlsIn(err.message)}\n`);
      return 2;
    }
    if (err instanceof CommandFailure) {
      io.stderr(`quarry ${name}: ${redactUrlsIn(err.message)}\n`);
      return err.exitCode;
    }
    io.stderr(`quarry ${name}: internal error: ${redactUrlsIn((err as Error).stack ?? String(err))}\n`);
    return EXIT_INTERNAL;
  }
}

// An executor the entry started for a run that did not take it (a usage error, a refused run) ends with us.
main(process.argv.slice(2))
  .finally(disposeSpeculativeExecutor)
  .then(
    (code) => {
      process.exitCode = code;
      // Let stdout drain, then leave even if a stray handle lingers.
      setTimeout(() => process.exit(code), 50).unref();
    },
    (err: unknown) => {
      process.stderr.write(`quarry: ${String(err)}\n`);
      process.exit(EXIT_INTERNAL);
    },
  );
