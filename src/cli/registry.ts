/**
 * The command table: words, one-line help, and a lazy loader per command.
 */
import type { Readable } from 'node:stream';
import type { CliIO } from './io.js';

export interface CommandEntry {
  words: readonly string[];
  summary: string;
  run(argv: readonly string[], io: CliIO, stdin: Readable): Promise<number>;
}

export const COMMANDS: readonly CommandEntry[] = [
  {
    words: ['run'],
    summary: 'Run a script; store what it emits in a run-fenced partition',
    run: async (argv, io) => (await import('./commands/run.js')).runCommand(argv, io),
  },
  {
    words: ['debug', 'ipc'],
    summary: 'Describe the executor pipe; --decode a captured frame stream',
    run: async (argv, io, stdin) => (await import('./commands/debug-ipc.js')).debugIpcCommand(argv, io, stdin),
  },
  {
    words: ['version'],
    summary: 'Print the quarry and contract versions',
    run: async (argv, io) => (await import('./commands/version.js')).versionCommand(argv, io),
  },
];

/** Longest match of command words at the start of argv. */
export function findCommand(argv: readonly string[]): { command: CommandEntry; rest: string[] } | undefined {
  let best: CommandEntry | undefined;
  for (const c of COMMANDS) {
    if (c.words.every((w, i) => argv[i] === w) && (!best || c.words.length > best.words.length)) best = c;
  }
  return best ? { command: best, rest: argv.slice(best.words.length) } : undefined;
}

export function topLevelHelp(): string {
  const rows = COMMANDS.map((c) => `  ${c.words.join(' ').padEnd(22)} ${c.summary}`);
  return `Usage: quarry <command> [flags]

Browser-driven extraction whose output is safe to build pipelines on.

Commands:
${rows.join('\n')}

Run "quarry <command> --help" for the flags of a command.
Exit codes: 0 success, 1 script error, 2 executor crash or usage error,
3 policy failure or version mismatch, 130/143 interrupted, 70 internal error.
`;
}
