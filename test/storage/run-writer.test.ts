import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/storage/backend.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import type { RunClaim } from '../../src/storage/manifest.js';
import { RunWriter } from '../../src/storage/run-writer.js';
import { FaultyBackend } from '../_harness/faulty-backend.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

let tmp: TempDir;
let fs: FsBackend;
beforeEach(async () => {
  tmp = await makeTempDir('run-writer');
  fs = await FsBackend.create(tmp.path);
});
afterEach(async () => {
  await fs.close();
  await tmp.remove();
});

function claim(runId: string): RunClaim {
  return {
    dataset: 'quarry', source: 'test', category: 'default', day: '2026-11-23', run_id: runId,
    claim_version: 1, started_at: '2026-11-23T00:00:00.000Z', attempt: 1, root_run_id: runId, depth: 0, script_path: '/x.ts',
  };
}

describe('sidecar files (storage.put)', () => {
  it('lists a file only together with its .meta.json: when the meta write fails, neither is listed', async () => {
    const faulty = new FaultyBackend(fs, { fault: { failAt: 1, match: (k) => k.endsWith('.meta.json') } });
    const writer = await RunWriter.claim(faulty, claim('side-1'));
    await expect(writer.putFile('page.html', 'text/html', Buffer.from('<p>hi</p>'))).rejects.toBeInstanceOf(StorageError);
    expect(writer.objects.map((o) => o.path)).toEqual([]);
    await writer.putFile('other.html', 'text/html', Buffer.from('<p>ok</p>'));
    expect(writer.objects.map((o) => [o.path, o.kind])).toEqual([['files/other.html', 'file'], ['files/other.html.meta.json', 'file_meta']]);
  });
});

describe('a create that finds its own bytes is a success, and only then', () => {
  it('finalize fails with exists when the manifest key holds other bytes', async () => {
    const writer = await RunWriter.claim(fs, claim('other-bytes'));
    await fs.putNew(writer.keyOf('_manifest.json'), '{"someone":"else"}\n');
    await expect(writer.finalize({ run_id: 'other-bytes' } as Parameters<RunWriter['finalize']>[0])).rejects.toMatchObject({ code: 'exists' });
  });

  it('two claims of one run_id with otherwise identical fields never both succeed', async () => {
    await RunWriter.claim(fs, claim('twin'));
    // The second claimant is told `exists`; its bytes differ by the claim token, so they are not its own.
    await expect(RunWriter.claim(fs, claim('twin'))).rejects.toThrow(/already exists/);
  });
});
