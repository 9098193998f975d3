/**
 * A tiny shell that SIGKILLs what the runtime started as soon as the runtime
 * is gone, however it died (SPEC §5: nothing outlives a SIGKILLed runtime by
 * more than a second).
 *
 * The shell reads lines from a pipe only the runtime writes: `+ T` adds a
 * kill target (a pid, or `-PGID` for a whole process group), `- T` removes
 * one (a process that exited: its pid may be reused). At end of file (the
 * runtime exited or was killed: the kernel closes the pipe) it SIGKILLs every
 * target left, at once. A process's own watch of its runtime (an executor's
 * lifeline, Chromium's pipe) waits for CPU on a loaded machine, where a shell
 * blocked in read(2) is woken first and kills them all in one call.
 *
 * It ignores SIGINT, SIGTERM and SIGHUP: a terminal's Ctrl-C or a supervisor
 * signalling the process group must not take the reaper before the runtime,
 * which then could die with nobody left to clean up.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const SCRIPT = [
  "trap '' INT TERM HUP",
  "l=' '",
  'while read op t; do',
  '  case $op in',
  '    +) l="$l$t ";;',
  '    -) case $l in *" $t "*) l="${l%% $t *} ${l#* $t }";; esac;;',
  '  esac',
  'done',
  'kill -KILL -- $l 2>/dev/null',
].join('\n');

/** A kill target: a process id, or a process group (all its members). */
export type ReapTarget = { pid: number } | { group: number };

const arg = (t: ReapTarget): string => ('pid' in t ? String(t.pid) : `-${t.group}`);

export class Reaper {
  #child: ChildProcess | undefined;
  #ended = false;
  /** Targets added and not removed. */
  readonly #targets = new Set<string>();
  #releasing = false;

  /** Kill `t` when the runtime dies (or at {@link end}). Starts the shell on first use. */
  add(t: ReapTarget): void {
    if (this.#ended) return;
    this.#targets.add(arg(t));
    this.#write(`+ ${arg(t)}\n`);
  }

  /** `t` exited on its own: not to be killed (its id may name another process later). */
  remove(t: ReapTarget): void {
    if (!this.#targets.delete(arg(t))) return;
    this.#write(`- ${arg(t)}\n`);
    if (this.#releasing && this.#targets.size === 0) this.end();
  }

  /** Lets the shell exit once every target was removed (now, if none is left): nothing is killed. */
  release(): void {
    this.#releasing = true;
    if (this.#targets.size === 0) this.end();
  }

  /** The reaper's pid, once started. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** SIGKILLs every target left now and lets the shell exit. Later calls do nothing. */
  end(): void {
    this.#ended = true;
    this.#child?.stdin?.end();
  }

  #write(line: string): void {
    if (this.#ended) return;
    if (!this.#child) {
      const child = spawn('/bin/sh', ['-c', SCRIPT], { stdio: ['pipe', 'ignore', 'ignore'] });
      child.on('error', () => undefined);
      child.stdin!.on('error', () => undefined);
      // Never keeps the runtime alive: it exits when we close its stdin, or with us.
      child.unref();
      (child.stdin as unknown as { unref?: () => void }).unref?.();
      this.#child = child;
    }
    this.#child.stdin!.write(line);
  }
}
