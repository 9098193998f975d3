/**
 * The Redis PUBLISH adapter end to end (SPEC §11): a subscriber on a private
 * redis-server gets exactly one notification per standalone run and one per
 * tree (none per child), on the channel given, with the fields §11 lists;
 * the run marks it delivered, so a drain then has nothing to send.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { startCrawlSite, type CrawlSite } from '../_harness/crawl-site.js';
import { startPrivateRedis, type PrivateRedis } from '../_harness/private-redis.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const SCRIPT = join(REPO_ROOT, 'test/fixtures/scripts/notify.mjs');
const CRAWL = join(REPO_ROOT, 'test/fixtures/crawl-site');

let redis: PrivateRedis | undefined;
let sub: Redis | undefined;
let site: CrawlSite | undefined;
let tmp: TempDir | undefined;
afterEach(async () => {
  sub?.disconnect();
  await redis?.stop();
  await site?.close();
  await tmp?.remove();
  sub = redis = site = tmp = undefined;
});

describe('run-completed notifications by Redis PUBLISH', () => {
  it('one per standalone run and one per tree, with the fields of §11; nothing left for a drain', async () => {
    tmp = await makeTempDir('notify-redis');
    redis = await startPrivateRedis();
    sub = new Redis(redis.url);
    const channel = `quarry:test:${process.pid}`;
    const got: Array<Record<string, unknown>> = [];
    sub.on('message', (ch: string, m: string) => {
      if (ch === channel) got.push(JSON.parse(m) as Record<string, unknown>);
    });
    await sub.subscribe(channel);
    const storage = join(tmp.path, 'data');
    const adapter = ['--adapter', 'redis', '--adapter-url', redis.url, '--adapter-channel', channel];

    const reportPath = join(tmp.path, 'r.json');
    const run = await quarry(['run', '--script', SCRIPT, '--source', 'pub', '--category', 'c1', '--day', '2026-11-23', '--job', JSON.stringify({ items: 3 }), '--job-id', 'j1',
      '--storage-path', storage, '--report', reportPath, ...adapter]);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(await readFile(reportPath, 'utf8')) as { run_id: string; notification: { status: string; notification_id: string } };
    expect(report.notification.status).toBe('delivered');

    site = await startCrawlSite({ details: 2 });
    const crawl = await quarry(['run', '--script', 'listing.mjs', '--source', 'site', '--day', '2026-11-23', '--job', JSON.stringify({ base: site.url }),
      '--storage-path', storage, '--depth', '1', '--max-runs', '10', ...adapter], { cwd: CRAWL, timeoutMs: 150_000 });
    expect(crawl.code, crawl.stderr).toBe(0);
    // A message published before the command exits has reached this subscriber by the time it is read; allow the socket a moment.
    for (let i = 0; i < 100 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));

    expect(got.map((g) => g.event_type)).toEqual(['run_completed', 'tree_completed']);
    const [one, tree] = got as [Record<string, unknown>, Record<string, unknown>];
    expect(one).toMatchObject({
      notification_id: report.notification.notification_id, run_id: report.run_id, tree_id: null, root_run_id: report.run_id, depth: 0, parent_run_id: null, attempt: 1, job_id: 'j1',
      dataset: 'quarry', source: 'pub', category: 'c1', day: '2026-11-23', outcome: 'success', authoritative: true, authority_reason: 'promoted',
      storage: { backend: 'fs', location: expect.stringContaining('data') as unknown },
      counts: { events: expect.any(Number) as unknown, records: expect.any(Number) as unknown, dropped: 0 },
    });
    expect((one.counts as { events: number }).events).toBeGreaterThanOrEqual(4);
    expect(one.duration_ms).toEqual(expect.any(Number));
    expect(tree).toMatchObject({ tree_id: tree.run_id, source: 'site', outcome: 'success', authoritative: true, counts: { items: 3, failed_items: 0 } });
    expect(tree.notification_id).not.toBe(one.notification_id);

    const drain = await quarry(['adapter', 'drain', '--storage-path', storage]);
    expect(drain.code, drain.stderr).toBe(0);
    expect(drain.stderr).toMatch(/nothing pending/);
    expect(got).toHaveLength(2);
  });
});
