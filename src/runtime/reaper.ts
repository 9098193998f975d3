/**
 * A tiny shell that SIGKILLs what the runtime started as soon as the runtime
 * is gone, however it died (SPEC §5: nothing outlives a SIGKILLed runtime by
 * more than a second). One per runtime process, shared by every owner: the
 * executors (`executor-process.ts`, the standalone run's too), the slot pool's
 * slots and the shared Chromium with its helpers.
 *
 * The shell reads lines from a pipe only the runtime writes: `+ T` adds a
 * kill target (a pid, or `-PGID` for a whole process group), `- T` removes
 * one (a process that exited: its pid may be reused), `! T` kills one now
 * and removes it. Between lines it looks at the runtime's /proc/<pid>/stat
 * every {@link POLL_S} s, and takes the runtime for dead once that shows a
 * SIGKILL pending, the process exiting, a zombie, no such process or another
 * process under that pid. A SIGKILLed runtime shows its pending SIGKILL the
 * instant it is sent, where the pipe closes only once the kernel tore down
 * all of the runtime's memory (up to 1.5 s on a loaded 2-core machine,
 * docs/benchmarks.md). At end of file it is gone too. Then the shell reads
 * the children of every pid target (an executor's own Chromium, a process
 * group leader: puppeteer starts it detached) and SIGKILLs targets and those
 * groups in one go, then deletes the Chromium profiles of pid targets
 * (`$TMPDIR/quarry-chromium-<pid>@…`: an executor killed this way cannot
 * delete its own). A process's own watch of its runtime (an executor's
 * lifeline, Chromium's pipe) waits for CPU on a loaded machine and cannot act
 * while Node loads modules; a shell that sleeps between looks is woken first.
 *
 * The look needs bash (`read -t`) and /proc; without them the shell is
 * /bin/sh waiting for end of file, as before.
 *
 * It ignores SIGINT, SIGTERM and SIGHUP: a terminal's Ctrl-C or a supervisor
 * signalling the process group must not take the reaper before the runtime,
 * which then could die with nobody left to clean up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CHROMIUM_PROFILE_PREFIX } from './owner-tag.js';

/** Seconds between two looks at the runtime's /proc entry (the shell's idle cost: ~0.1 ms of CPU a look). */
export const POLL_S = '0.05';

/** Handles one line in `$line` (`+ T`, `- T`, `! T`) against the target list `$l`. */
const HANDLE = [
  '  t=${line#? }',
  '  case $line in',
  '    +*) l="$l$t ";;',
  '    -*|!*)',
  '      case $line in !*) kill -KILL $t 2>/dev/null;; esac',
  '      case $l in *" $t "*) l="${l%% $t *} ${l#* $t }";; esac;;',
  '  esac',
];

/** Kills the targets, and the process group of each pid target's children (read first: they are reparented once it dies). */
const KILL_ALL = [
  'k=',
  'for t in $l; do',
  '  case $t in -*) continue;; esac',
  // One line without a newline: read says end of file, having read it.
  '  c=; IFS= read -r c < /proc/$t/task/$t/children 2>/dev/null',
  '  for c in $c; do k="$k -$c $c"; done',
  'done',
  // No `--`: dash's kill takes it for a number and then kills nothing.
  'kill -KILL $l $k 2>/dev/null',
  // A killed executor cannot delete its own Chromium's profile, named after its pid (owner-tag.ts).
  'set +f',
  'for t in $l; do',
  '  case $t in -*) continue;; esac',
  `  for d in "\${TMPDIR:-/tmp}"/${CHROMIUM_PROFILE_PREFIX}$t@*; do [ -d "$d" ] && rm -rf -- "$d"; done`,
  'done',
];

/**
 * bash: looks at the runtime (`$1`) between lines. At its death it also kills
 * the runtime's own children still listed (a SIGKILL seen pending comes before
 * the kernel reparents them): one spawned in the instant before its `+` line.
 */
const POLLING = [
  "trap '' INT TERM HUP",
  'set -f',
  'p=$1 l=" " b= w=',
  // The runtime's start time, to tell it from a later process under the same pid.
  'if IFS= read -r s < /proc/$p/stat; then set -- ${s##*) }; st=${20} w=1; fi 2>/dev/null',
  'alive() {',
  '  IFS= read -r s < /proc/$p/stat 2>/dev/null || return 1',
  '  set -- ${s##*) }',
  // state, flags (PF_EXITING 0x4), start time, the main thread's pending signals (SIGKILL 0x100).
  '  case $1 in Z|X) return 1;; esac',
  '  [ "${20}" = "$st" ] && (( !(($7 & 4) || (${29} & 256)) ))',
  '}',
  'while :; do',
  `  if [ -n "$w" ]; then IFS= read -r -t ${POLL_S} line; else IFS= read -r line; fi`,
  '  r=$?',
  // Timed out: keep a partial line, look at the runtime.
  '  if [ $r -gt 128 ]; then b=$b$line; alive && continue; break; fi',
  '  [ $r -eq 0 ] || break',
  '  line=$b$line b=',
  ...HANDLE,
  'done',
  'c=; IFS= read -r c < /proc/$p/task/$p/children 2>/dev/null',
  'for c in $c; do [ "$c" = "$$" ] || l="$l$c "; done',
  ...KILL_ALL,
].join('\n');

/** /bin/sh without bash: end of file only. */
const EOF_ONLY = [
  "trap '' INT TERM HUP",
  'set -f',
  "l=' '",
  'while IFS= read -r line; do',
  ...HANDLE,
  'done',
  ...KILL_ALL,
].join('\n');

/** A kill target: a process id, or a process group (all its members). */
export type ReapTarget = { pid: number } | { group: number };

const arg = (t: ReapTarget): string => ('pid' in t ? String(t.pid) : `-${t.group}`);

/**
 * The runtime's one shell. Kept on a global: `cli/main.ts` (which starts the
 * speculative executor) and the bundled program each have their own copy of
 * this module, and must share it.
 */
const SHELL = Symbol.for('quarry.reaperShell');
const held = globalThis as { [SHELL]?: ChildProcess };

function shell(): ChildProcess {
  let child = held[SHELL];
  if (child) return child;
  child = existsSync('/bin/bash') && existsSync(`/proc/${process.pid}/stat`)
    ? spawn('/bin/bash', ['-c', POLLING, 'quarry-reaper', String(process.pid)], { stdio: ['pipe', 'ignore', 'ignore'] })
    : spawn('/bin/sh', ['-c', EOF_ONLY], { stdio: ['pipe', 'ignore', 'ignore'] });
  child.on('error', () => undefined);
  child.stdin!.on('error', () => undefined);
  // Never keeps the runtime alive: it lives as long as we do, and acts when we die.
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  held[SHELL] = child;
  return child;
}

/** Starts the shell now, if not yet: before a process it is to cover is spawned, so no kill falls between the two. */
export function startReaper(): void {
  shell();
}

/** The shell's pid, once started (for tests and benchmarks). */
export function reaperPid(): number | undefined {
  return held[SHELL]?.pid;
}

/** One owner's targets in the runtime's reaper. */
export class Reaper {
  #ended = false;
  /** Targets added and not removed. */
  readonly #targets = new Set<string>();

  /** Kill `t` when the runtime dies (or at {@link end}). Starts the shell on first use. */
  add(t: ReapTarget): void {
    if (this.#ended) return;
    this.#targets.add(arg(t));
    shell().stdin!.write(`+ ${arg(t)}\n`);
  }

  /** `t` exited on its own: not to be killed (its id may name another process later). */
  remove(t: ReapTarget): void {
    if (!this.#targets.delete(arg(t))) return;
    held[SHELL]?.stdin!.write(`- ${arg(t)}\n`);
  }

  /** SIGKILLs every target of this owner left now; later adds are ignored. */
  end(): void {
    this.#ended = true;
    for (const t of this.#targets) held[SHELL]?.stdin!.write(`! ${t}\n`);
    this.#targets.clear();
  }
}
