/**
 * `quarry run --retries N` shares one Chromium and, when it survived, one
 * executor process across its attempts (SPEC §10 run slots and browser reuse);
 * each attempt stays its own run. `--no-browser-reuse` keeps a process and a
 * browser per attempt. Chromium launches are counted by a `--chromium-path`
 * wrapper that logs each invocation before exec'ing the real binary
 * (Chromium starts its helpers from its own executable, never the wrapper).
 */
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { killTagged, newTag, taggedProcesses } from '../_harness/proc-tag.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const SCRIPT = join(REPO_ROOT, 'test/fixtures/run-scripts/browser-fails-first.mjs');

let tmp: TempDir | undefined;
const tags: string[] = [];
afterEach(async () => {
  for (const t of tags.splice(0)) killTagged(t);
  await tmp?.remove();
  tmp = undefined;
});

interface Manifest { run_id: string; attempt: number; outcome: string; parent_run_id?: string | null }

async function flakyRun(name: string, extra: string[]): Promise<{ launches: string[]; pids: string[]; manifests: Manifest[]; tag: string }> {
  tmp ??= await makeTempDir('retry-slots');
  const dir = join(tmp.path, name);
  const launchLog = join(tmp.path, `${name}-launches.log`);
  const wrapper = join(tmp.path, `${name}-chromium`);
  writeFileSync(wrapper, `#!/bin/sh\necho "$$" >> '${launchLog}'\nexec /usr/bin/chromium "$@"\n`);
  chmodSync(wrapper, 0o755);
  writeFileSync(launchLog, '');
  const pidLog = join(tmp.path, `${name}-pids.log`);
  const { tag, env } = newTag();
  tags.push(tag);
  const storage = join(dir, 'data');
  const r = await quarry(['run', '--script', SCRIPT, '--source', 'flaky', '--day', '2026-11-24', '--retries', '1', '--chromium-path', wrapper,
    '--job', JSON.stringify({ marker: join(tmp.path, `${name}-marker`), log: pidLog }), '--storage-path', storage, '--quiet', ...extra],
  { env, timeoutMs: 60_000 });
  expect(r.code, r.stderr).toBe(0);
  const day = join(storage, 'datasets/quarry/partitions/source=flaky/category=default/day=2026-11-24');
  const manifests = readdirSync(day).map((d) => JSON.parse(readFileSync(join(day, d, '_manifest.json'), 'utf8')) as Manifest).sort((a, b) => a.attempt - b.attempt);
  const lines = (f: string): string[] => readFileSync(f, 'utf8').split('\n').filter(Boolean);
  return { launches: lines(launchLog), pids: lines(pidLog), manifests, tag };
}

/** Waits until nothing carrying `tag` runs (the reapers' kills may land just after the runtime exits). */
async function nothingLeft(tag: string): Promise<string[]> {
  const end = Date.now() + 5_000;
  let left = taggedProcesses(tag);
  while (left.length > 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    left = taggedProcesses(tag);
  }
  return left;
}

describe('--retries on run slots and the shared browser (SPEC §10)', { timeout: 120_000 }, () => {
  it('the retry of a failed attempt reuses its Chromium and executor process, each attempt its own run, and nothing is left', async () => {
    const { launches, pids, manifests, tag } = await flakyRun('shared', []);
    expect(manifests.map((m) => [m.attempt, m.outcome, m.parent_run_id ?? null])).toEqual([[1, 'script_error', null], [2, 'success', manifests[0]!.run_id]]);
    expect(launches).toHaveLength(1);
    // The slot survived the script's throw: both attempts ran in the same executor process.
    expect(pids).toHaveLength(2);
    expect(pids[1]).toBe(pids[0]);
    expect(await nothingLeft(tag)).toEqual([]);
  });

  it('a runtime SIGKILLed between attempts takes its idle slot and its Chromium along', async () => {
    tmp ??= await makeTempDir('retry-slots');
    const pidLog = join(tmp.path, 'killed-pids.log');
    writeFileSync(pidLog, '');
    const { tag, env } = newTag();
    tags.push(tag);
    let seen: string[] = [];
    const r = await quarry(['run', '--script', SCRIPT, '--source', 'flaky', '--day', '2026-11-24', '--retries', '1',
      '--job', JSON.stringify({ marker: join(tmp.path, 'killed-marker'), log: pidLog }), '--storage-path', join(tmp.path, 'killed'), '--quiet'],
    { env, timeoutMs: 60_000, onSpawn: (child) => {
      // Killed once the first attempt used the browser and failed: its slot and Chromium are alive, waiting for the retry.
      const poll = setInterval(() => {
        if (readFileSync(pidLog, 'utf8') === '') return;
        clearInterval(poll);
        seen = taggedProcesses(tag);
        child.kill('SIGKILL');
      }, 20);
    } });
    expect(r.signal).toBe('SIGKILL');
    // The executor (the slot) and Chromium were running when it was killed...
    // One executor: the one `quarry run` started early became the first slot.
    expect(seen.filter((l) => /executor\/main\.js/.test(l)), seen.join('\n')).toHaveLength(1);
    expect(seen.some((l) => /chromium/.test(l)), seen.join('\n')).toBe(true);
    // ...and nothing of the invocation is left.
    expect(await nothingLeft(tag)).toEqual([]);
  });

  it('--no-browser-reuse keeps a process and a Chromium per attempt', async () => {
    const { launches, pids, manifests, tag } = await flakyRun('per-attempt', ['--no-browser-reuse']);
    expect(manifests.map((m) => [m.attempt, m.outcome])).toEqual([[1, 'script_error'], [2, 'success']]);
    expect(launches).toHaveLength(2);
    expect(new Set(pids).size).toBe(2);
    expect(await nothingLeft(tag)).toEqual([]);
  });
});
