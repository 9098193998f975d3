/**
 * The invocation's one Chromium (SPEC §10 browser reuse): owned by the
 * runtime, never by a run slot, launched on the first run that asks for a
 * browser (a no-browser crawl never starts one) and relaunched on the next ask
 * after it died.
 *
 * Chromium is spawned directly (no puppeteer here) with both
 * `--remote-debugging-pipe` and `--remote-debugging-port=0`: slots connect to
 * the WebSocket endpoint it prints on stderr, while the runtime only holds the
 * pipe (fds 3 and 4) open. When the runtime dies, even by SIGKILL, the kernel
 * closes the pipe and Chromium exits on its end of file: nothing outlives the
 * invocation. Its profile folder is owner-tagged with the runtime's pid
 * (owner-tag.ts), so a later run sweeps one a SIGKILL left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { CHROMIUM_FLAGS } from './chromium.js';
import { CHROMIUM_PROFILE_PREFIX, ownerTag } from './owner-tag.js';
import { Reaper } from './reaper.js';

/** How long Chromium gets to print its endpoint. */
const START_TIMEOUT_MS = 60_000;
/** How long a closed browser gets to exit before SIGKILL. */
const CLOSE_GRACE_MS = 3_000;
/** Stderr kept to explain a browser that would not start. */
const STDERR_KEEP_BYTES = 4096;

/** Set in the environment of each Chromium the runtime launches (its profile folder): its processes carry it. */
const BROWSER_MARKER_ENV = 'QUARRY_BROWSER_PROFILE';

/**
 * Chromium's crash handlers (`chrome_crashpad_handler`) of the browser whose
 * marker is `profile`. Chromium starts them in sessions of their own, outside
 * its process group, and no flag turns them off without breaking navigation
 * (`--disable-crashpad-for-testing` does); they exit only some time after
 * their browser, which on a loaded machine is more than the second SPEC §5
 * allows. Found by name, then by the marker in their environment.
 */
export function crashHandlersOf(profile: string): number[] {
  const needle = `${BROWSER_MARKER_ENV}=${profile}`;
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (!readFileSync(`/proc/${name}/comm`, 'utf8').startsWith('chrome_crashpad')) continue;
      if (readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(needle)) out.push(Number(name));
    } catch {
      // Gone while we looked, or not ours to read.
    }
  }
  return out;
}

/** The browser a run was given: where to connect, and which launch it is. */
export interface SharedBrowserLease {
  readonly wsEndpoint: string;
  /** Counts launches: a run compares it with {@link SharedBrowser.diedSince} after it ended. */
  readonly generation: number;
}

/** Deletes a profile whose helpers may still be writing into it; a later run's sweep takes what stays. Never rejects. */
const removeProfile = (profile: string): Promise<void> => rm(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }).catch(() => undefined);

interface Launched {
  readonly child: ChildProcess;
  /** Kills Chromium's process group when we die, or once Chromium exited (its helpers). */
  readonly reaper: Reaper;
  readonly profile: string;
  readonly generation: number;
  ready: Promise<SharedBrowserLease>;
  exited: boolean;
}

export class SharedBrowser {
  readonly #executablePath: string;
  readonly #extraArgs: readonly string[];
  #current: Launched | undefined;
  #generation = 0;
  /** Generations whose Chromium exited (crashed or killed) while the invocation went on. */
  readonly #died = new Set<number>();
  #closed = false;
  /** Called when a launched Chromium exits without being closed (for the log). */
  onDied?: (why: string) => void;

  constructor(opts: { executablePath: string; extraArgs?: readonly string[] }) {
    this.#executablePath = opts.executablePath;
    this.#extraArgs = opts.extraArgs ?? [];
  }

  /** Launches made so far (0: no run asked for a browser). */
  get launches(): number {
    return this.#generation;
  }

  /** The Chromium main process id, while one runs. */
  get pid(): number | undefined {
    return this.#current && !this.#current.exited ? this.#current.child.pid : undefined;
  }

  /**
   * The running browser, launched (or relaunched after it died) when needed.
   * @throws Error naming the executable and Chromium's last words when it cannot start.
   */
  async lease(): Promise<SharedBrowserLease> {
    if (this.#closed) throw new Error('the invocation is ending: no browser');
    if (!this.#current || this.#current.exited) this.#current = this.#launch();
    return this.#current.ready;
  }

  /** Whether the browser of `generation` exited before {@link close}. */
  diedSince(generation: number): boolean {
    return this.#died.has(generation);
  }

  #launch(): Launched {
    const generation = ++this.#generation;
    const profile = mkdtempSync(join(tmpdir(), `${CHROMIUM_PROFILE_PREFIX}${ownerTag()}-`));
    // No crash reporter: its handlers would be more processes to outlive a killed runtime.
    const args = [...CHROMIUM_FLAGS, ...this.#extraArgs, '--disable-breakpad', '--disable-crash-reporter', '--remote-debugging-pipe', '--remote-debugging-port=0', `--user-data-dir=${profile}`, 'about:blank'];
    // fds 3 and 4 are the DevTools pipe: never written, held so Chromium exits when this process does.
    // Its own process group, so that its helpers can be killed with it at once.
    // The marker finds Chromium's crash handlers, which leave its process group (see crashHandlersOf).
    const child = spawn(this.#executablePath, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true, env: { ...process.env, [BROWSER_MARKER_ENV]: profile } });
    for (const fd of [3, 4]) (child.stdio[fd] as Readable | null)?.on('error', () => undefined);
    // Chromium's helpers notice their browser's end only slowly on a loaded machine: the reaper
    // SIGKILLs the whole group as soon as we die, or once Chromium exited.
    const reaper = new Reaper();
    if (child.pid !== undefined) reaper.add({ group: child.pid });
    const launched: Launched = { child, reaper, profile, generation, exited: false, ready: Promise.resolve(undefined as never) };
    let stderr = '';
    launched.ready = new Promise<SharedBrowserLease>((resolve, reject) => {
      const timer = setTimeout(() => fail(`no DevTools endpoint after ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS);
      const fail = (why: string): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        const last = stderr.trim().split('\n').filter((l) => l.trim() !== '').slice(-1)[0];
        reject(new Error(`cannot start Chromium at ${this.#executablePath}: ${why}${last ? ` (${last.trim()})` : ''}`));
      };
      child.once('error', (err) => fail(err.message));
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEEP_BYTES);
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
        if (m) {
          clearTimeout(timer);
          // Started before the endpoint is printed: from now on the reaper takes them too.
          for (const pid of crashHandlersOf(profile)) reaper.add({ pid });
          resolve({ wsEndpoint: m[1]!, generation });
          // Keep draining stderr (a full pipe would stall Chromium), keeping nothing.
          stderr = '';
        }
      });
      child.once('exit', (code, signal) => {
        launched.exited = true;
        fail(`it exited (${signal ?? `code ${code}`}) before it was ready`);
        // Its helpers go with it.
        reaper.end();
        void removeProfile(profile);
        if (!this.#closed) {
          this.#died.add(generation);
          this.onDied?.(`Chromium (pid ${child.pid}) exited with ${signal ?? `code ${code}`}: runs in flight on it fail; the next run relaunches it`);
        }
      });
    });
    // A browser that never starts is reported to whoever asked; nobody else waits on it.
    launched.ready.catch(() => undefined);
    return launched;
  }

  /** Stops the browser (SIGTERM, SIGKILL after a grace period) and deletes its profile. Never rejects. */
  async close(): Promise<void> {
    this.#closed = true;
    const cur = this.#current;
    if (!cur || cur.exited) return;
    const gone = new Promise<void>((resolve) => cur.child.once('exit', () => resolve()));
    cur.child.kill('SIGTERM');
    const kill = setTimeout(() => cur.reaper.end(), CLOSE_GRACE_MS);
    await gone;
    clearTimeout(kill);
    cur.reaper.end();
    await removeProfile(cur.profile);
  }
}
