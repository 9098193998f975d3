/**
 * Notifications that cannot be lost (SPEC §11, §8): with the receiver down
 * during three standalone runs (one failing) and one crawl, every run and the
 * tree keep a pending outbox row; `quarry adapter drain` then delivers exactly
 * four notifications with distinct ids (none per child), and a second drain
 * sends nothing. A run whose receiver is up delivers its own notification
 * and marks it delivered; the exit code never depends on delivery.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { startCrawlSite, type CrawlSite } from '../_harness/crawl-site.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
import { startWebhookReceiver, type WebhookReceiver } from '../_harness/webhook-receiver.js';

const SCRIPT = join(REPO_ROOT, 'test/fixtures/scripts/notify.mjs');
const CRAWL = join(REPO_ROOT, 'test/fixtures/crawl-site');

let rx: WebhookReceiver | undefined;
let site: CrawlSite | undefined;
let tmp: TempDir | undefined;
afterEach(async () => {
  await rx?.close();
  await site?.close();
  await tmp?.remove();
  rx = undefined;
  site = undefined;
  tmp = undefined;
});

interface Payload { event_type: string; notification_id: string; run_id: string; tree_id: string | null; outcome: string; authoritative: boolean; counts: Record<string, number> }

describe('run-completed notifications through the ledger outbox', { timeout: 180_000 }, () => {
  it('a receiver down during 3 runs (1 failing) and 1 crawl: drain delivers exactly 4 distinct notifications, a second drain none', async () => {
    tmp = await makeTempDir('notify');
    rx = await startWebhookReceiver();
    const storage = join(tmp.path, 'data');
    await rx.down();
    const adapter = ['--adapter', 'webhook', '--adapter-url', `${rx.url}?token=t0ps3cret`, '--adapter-header', 'X-Auth=h3ader', '--adapter-retries', '0', '--adapter-timeout', '5s'];
    const runs: Array<{ code: number | null; report: { run_id: string; notification?: { status: string; notification_id: string } } }> = [];
    for (const [i, job] of [{}, { fail: true }, { items: 3 }].entries()) {
      const reportPath = join(tmp.path, `r${i}.json`);
      const r = await quarry(['run', '--script', SCRIPT, '--source', `s${i}`, '--day', '2026-11-23', '--job', JSON.stringify(job), '--storage-path', storage, '--report', reportPath, ...adapter]);
      runs.push({ code: r.code, report: JSON.parse(await readFile(reportPath, 'utf8')) as (typeof runs)[number]['report'] });
      expect(r.stdout).toMatch(/notification: \S+ NOT delivered .*quarry adapter drain --storage-path/);
    }
    // Delivery never changes the exit code: the failing run exits 1 as it would without an adapter.
    expect(runs.map((r) => r.code)).toEqual([0, 1, 0]);
    expect(runs.map((r) => r.report.notification?.status)).toEqual(['pending', 'pending', 'pending']);

    site = await startCrawlSite({ details: 2 });
    const crawl = await quarry(['run', '--script', 'listing.mjs', '--source', 'site', '--day', '2026-11-23', '--job', JSON.stringify({ base: site.url }),
      '--storage-path', storage, '--depth', '1', '--max-runs', '10', ...adapter], { cwd: CRAWL, timeoutMs: 150_000 });
    expect(crawl.code, crawl.stderr).toBe(0);
    expect(crawl.stdout).toMatch(/notification: \S+ NOT delivered/);
    expect(rx.posts).toHaveLength(0);

    await rx.up();
    const drain = await quarry(['adapter', 'drain', '--storage-path', storage, '--adapter-url', `${rx.url}?token=t0ps3cret`, '--adapter-header', 'X-Auth=h3ader', '--format', 'json']);
    expect(drain.code, drain.stderr).toBe(0);
    const payloads = rx.posts.map((p) => p.body as Payload);
    expect(payloads).toHaveLength(4);
    expect(new Set(payloads.map((p) => p.notification_id)).size).toBe(4);
    expect(payloads.map((p) => p.event_type).sort()).toEqual(['run_completed', 'run_completed', 'run_completed', 'tree_completed']);
    expect(payloads.filter((p) => p.event_type === 'run_completed').map((p) => p.run_id)).toEqual(runs.map((r) => r.report.run_id));
    expect(payloads.filter((p) => p.event_type === 'run_completed').map((p) => [p.outcome, p.authoritative])).toEqual([['success', true], ['script_error', false], ['success', true]]);
    const tree = payloads.find((p) => p.event_type === 'tree_completed')!;
    expect(tree).toMatchObject({ authoritative: true, counts: { items: 3, failed_items: 0 } });
    // The drain's own flags give what the outbox never holds: the query and the headers.
    expect(rx.posts.every((p) => p.headers['x-auth'] === 'h3ader')).toBe(true);
    expect((JSON.parse(drain.stdout) as Array<{ status: string }>).map((r) => r.status)).toEqual(['delivered', 'delivered', 'delivered', 'delivered']);

    const again = await quarry(['adapter', 'drain', '--storage-path', storage]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/nothing pending/);
    expect(rx.posts).toHaveLength(4);

    // No secret of the adapter reached the ledger.
    const ledgerBytes = await readFile(join(storage, 'ledger.sqlite'));
    const wal = await readFile(join(storage, 'ledger.sqlite-wal')).catch(() => Buffer.alloc(0));
    for (const secret of ['t0ps3cret', 'h3ader']) expect(Buffer.concat([ledgerBytes, wal]).includes(secret)).toBe(false);
  });

  it('a run whose receiver is up sends its own notification once and marks it delivered; a drain then has nothing', async () => {
    tmp = await makeTempDir('notify-up');
    rx = await startWebhookReceiver();
    rx.script([503], 200);
    const storage = join(tmp.path, 'data');
    const reportPath = join(tmp.path, 'r.json');
    const r = await quarry(['run', '--script', SCRIPT, '--source', 'up', '--day', '2026-11-23', '--storage-path', storage, '--report', reportPath,
      '--adapter', 'webhook', '--adapter-url', rx.url, '--adapter-retries', '2']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(await readFile(reportPath, 'utf8')) as { run_id: string; notification: Record<string, unknown> };
    expect(report.notification).toMatchObject({ status: 'delivered', attempts: 2, target: rx.url });
    expect(rx.posts).toHaveLength(2);
    expect(rx.posts.map((p) => (p.body as Payload).notification_id)).toEqual([report.notification.notification_id, report.notification.notification_id]);
    const drain = await quarry(['adapter', 'drain', '--storage-path', storage]);
    expect(drain.stderr).toMatch(/nothing pending/);
    expect(rx.posts).toHaveLength(2);
  });
});
