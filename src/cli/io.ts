/**
 * What a command may touch of the outside world, handed in by `program.ts` (the
 * only file that reads argv and env or exits), so commands stay testable.
 */
export interface CliIO {
  stdout(text: string): void;
  /** Writes to stdout and resolves once the stream can take more: for long outputs (`quarry read`). */
  stdoutWrite(text: string): Promise<void>;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** stdout is a terminal (table output, live progress). */
  stdoutIsTTY: boolean;
  stderrIsTTY: boolean;
  /** Aborted with reason 'SIGINT' | 'SIGTERM' when the process is asked to stop. */
  signal: AbortSignal;
}
