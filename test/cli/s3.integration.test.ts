import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { startS3Server, UNKNOWN_ACCESS_KEY_ID, type S3TestServer } from '../_harness/s3-server.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');
const PART = 'datasets/quarry/partitions/source=shop/category=default/day=2026-11-20';

let s3: S3TestServer;
let tmp: TempDir;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket('lake');
  tmp = await makeTempDir('s3-cli');
  env = { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey, AWS_REGION: 'us-east-1' };
});
afterAll(async () => {
  await s3.stop();
  await tmp.remove();
});

const s3Flags = (path = 'lake/raw') => ['--storage-backend', 's3', '--storage-endpoint', s3.endpoint, '--storage-s3-path-style', '--storage-path', path];
const runArgs = (runId: string, storage: string[]) => [
  'run', '--script', script, '--executor', executor, '--source', 'shop', '--day', '2026-11-20', '--run-id', runId, '--job', '{"mode":"ok"}', '--quiet', ...storage,
];

/** Object paths under the run folder and the records with run identity and timestamps blanked. */
function normalize(files: Map<string, string>, runId: string) {
  const out: Record<string, unknown> = {};
  for (const [path, text] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (path === '_manifest.json') continue;
    out[path] = text.split('\n').filter(Boolean).map((l) => {
      const r = JSON.parse(l) as Record<string, unknown>;
      // The metrics record names its backend: the one field that must differ.
      if (r.record_kind === 'metrics') (r.metrics as { dimensions: Record<string, string> }).dimensions.storage_backend = '<backend>';
      return { ...r, run_id: '<run>', ts: '<ts>', event_id: '<id>' };
    });
    void runId;
  }
  return out;
}

async function fsFiles(root: string, runId: string): Promise<Map<string, string>> {
  const dir = join(root, PART, `run_id=${runId}`);
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(relative(dir, p), await readFile(p, 'utf8'));
    }
  };
  await walk(dir);
  return out;
}

describe('quarry run on S3', () => {
  it('writes the same layout and records as on the filesystem, and the read commands see it', async () => {
    const fsRoot = join(tmp.path, 'fs');
    expect((await quarry(runArgs('on-fs', ['--storage-path', fsRoot]), { env })).code).toBe(0);
    const onS3 = await quarry(runArgs('on-s3', [...s3Flags(), '--ledger', join(tmp.path, 's3-ledger.sqlite')]), { env });
    expect(onS3.code, onS3.stderr).toBe(0);

    // Read the S3 run back through the real backend (the CLI's own reader).
    const { S3Backend } = await import('../../src/storage/s3-backend.js');
    const b = await S3Backend.create({ bucket: 'lake', prefix: 'raw', endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: s3.credentials });
    const s3Files = new Map<string, string>();
    const prefix = `${PART}/run_id=on-s3/`;
    for await (const o of b.list(prefix)) s3Files.set(o.key.slice(prefix.length), (await b.get(o.key)).toString('utf8'));
    await b.close();
    expect(s3Files.has('_manifest.json')).toBe(true);
    expect(normalize(s3Files, 'on-s3')).toEqual(normalize(await fsFiles(fsRoot, 'on-fs'), 'on-fs'));

    const list = await quarry(['list', 'runs', ...s3Flags(), '--format', 'json'], { env });
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as Array<{ run_id: string; outcome: string }>).map((r) => [r.run_id, r.outcome])).toEqual([['on-s3', 'success']]);
    const read = await quarry(['read', ...s3Flags(), '--ledger', join(tmp.path, 's3-ledger.sqlite'), '--type', 'item'], { env });
    expect(read.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { run_id: string }).run_id)).toEqual(['on-s3']);
  });

  it('a taken run id is refused on S3 as on fs (the claim is a conditional create)', async () => {
    const again = await quarry(runArgs('on-s3', [...s3Flags(), '--ledger', join(tmp.path, 's3-ledger.sqlite')]), { env });
    expect(again.code).toBe(2);
    // The ledger refuses it first: the id is recorded (SPEC §8 "Binding and writers").
    expect(again.stderr).toMatch(/refused before the run started: run id "on-s3" is already used by a recorded run/);
  });

  it('with a fresh ledger the S3 claim itself refuses a taken run id (conditional create)', async () => {
    const again = await quarry(runArgs('on-s3', [...s3Flags(), '--ledger', join(tmp.path, 's3-ledger-fresh.sqlite')]), { env });
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/run_id on-s3 already exists/);
  });

  it('S3 storage needs an explicit ledger', async () => {
    const r = await quarry(runArgs('no-ledger', s3Flags()), { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--ledger is required with --storage-backend s3/);
  });

  it('a missing bucket and an unreachable endpoint are one-line errors, before anything runs', async () => {
    const ledger = join(tmp.path, 'bad.sqlite');
    const missing = await quarry(runArgs('x1', [...s3Flags('no-such-bucket/p'), '--ledger', ledger]), { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/no-such-bucket/);

    const down = await quarry(['run', '--script', script, '--source', 'shop', '--storage-backend', 's3', '--storage-endpoint', 'http://127.0.0.1:9', '--storage-s3-path-style', '--storage-path', 'lake/p', '--ledger', ledger], { env });
    expect(down.code).toBe(2);
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
    expect(down.stderr).toMatch(/127\.0\.0\.1:9/);
    expect(down.stderr).not.toContain(s3.credentials.secretAccessKey);
  });

  it('wrong credentials are a one-line error that never prints the secret, before anything runs', async () => {
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const r = await quarry(runArgs('x2', [...s3Flags(), '--ledger', join(tmp.path, 'cred.sqlite')]), { env: { ...env, AWS_ACCESS_KEY_ID: UNKNOWN_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: secret } });
    expect(r.code).toBe(3); // access denied by the storage is a policy failure (SPEC §7), found before anything is stored
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/access|credential/i);
    expect(r.stderr).not.toContain(secret);
    const list = await quarry(['list', 'runs', ...s3Flags(), '--format', 'json'], { env });
    expect((JSON.parse(list.stdout) as Array<{ run_id: string }>).map((x) => x.run_id)).not.toContain('x2');
  });
});
