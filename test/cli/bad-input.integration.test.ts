/**
 * docs/bad-input.md is the test: every row of its table is parsed here and
 * run, so the doc cannot drift from what quarry does. Commands run through
 * `sh` as an unprivileged user (root ignores file permissions) in a fresh
 * folder each; `in-process:` rows name a check below (a full disk cannot be
 * made from a shell).
 */
import { execFile } from 'node:child_process';
import { chmod, chown, copyFile, cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { CommandFailure } from '../../src/cli/flags.js';
import { openLedger } from '../../src/ledger/ledger.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { CLI, quarry, REPO_ROOT } from '../_harness/cli.js';
import { FaultyBackend } from '../_harness/faulty-backend.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const exec = promisify(execFile);

interface Row {
  id: string;
  input: string;
  command: string;
  says: string;
  exit: number;
}

/** The table of docs/bad-input.md: `| # | area | bad input | command | says | exit |`. */
function parseTable(doc: string): Row[] {
  const cell = (c: string) => c.trim().replace(/^`|`$/g, '').replace(/\\\|/g, '|');
  return doc
    .split('\n')
    .filter((l) => /^\| \d+ \|/.test(l))
    .map((l) => {
      const cells = l.slice(1, -1).split(/(?<!\\)\|/).map(cell);
      return { id: cells[0]!, input: `${cells[1]}: ${cells[2]}`, command: cells[3]!, says: cells[4]!, exit: Number(cells[5]) };
    });
}

const rows = parseTable(readFileSync(join(REPO_ROOT, 'docs/bad-input.md'), 'utf8'));
const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

let tmp: TempDir;
const env: Record<string, string> = {};

/** Hands a path to the unprivileged user the rows run as (a no-op when the test is not root). */
async function giveAway(path: string): Promise<void> {
  if (!asRoot) return;
  await chown(path, NOBODY, NOBODY);
  const st = await readdir(path, { withFileTypes: true }).catch(() => undefined);
  for (const e of st ?? []) await giveAway(join(path, e.name));
}

beforeAll(async () => {
  tmp = await makeTempDir('bad-input');
  await chmod(tmp.path, 0o755);
  const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
  const script = join(REPO_ROOT, 'examples/books.ts');
  Object.assign(env, {
    SCRIPT: script,
    EXEC: executor,
    NODEFAULT: join(REPO_ROOT, 'test/fixtures/run-scripts/no-default.ts'),
    LOCKED: join(tmp.path, 'locked.ts'),
    TEXT: join(tmp.path, 'notes.txt'),
    RO: join(tmp.path, 'read-only'),
    RO_CLAIM: join(tmp.path, 'read-only-claim'),
    DATA: join(tmp.path, 'data'),
    BROKEN: join(tmp.path, 'broken'),
  });
  await copyFile(script, env.LOCKED!);
  await chmod(env.LOCKED!, 0o000);
  await writeFile(env.TEXT!, 'not a script\n');
  await mkdir(env.RO!, { mode: 0o555 });
  await chmod(env.RO!, 0o555);
  await mkdir(join(env.RO_CLAIM!, '.quarry-tmp'), { recursive: true });
  await chmod(join(env.RO_CLAIM!, '.quarry-tmp'), 0o777);
  await chmod(env.RO_CLAIM!, 0o555);
  for (const [day, mode] of [['2026-11-01', 'ok'], ['2026-11-02', 'seq_gap']] as const) {
    await quarry(['run', '--script', script, '--executor', executor, '--source', 'shop', '--day', day, '--run-id', `run-${day}`, '--job', JSON.stringify({ mode }), '--storage-path', env.DATA!, '--quiet']);
  }
  await cp(env.DATA!, env.BROKEN!, { recursive: true });
  await giveAway(env.DATA!);
  await giveAway(env.BROKEN!);
  const runDir = join(env.BROKEN!, 'datasets/quarry/partitions/source=shop/category=default/day=2026-11-01/run_id=run-2026-11-01');
  const records = (await readdir(runDir, { recursive: true })).filter((f) => f.endsWith('.jsonl'));
  for (const f of records) await chmod(join(runDir, f), 0o000);
}, 60_000);

afterAll(async () => {
  await chmod(env.RO_CLAIM!, 0o755).catch(() => undefined);
  await tmp.remove();
});

/** Runs one row's command through sh, as the unprivileged user, in its own empty folder. */
async function runRow(row: Row): Promise<{ code: number; stdout: string; stderr: string }> {
  const cwd = join(tmp.path, `row-${row.id}`);
  await mkdir(cwd);
  await chmod(cwd, 0o777);
  const sh = `quarry() { "${process.execPath}" "${CLI}" "$@"; }\n${row.command}`;
  const argv = asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', sh] : ['sh', '-c', sh];
  try {
    const r = await exec(argv[0]!, argv.slice(1), { cwd, env: { ...process.env, ...env, HOME: cwd }, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout: string; stderr: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout, stderr: e.stderr };
  }
}

/** `in-process:` rows: what the shell cannot produce. Each returns the exit code and the line quarry would print. */
const IN_PROCESS: Record<string, () => Promise<{ code: number; stdout: string; stderr: string }>> = {
  // The disk fills up exactly when the run's claim is written: the fs backend's own ENOSPC error.
  'claim-enospc': async () => {
    const dir = join(tmp.path, 'enospc');
    const backend = new FaultyBackend(await FsBackend.create(dir), { fault: { failAt: 1, errno: 'ENOSPC' } });
    const ledger = await openLedger(join(dir, 'ledger.sqlite'));
    const { runAndValidate } = await import('../../src/cli/commands/run-execute.js');
    const io: CliIO = { stdout: () => undefined, stdoutWrite: async () => undefined, stderr: () => undefined, env: {}, cwd: dir, stdoutIsTTY: false, stderrIsTTY: false, signal: new AbortController().signal };
    try {
      await runAndValidate({ scriptPath: env.SCRIPT!, attempt: 1, job: {}, source: 'shop', category: 'default', day: '2026-11-01', dataset: 'quarry', storage: { backend: 'fs', path: dir, s3PathStyle: false }, policy: { name: 'strict' }, dryRun: false, quiet: true, retries: 0, executorPath: env.EXEC! }, 'enospc-1', backend, ledger, io);
      return { code: 0, stdout: '', stderr: '' };
    } catch (err) {
      if (!(err instanceof CommandFailure)) throw err;
      // Nothing of the run was published.
      expect(backend.log.filter((w) => w.ok)).toEqual([]);
      return { code: err.exitCode, stdout: '', stderr: `quarry run: ${err.message}\n` };
    } finally {
      await ledger.close();
      await backend.close();
    }
  },
};

describe('docs/bad-input.md: every bad input gets its line and exit code', () => {
  it('has rows, numbered once each, and every in-process row has a check', () => {
    expect(rows.length).toBeGreaterThan(50);
    expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length);
    const named = rows.filter((r) => r.command.startsWith('in-process:')).map((r) => r.command.slice('in-process:'.length).trim());
    expect(named.sort()).toEqual(Object.keys(IN_PROCESS).sort());
  });

  for (const row of rows) {
    it.concurrent(`#${row.id} ${row.input} → exit ${row.exit}`, async () => {
      const name = row.command.startsWith('in-process:') ? row.command.slice('in-process:'.length).trim() : undefined;
      const r = name ? await IN_PROCESS[name]!() : await runRow(row);
      const out = `${r.stdout}${r.stderr}`;
      const says = row.says.replace(/\$([A-Z_]+)/g, (m, v: string) => env[v] ?? m);
      expect(out, out).toContain(says);
      expect(r.code, out).toBe(row.exit);
      expect(out).not.toMatch(/\n\s+at [^\n]+:\d+:\d+/); // no stack trace
      expect(out).not.toContain('internal error');
      expect(out).not.toContain('hunter2'); // secrets in the commands never come back
      if (row.exit === 2 && r.stdout === '') expect(r.stderr.trimEnd().split('\n'), r.stderr).toHaveLength(1);
    });
  }
});
