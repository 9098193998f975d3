/**
 * Spawns the compiled executor (`node dist/executor/main.js`) the way the
 * runtime does, feeds it a run request line, and decodes its stdout frames.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeFrame, FrameDecoder, toExecutorFrame, type AnyEventEnvelope, type ExecutorFrame, type FileWriteAckFrame, type RunResultFrame } from '../../src/protocol/index.js';
import { launchBrowser, type BrowserHandle } from '../../src/executor/browser.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const EXECUTOR = join(ROOT, 'dist/executor/main.js');
export const CHROMIUM = process.env.QUARRY_CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Absolute path of a fixture script. */
export function fixture(name: string): string {
  return join(ROOT, 'test/fixtures/scripts', name);
}

export interface ExecutorRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  frames: ExecutorFrame[];
  stderr: string;
  /** Set when stdout did not decode as frames (it never should). */
  decodeError?: Error;
}

export interface SpawnOptions {
  args?: string[];
  env?: Record<string, string | undefined>;
  /** Called for every frame as it arrives; may write acks through `reply`. */
  onFrame?: (frame: ExecutorFrame, reply: (ack: FileWriteAckFrame) => void) => void;
  /** Keep stdin open after the request line (for acks). Default: closed unless onFrame is given. */
  keepStdinOpen?: boolean;
  timeoutMs?: number;
}

export interface SpawnedExecutor {
  child: ChildProcess;
  done: Promise<ExecutorRun>;
  /** Progress lines etc.: stderr so far. */
  stderr(): string;
  frames: ExecutorFrame[];
}

/** Starts the executor; `request` is sent as one line (a string is sent verbatim). */
export function startExecutor(request: unknown, opts: SpawnOptions = {}): SpawnedExecutor {
  const args = opts.args ?? [];
  const child = spawn(process.execPath, [EXECUTOR, ...args], {
    cwd: ROOT,
    env: { ...process.env, QUARRY_CHROMIUM_PATH: CHROMIUM, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const frames: ExecutorFrame[] = [];
  const decoder = new FrameDecoder();
  let stderr = '';
  let decodeError: Error | undefined;
  const reply = (ack: FileWriteAckFrame): void => {
    if (child.stdin?.writable) child.stdin.write(encodeFrame(ack));
  };
  child.stdout!.on('data', (chunk: Buffer) => {
    if (decodeError) return;
    try {
      for (const raw of decoder.push(chunk)) {
        const frame = toExecutorFrame(raw);
        frames.push(frame);
        opts.onFrame?.(frame, reply);
      }
    } catch (err) {
      decodeError = err as Error;
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (stderr += s));
  child.stdin!.on('error', () => {});
  if (request !== undefined) child.stdin!.write(typeof request === 'string' ? request : `${JSON.stringify(request)}\n`);
  if (!(opts.keepStdinOpen ?? opts.onFrame !== undefined)) child.stdin!.end();
  const done = new Promise<ExecutorRun>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`executor timed out; stderr:\n${stderr}`));
    }, opts.timeoutMs ?? 45_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (!decodeError) {
        try {
          decoder.end();
        } catch (err) {
          decodeError = err as Error;
        }
      }
      child.stdin?.destroy();
      resolve({ code, signal, frames, stderr, ...(decodeError ? { decodeError } : {}) });
    });
  });
  return { child, done, frames, stderr: () => stderr };
}

/** Runs the executor on `script` with `request` and waits for it to exit. */
export function runExecutor(script: string, request: unknown, opts: SpawnOptions = {}): Promise<ExecutorRun> {
  return startExecutor(request, { ...opts, args: [...(opts.args ?? []), script] }).done;
}

export const events = (frames: ExecutorFrame[]): AnyEventEnvelope[] =>
  frames.filter((f): f is AnyEventEnvelope => f.type !== 'artifact_chunk' && f.type !== 'file_write' && f.type !== 'run_result');

export const runResult = (frames: ExecutorFrame[]): RunResultFrame | undefined => frames.find((f): f is RunResultFrame => f.type === 'run_result');

/** A browser shared by the tests of one file; runs reach it through `browser_ws_endpoint`. */
export async function sharedBrowser(): Promise<{ handle: BrowserHandle; wsEndpoint: string }> {
  const handle = await launchBrowser({ executablePath: CHROMIUM, shareable: true });
  return { handle, wsEndpoint: handle.browser.wsEndpoint() };
}

/** A temporary folder, removed by the returned function. */
export function tempDir(prefix = 'quarry-exec-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** VmRSS of a process in KiB, from /proc. */
export async function rssKiB(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}
