/** A CliIO that records what a command prints, for in-process command tests. */
import type { CliIO } from '../../src/cli/io.js';

export interface RecordingIO extends CliIO {
  out: string;
  err: string;
}

export function recordingIO(cwd: string, opts: { tty?: boolean; env?: NodeJS.ProcessEnv } = {}): RecordingIO {
  const io: RecordingIO = {
    out: '',
    err: '',
    stdout: (t) => void (io.out += t),
    stderr: (t) => void (io.err += t),
    stdoutWrite: async (t) => void (io.out += t),
    env: opts.env ?? {},
    cwd,
    stdoutIsTTY: opts.tty ?? false,
    stderrIsTTY: opts.tty ?? false,
    signal: new AbortController().signal,
  };
  return io;
}
