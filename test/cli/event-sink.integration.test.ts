/**
 * The Redis Streams event sink (SPEC §11) against a private redis-server the
 * test starts on a free port (never the machine's shared Redis): every event
 * of a run lands once, in seq order, while the run goes; with Redis stopped
 * mid-run, best_effort (the default) finishes the run with counted sink drops
 * (apart from policy drops), and mandatory ends it policy_failure (exit 3).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { startPrivateRedis, type PrivateRedis } from '../_harness/private-redis.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const SCRIPT = join(REPO_ROOT, 'test/fixtures/scripts/notify.mjs');

let redis: PrivateRedis | undefined;
let client: Redis | undefined;
let tmp: TempDir | undefined;
afterEach(async () => {
  client?.disconnect();
  await redis?.stop();
  await tmp?.remove();
  client = undefined;
  redis = undefined;
  tmp = undefined;
});

interface Report { run_id: string; outcome: string; exit_code: number; event_count: number; message: string; policy: { events_dropped: number }; event_sinks?: Array<{ sent: number; dropped: number; delivery: string }> }

async function run(job: object, flags: string[]): Promise<{ code: number | null; report: Report; stderr: string; wait: Promise<void> }> {
  const reportPath = join(tmp!.path, `r-${Math.random().toString(36).slice(2)}.json`);
  const r = await quarry(['run', '--script', SCRIPT, '--source', 'sink', '--day', '2026-11-23', '--job', JSON.stringify(job), '--storage-path', join(tmp!.path, 'data'), '--report', reportPath, ...flags], { timeoutMs: 150_000 });
  return { code: r.code, stderr: r.stderr, report: JSON.parse(await readFile(reportPath, 'utf8')) as Report, wait: Promise.resolve() };
}

describe('event sink: Redis Streams', { timeout: 180_000 }, () => {
  it('every event lands once, in seq order, while the run goes, with the envelope fields', async () => {
    tmp = await makeTempDir('sink');
    redis = await startPrivateRedis();
    client = new Redis(redis.url);
    // Entries appear while the run goes: read the stream before the run ends.
    let seenDuring = 0;
    const running = run({ items: 60, delay_ms: 40 }, ['--event-sink', 'redis', '--event-sink-redis-url', redis.url, '--event-sink-redis-stream-key', 'q:ev']);
    for (let i = 0; i < 600 && seenDuring === 0; i++) {
      seenDuring = await client.xlen('q:ev');
      if (seenDuring === 0) await new Promise((r) => setTimeout(r, 50));
    }
    const { code, report } = await running;
    expect(code).toBe(0);
    expect(seenDuring).toBeGreaterThan(0);
    expect(seenDuring).toBeLessThan(report.event_count);
    const entries = await client.xrange('q:ev', '-', '+');
    const fields = entries.map(([, f]) => Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i]!, f[2 * i + 1]!])));
    expect(fields.map((f) => Number(f.seq))).toEqual(Array.from({ length: report.event_count }, (_, i) => i + 1));
    expect(fields.every((f) => f.run_id === report.run_id && f.source === 'sink' && f.category === 'default' && f.dataset === 'quarry')).toBe(true);
    expect(fields.filter((f) => f.type === 'item')).toHaveLength(60);
    expect(JSON.parse(fields.find((f) => f.type === 'item')!.payload!)).toMatchObject({ item_type: 'n', data: { i: 1 } });
    expect(report.event_sinks).toEqual([expect.objectContaining({ sent: report.event_count, dropped: 0, delivery: 'best_effort' })]);
  });

  it('Redis stopped mid-run: best_effort finishes with counted sink drops; mandatory ends policy_failure', async () => {
    tmp = await makeTempDir('sink-down');
    for (const delivery of ['best_effort', 'mandatory'] as const) {
      redis = await startPrivateRedis();
      client = new Redis(redis.url);
      const running = run({ items: 80, delay_ms: 50 }, ['--event-sink', 'redis', '--event-sink-redis-url', redis.url, '--event-sink-redis-delivery', delivery, '--event-sink-redis-timeout', '1s', '--event-sink-redis-retries', '1']);
      for (let i = 0; i < 600; i++) {
        if ((await client.xlen('quarry:events')) >= 10) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      client.disconnect();
      client = undefined;
      await redis.stop();
      redis = undefined;
      const { code, report } = await running;
      if (delivery === 'best_effort') {
        expect(code).toBe(0);
        expect(report.outcome).toBe('success');
        expect(report.policy.events_dropped).toBe(0);
        expect(report.event_sinks![0]!.dropped).toBeGreaterThan(0);
        expect(report.event_sinks![0]!.sent + report.event_sinks![0]!.dropped).toBe(report.event_count);
      } else {
        expect(code).toBe(3);
        expect(report.outcome).toBe('policy_failure');
        expect(report.message).toMatch(/event sink redis .*mandatory/);
      }
    }
  });
});
