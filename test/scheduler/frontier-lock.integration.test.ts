/**
 * The frontier's OS lock (SPEC §10): held by a live invocation it refuses at
 * once, naming the holder's pid; the kernel frees it when the holder dies, so
 * the next invocation acquires it right after a SIGKILL, waiting on nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { FrontierLock, FrontierLockedError, pidPathOf } from '../../src/scheduler/frontier-lock.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const HOLDER = fileURLToPath(new URL('./fixtures/hold-lock.mjs', import.meta.url));

let dir: TempDir | undefined;
let child: ChildProcess | undefined;
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  await dir?.remove();
});

function holdInChild(lockPath: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [HOLDER, lockPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    c.once('error', reject);
    c.once('exit', (code) => reject(new Error(`lock holder exited early (${code})`)));
    c.stdout.once('data', () => resolve(c));
  });
}

function refusal(lockPath: string): FrontierLockedError {
  try {
    FrontierLock.acquire(lockPath, process.pid).release();
  } catch (err) {
    if (err instanceof FrontierLockedError) return err;
    throw err;
  }
  throw new Error('the lock was acquired while another process held it');
}

describe('frontier lock', () => {
  it('refuses at once while a live process holds it, naming its pid; is free right after that process is SIGKILLed', async () => {
    dir = await makeTempDir('lock');
    const lockPath = join(dir.path, 'trees', 'T.lock');
    child = await holdInChild(lockPath);
    const err = refusal(lockPath);
    expect(err.pid).toBe(child.pid);
    expect(err.message).toContain(`in use by process ${child.pid}`);
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    // No waiting, no age check: the kernel released the dead holder's lock.
    const lock = FrontierLock.acquire(lockPath, process.pid);
    expect(refusal(lockPath).pid).toBe(process.pid);
    lock.release();
  });

  it('is exclusive within one process too, and free again after release, which removes the pid file', async () => {
    dir = await makeTempDir('lock');
    const lockPath = join(dir.path, 'T.lock');
    const lock = FrontierLock.acquire(lockPath, process.pid);
    expect(existsSync(pidPathOf(lockPath))).toBe(true);
    expect(refusal(lockPath).pid).toBe(process.pid);
    lock.release();
    lock.release();
    expect(existsSync(pidPathOf(lockPath))).toBe(false);
    FrontierLock.acquire(lockPath, process.pid).release();
  });
});
