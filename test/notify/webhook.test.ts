/**
 * The webhook adapter's retries (SPEC §11) against a real local HTTP server:
 * the timeout bounds EACH attempt (a hung request is retried, unlike the
 * original whose timeout covered all retries), 5xx and refused connections
 * are retried up to --adapter-retries, a 4xx is never retried, and the
 * default backoff is 1/2/4 s plus jitter. Backoffs are shortened here; the
 * schedule itself is checked as a function.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { compileAdapter } from '../../src/notify/adapter-config.js';
import { backoffMs, sendNotification } from '../../src/notify/send.js';
import { startWebhookReceiver, type WebhookReceiver } from '../_harness/webhook-receiver.js';

let rx: WebhookReceiver | undefined;
afterEach(async () => {
  await rx?.close();
  rx = undefined;
});

const fast = { backoff: () => 20 };
const body = JSON.stringify({ event_type: 'run_completed', notification_id: 'n-1' });

describe('webhook adapter', () => {
  it('retries a 5xx and succeeds on a later attempt, posting the same body with the given headers', async () => {
    rx = await startWebhookReceiver();
    rx.script([503, 502], 204);
    const a = compileAdapter({ kind: 'webhook', url: rx.url, headers: ['X-Token=s3cret'], retries: 3 });
    const r = await sendNotification(a, body, fast);
    expect(r).toMatchObject({ delivered: true, attempts: 3, error: null, trail: ['503', '502', '204'] });
    expect(rx.posts.map((p) => p.body)).toEqual([JSON.parse(body), JSON.parse(body), JSON.parse(body)]);
    expect(rx.posts[0]!.headers['x-token']).toBe('s3cret');
    expect(rx.posts[0]!.headers['content-type']).toBe('application/json');
  });

  it('the timeout is per attempt: a request hung past it is retried, and the next attempt delivers', async () => {
    rx = await startWebhookReceiver();
    rx.script(['hang', 'hang'], 200);
    // Generous timeout for a loaded machine; the hung attempts end at it, not at the end of all retries.
    const a = compileAdapter({ kind: 'webhook', url: rx.url, timeoutMs: 1500, retries: 2 });
    const r = await sendNotification(a, body, fast);
    expect(r.delivered).toBe(true);
    expect(r.trail).toEqual(['timeout after 1500ms', 'timeout after 1500ms', '200']);
    expect(rx.posts).toHaveLength(3);
  });

  it('a 4xx is final: one attempt, never retried', async () => {
    rx = await startWebhookReceiver();
    rx.script([], 422);
    const r = await sendNotification(compileAdapter({ kind: 'webhook', url: rx.url, retries: 3 }), body, fast);
    expect(r).toMatchObject({ delivered: false, attempts: 1, trail: ['422'] });
    expect(r.error).toMatch(/422 \(4xx: not retried\)/);
    expect(rx.posts).toHaveLength(1);
  });

  it('a receiver failing every attempt (5xx, dropped connection, refused) is tried retries + 1 times, then reported undelivered', async () => {
    rx = await startWebhookReceiver();
    rx.script([500, 'drop'], 500);
    const r = await sendNotification(compileAdapter({ kind: 'webhook', url: rx.url, retries: 3 }), body, fast);
    expect(r.delivered).toBe(false);
    expect(r.attempts).toBe(4);
    expect(r.trail[0]).toBe('500');
    expect(r.trail[1]).toMatch(/^network: /);
    expect(rx.posts).toHaveLength(4);
    await rx.down();
    const refused = await sendNotification(compileAdapter({ kind: 'webhook', url: rx.url, retries: 1 }), body, fast);
    expect(refused).toMatchObject({ delivered: false, attempts: 2 });
    expect(refused.trail.every((t) => t.startsWith('network: '))).toBe(true);
  });

  it('backs off 1 s, 2 s, 4 s with up to 25 % jitter', () => {
    expect([1, 2, 3].map((n) => backoffMs(n, () => 0))).toEqual([1000, 2000, 4000]);
    expect([1, 2, 3].map((n) => backoffMs(n, () => 0.999))).toEqual([1249, 2499, 4999]);
  });

  it('defaults are §11\'s: 10 s per attempt, 3 retries, channel quarry:run_completed; credentials and query never recorded', async () => {
    const { recordedTarget } = await import('../../src/notify/adapter-config.js');
    const a = compileAdapter({ kind: 'webhook', url: 'https://u:pw@hooks.example/q?token=abc' });
    expect(a).toMatchObject({ timeoutMs: 10_000, retries: 3, channel: 'quarry:run_completed' });
    expect(recordedTarget(a)).toEqual({ kind: 'webhook', target: 'https://hooks.example/q' });
    expect(recordedTarget(compileAdapter({ kind: 'redis', url: 'redis://:pw@127.0.0.1:6390/2' }))).toEqual({ kind: 'redis', target: 'redis://127.0.0.1:6390/2#quarry%3Arun_completed' });
  });
});
