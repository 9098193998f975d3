import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/protocol/codec.js';
import { quarry } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('ipc');
});
afterAll(async () => {
  await tmp.remove();
});

const item = { contract_version: '1.0.0', event_id: 'e1', run_id: 'r', seq: 1, type: 'item', ts: '2026-11-22T00:00:00.000Z', payload: { item_type: 't', data: { n: 1 } }, attempt: 1 };
const chunk = { type: 'artifact_chunk', artifact_id: 'a', seq: 1, is_last: true, data: Buffer.from([1, 2, 3]) };

describe('quarry debug ipc --decode', () => {
  it('prints every frame of a captured stream as one JSON line, bytes as base64 with their length', async () => {
    const file = join(tmp.path, 'good.bin');
    await writeFile(file, Buffer.concat([encodeFrame(item), encodeFrame(chunk)]));
    const r = await quarry(['debug', 'ipc', '--decode', file]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([item, { ...chunk, data: { $binary: 'AQID', length: 3 } }]);
  });

  it('reads a stream from stdin with -', async () => {
    const r = await quarry(['debug', 'ipc', '--decode', '-'], { input: encodeFrame(item) });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(item);
  });

  it('exits non-zero with the byte offset of a truncated or malformed frame', async () => {
    const good = encodeFrame(item);
    const truncated = await quarry(['debug', 'ipc', '--decode', '-'], { input: Buffer.concat([good, encodeFrame(item).subarray(0, 9)]) });
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toMatch(new RegExp(`truncated frame at byte ${good.length}`));
    expect(truncated.stdout.trim().split('\n')).toHaveLength(1);
    const malformed = await quarry(['debug', 'ipc', '--decode', '-'], { input: Buffer.concat([good, Buffer.from([0, 0, 0, 2, 0x92, 0x01])]) });
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toMatch(new RegExp(`malformed frame at byte ${good.length}`));
  });
});

describe('quarry debug ipc', () => {
  it('names the frame pipe: fd 3 after the frame_fd handshake, else stdout', async () => {
    const r = await quarry(['debug', 'ipc']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as { transport: string; frame_fd: number };
    expect(info.frame_fd).toBe(3);
    expect(info.transport).toMatch(/fd 3 once the executor's stdout opens with the frame_fd handshake \(QUARRY_FRAME_FD=3 offers it\), else on stdout/);
  });
});
