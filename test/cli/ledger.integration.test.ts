import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest, type RunManifest } from '../../src/storage/manifest.js';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { createTestDatabase, type TestDatabase } from '../_harness/postgres.js';
import { deleteObject, flipByte, truncateManifest } from '../_harness/run-fixtures.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

// A stand-in executor keeps these tests about storage and the ledger, not the browser.
const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');
const PART = 'datasets/quarry/partitions/source=shop/category=default/day=2026-11-20';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('ledger-cli');
});
afterAll(async () => {
  await tmp.remove();
});

interface Ctx {
  storage: string;
  ledger: string[];
}

const runArgs = (c: Ctx, runId: string, mode: 'ok' | 'seq_gap' | 'hang', extra: string[] = []) => [
  'run', '--script', script, '--executor', executor, '--source', 'shop', '--day', '2026-11-20', '--run-id', runId,
  '--job', JSON.stringify({ mode }), '--storage-path', c.storage, '--quiet', ...c.ledger, ...extra,
];

async function manifests(storage: string): Promise<RunManifest[]> {
  const dir = join(storage, PART);
  const out: RunManifest[] = [];
  for (const d of await readdir(dir)) {
    try {
      out.push(parseManifest(await readFile(join(dir, d, '_manifest.json'))));
    } catch {
      // unfinalized
    }
  }
  return out;
}

async function state(c: Ctx): Promise<Array<Record<string, unknown>>> {
  const r = await quarry(['state', 'inspect', '--storage-path', c.storage, ...c.ledger, '--format', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

async function readItems(c: Ctx): Promise<Array<Record<string, unknown>>> {
  const r = await quarry(['read', '--storage-path', c.storage, ...c.ledger, '--type', 'item']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function treeHash(dir: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (d: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else h.update(p).update(await readFile(p));
    }
  };
  await walk(dir);
  return h.digest('hex');
}

function parallelSafety(name: string, ledgerFor: (storage: string) => Promise<string[]>) {
  it(`${name}: 8 concurrent runs of one partition, some failing, converge on exactly one authoritative run`, async () => {
    const c: Ctx = { storage: join(tmp.path, `par-${name}`), ledger: [] };
    c.ledger = await ledgerFor(c.storage);
    const modes = ['ok', 'seq_gap', 'ok', 'ok', 'seq_gap', 'ok', 'seq_gap', 'ok'] as const;
    const results = await Promise.all(modes.map((m, i) => quarry(runArgs(c, `par-${i}`, m))));
    expect(results.map((r) => r.code)).toEqual(modes.map((m) => (m === 'ok' ? 0 : 2)));

    const ms = await manifests(c.storage);
    expect(ms).toHaveLength(8);
    const best = ms.filter((m) => m.outcome === 'success').sort((a, b) => (a.finalized_at === b.finalized_at ? (a.run_id < b.run_id ? -1 : 1) : a.finalized_at < b.finalized_at ? -1 : 1)).pop()!;
    const rows = await state(c);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'success', current_run_id: best.run_id, attempts: 8 });

    // Every run is in the history and every partition is intact.
    for (let i = 0; i < 8; i++) {
      const v = await quarry(['validate', '--run', `par-${i}`, '--storage-path', c.storage, ...c.ledger, '--format', 'json']);
      const [row] = JSON.parse(v.stdout) as Array<Record<string, unknown>>;
      expect(row!.recorded_now).toBe(false);
      expect(row!.note).toMatch(modes[i] === 'ok' ? /already recorded as valid; re-checked now: still valid/ : /already recorded as invalid/);
    }
    const items = await readItems(c);
    expect(items.every((r) => r.run_id === best.run_id)).toBe(true);
  });
}

describe('parallel safety', () => {
  parallelSafety('sqlite', async () => []);
  let db: TestDatabase | undefined;
  afterAll(async () => {
    await db?.drop();
  });
  parallelSafety('postgres', async () => {
    db = await createTestDatabase('quarry_cli');
    return ['--ledger', db.url];
  });
});

describe('reprocessing and failures', () => {
  it('a new successful run becomes authoritative, the old run is untouched, read returns only the new records; a failed reprocess changes nothing', async () => {
    const c: Ctx = { storage: join(tmp.path, 'reprocess'), ledger: [] };
    expect((await quarry(runArgs(c, 'old', 'ok'))).code).toBe(0);
    const oldHash = await treeHash(join(c.storage, PART, 'run_id=old'));
    expect((await readItems(c)).map((r) => r.run_id)).toEqual(['old']);

    const dry = await quarry(['retry', '--reprocess', '--dry-run', '--storage-path', c.storage, '--format', 'json']);
    expect(JSON.parse(dry.stdout)).toEqual([expect.objectContaining({ day: '2026-11-20', reason: 'reprocess', attempt: 2, parent_run_id: 'old' })]);

    expect((await quarry(runArgs(c, 'new', 'ok', ['--attempt', '2', '--parent-run-id', 'old']))).code).toBe(0);
    expect((await state(c))[0]).toMatchObject({ status: 'success', current_run_id: 'new' });
    expect((await readItems(c)).map((r) => r.run_id)).toEqual(['new']);
    expect(await treeHash(join(c.storage, PART, 'run_id=old'))).toBe(oldHash);

    expect((await quarry(runArgs(c, 'bad', 'seq_gap'))).code).toBe(2);
    expect((await state(c))[0]).toMatchObject({ status: 'success', current_run_id: 'new', last_run_id: 'bad' });
    expect((await readItems(c)).map((r) => r.run_id)).toEqual(['new']);
  });

  it('read never returns records of a failed partition', async () => {
    const c: Ctx = { storage: join(tmp.path, 'failed-only'), ledger: [] };
    expect((await quarry(runArgs(c, 'only-bad', 'seq_gap'))).code).toBe(2);
    expect((await state(c))[0]).toMatchObject({ status: 'failed', current_run_id: null });
    const r = await quarry(['read', '--storage-path', c.storage]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/no success partition matches/);
  });
});

describe('tampering', () => {
  // Runs are validated into a side ledger at run time; the main ledger sees them first after tampering.
  const tampered = async (runId: string, tamper: (storage: string, m: RunManifest) => Promise<void>) => {
    const c: Ctx = { storage: join(tmp.path, `tamper-${runId}`), ledger: [] };
    expect((await quarry(runArgs(c, runId, 'ok', ['--ledger', join(tmp.path, `side-${runId}.sqlite`)]))).code).toBe(0);
    const [m] = await manifests(c.storage);
    await tamper(c.storage, m!);
    const v = await quarry(['validate', '--run', runId, '--storage-path', c.storage, '--format', 'json']);
    const rows = await state(c);
    return { v, rows };
  };

  it('a flipped byte in a data file fails validation with the reason and the run never becomes authoritative', async () => {
    const { v, rows } = await tampered('flip', async (storage, m) => {
      const seg = m.objects.find((o) => o.kind === 'records')!;
      await flipByte(storage, `${PART}/run_id=flip/${seg.path}`, 10);
    });
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/run flip is invalid: object_sha256_mismatch/);
    expect(rows[0]).toMatchObject({ status: 'failed', current_run_id: null });
    // inspect run shows what the validator recorded, reason included.
    const inspect = await quarry(['inspect', 'run', 'flip', '--storage-path', join(tmp.path, 'tamper-flip'), '--format', 'json']);
    const ledger = (JSON.parse(inspect.stdout) as { ledger: { validation_status: string; validation_reasons: Array<{ code: string }>; authoritative: boolean } }).ledger;
    expect(ledger).toMatchObject({ validation_status: 'invalid', authoritative: false });
    expect(ledger.validation_reasons.map((r) => r.code)).toContain('object_sha256_mismatch');
  });

  it('a deleted data file fails validation', async () => {
    const { v, rows } = await tampered('gone', async (storage, m) => {
      await deleteObject(storage, `${PART}/run_id=gone/${m.objects.find((o) => o.kind === 'records')!.path}`);
    });
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/object_missing/);
    expect(rows[0]).toMatchObject({ status: 'failed' });
  });

  it('a truncated manifest fails validation', async () => {
    const { v, rows } = await tampered('trunc', async (storage, m) => {
      await truncateManifest(storage, m);
    });
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/manifest_malformed/);
    expect(rows[0]).toMatchObject({ status: 'failed' });
  });
});

describe('a quarry run killed with SIGKILL', () => {
  it('leaves no manifest, changes no ledger row, is ignored by validate --pending and never read', async () => {
    const c: Ctx = { storage: join(tmp.path, 'sigkill'), ledger: [] };
    expect((await quarry(runArgs(c, 'good', 'ok'))).code).toBe(0);
    const before = await state(c);

    const killed = await quarry(runArgs(c, 'dead', 'hang'), {
      onSpawn: (child) => {
        // Kill once the run is under way: its claim exists (the ledger is opened and bound before it).
        const claim = join(c.storage, 'datasets/quarry/runs/dead.json');
        const started = Date.now();
        const poll = setInterval(() => {
          if (!existsSync(claim) && Date.now() - started < 30_000) return;
          clearInterval(poll);
          setTimeout(() => {
            try {
              execFileSync('pkill', ['-KILL', '-P', String(child.pid)]);
            } catch {
              // no child yet: the test then fails on the missing claim below
            }
            child.kill('SIGKILL');
          }, 300);
        }, 25);
      },
    });
    expect(killed.signal).toBe('SIGKILL');
    await expect(readFile(join(c.storage, PART, 'run_id=dead', '_manifest.json'))).rejects.toThrow(/ENOENT/);
    await expect(readFile(join(c.storage, 'datasets/quarry/runs/dead.json'))).resolves.toBeDefined();
    expect(await state(c)).toEqual(before);

    const pending = await quarry(['validate', '--pending', '--storage-path', c.storage, '--format', 'json']);
    expect(JSON.parse(pending.stdout)).toEqual({ validated: [], unfinalized: ['dead'], trees: [] });
    expect(await state(c)).toEqual(before);
    expect((await readItems(c)).map((r) => r.run_id)).toEqual(['good']);
  });
});
