/**
 * The Redis Streams writer (SPEC §11) against a private redis-server: a batch
 * sent again (as after a timeout whose first call had in fact landed) adds no
 * entry twice, and entries older than the TTL are trimmed by age while the
 * stream key itself never expires. A best_effort writer's drain at close is
 * bounded: a Redis that never answers does not hold it, and what did not go
 * is counted as dropped. Once a best_effort batch to a Redis has failed every
 * retry, later best_effort batches to it get one attempt until one lands.
 */
import { createServer, type Server } from 'node:net';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { REDIS_SINK_DEFAULTS } from '../../src/notify/redis-stream-sink.js';
import { packEvent, wireChunk, type WireChunk } from '../../src/notify/redis-stream-pack.js';
import { StreamWriter } from '../../src/notify/redis-stream-writer.js';
import { startPrivateRedis, type PrivateRedis } from '../_harness/private-redis.js';

let redis: PrivateRedis | undefined;
let client: Redis | undefined;
let silent: Server | undefined;
afterEach(async () => {
  client?.disconnect();
  await redis?.stop();
  await new Promise<void>((r) => (silent ? silent.close(() => r()) : r()));
  client = undefined;
  redis = undefined;
  silent = undefined;
});

const partition = { dataset: 'd', source: 's', category: 'c' };
/** Events from..to as the sink hands them over: chunks of `per` packed lines (a chunk above 500 is cut by the writer). */
const events = (from: number, to: number, per = 500): WireChunk[] => {
  const lines = Array.from({ length: to - from + 1 }, (_, i) => packEvent(from + i, 'item', new Date().toISOString(), JSON.stringify({ i: from + i })));
  return Array.from({ length: Math.ceil(lines.length / per) }, (_, k) => wireChunk(lines.slice(k * per, k * per + per).join('\n'), Math.min(per, lines.length - k * per)));
};
const push = (w: StreamWriter, chunks: WireChunk[]): void => chunks.forEach((c) => w.push(c));

describe('Redis Streams writer', () => {
  it('a batch sent again adds nothing twice: each seq of a run is in the stream once, in order', async () => {
    redis = await startPrivateRedis();
    client = new Redis(redis.url);
    const w = new StreamWriter({ ...REDIS_SINK_DEFAULTS, url: redis.url, streamKey: 'w:ev' }, 'run-1', partition, 't', () => undefined);
    push(w, events(1, 600, 1300)); // one chunk of 600: cut into calls of 500 and 100
    push(w, events(401, 700, 100)); // 401..600 again, as a retried batch would be
    const end = await w.close();
    expect(end.dropped).toBe(0);
    expect(end.failed).toBeUndefined();
    const seqs = (await client.xrange('w:ev', '-', '+')).map(([, f]) => Number(f[f.indexOf('seq') + 1]));
    expect(seqs).toEqual(Array.from({ length: 700 }, (_, i) => i + 1));
    // Another run's seqs start again at 1: the guard is per run.
    const w2 = new StreamWriter({ ...REDIS_SINK_DEFAULTS, url: redis.url, streamKey: 'w:ev' }, 'run-2', partition, 't', () => undefined);
    push(w2, events(1, 3));
    await w2.close();
    expect(await client.xlen('w:ev')).toBe(703);
  });

  it('payloads outside ASCII arrive as sent, in a call that also carries ASCII chunks', async () => {
    redis = await startPrivateRedis();
    client = new Redis(redis.url);
    const w = new StreamWriter({ ...REDIS_SINK_DEFAULTS, url: redis.url, streamKey: 'w:utf8' }, 'run-u', partition, 't', () => undefined);
    // Latin-1 'é' (one byte in a V8 one-byte string, two in UTF-8), a BMP '€' and an astral emoji, each in its own chunk between ASCII ones.
    const names = ['plain', 'café', 'plain', '20 €', 'ok 🦀'];
    const lines = names.map((name, i) => packEvent(i + 1, 'item', '2026-11-24T00:00:00.000Z', JSON.stringify({ name })));
    for (const line of lines) w.push(wireChunk(line, 1));
    expect((await w.close()).sent).toBe(5);
    const got = (await client.xrange('w:utf8', '-', '+')).map(([, f]) => JSON.parse(f[f.indexOf('payload') + 1]!) as { name: string });
    expect(got.map((p) => p.name)).toEqual(names);
  });

  it('entries older than the TTL are trimmed by age; the key has no expiry', async () => {
    redis = await startPrivateRedis();
    client = new Redis(redis.url);
    // Old entries, 10 minutes back (stream ids are milliseconds).
    const old = Date.now() - 600_000;
    for (let i = 0; i < 300; i++) await client.xadd('w:ttl', `${old}-${i + 1}`, 'run_id', 'old', 'seq', String(i + 1));
    const w = new StreamWriter({ ...REDIS_SINK_DEFAULTS, url: redis.url, streamKey: 'w:ttl', ttlMs: 60_000 }, 'run-new', partition, 't', () => undefined);
    push(w, events(1, 5));
    await w.close();
    const left = await client.xrange('w:ttl', '-', '+');
    // MINID ~ trims whole nodes: every old entry may not go at once, but the new ones all stay and most old ones go.
    expect(left.filter(([, f]) => f[1] === 'run-new')).toHaveLength(5);
    expect(left.filter(([, f]) => f[1] === 'old').length).toBeLessThan(300);
    expect(await client.pttl('w:ttl')).toBe(-1);
  });

  it('best_effort: a Redis that never answers does not hold the close past its drain bound; what did not go is dropped and counted', async () => {
    // Accepts connections and reads commands, never replies (a hung server).
    const s = createServer((sock) => sock.resume());
    silent = s;
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const url = `redis://127.0.0.1:${(s.address() as { port: number }).port}`;
    const progress: number[] = [];
    // A call timeout far past the drain bound: only the bound can end this close early.
    const w = new StreamWriter({ ...REDIS_SINK_DEFAULTS, url, streamKey: 'w:hung', timeoutMs: 600_000, retries: 2 }, 'run-h', partition, 't', (p) => progress.push(p.done));
    push(w, events(1, 1200));
    const end = await w.close(300);
    expect(end).toMatchObject({ sent: 0, dropped: 1200 });
    expect(end.lastError).toMatch(/^the drain at close ran out of time after 300ms/);
    expect(end.failed).toBeUndefined();
    // Every event's room was given back to the sender, sent or not.
    expect(progress.reduce((a, b) => a + b, 0)).toBe(1200);
  });

  it('mandatory: no drain bound; a batch that fails its retries fails the sink', async () => {
    const s = createServer((sock) => sock.destroy());
    silent = s;
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const url = `redis://127.0.0.1:${(s.address() as { port: number }).port}`;
    const w = new StreamWriter({ ...REDIS_SINK_DEFAULTS, url, streamKey: 'w:m', timeoutMs: 1000, retries: 1, delivery: 'mandatory' }, 'run-m', partition, 't', () => undefined);
    push(w, events(1, 10));
    const end = await w.close(1);
    expect(end).toMatchObject({ sent: 0, dropped: 10 });
    expect(end.failed).toMatch(/^event sink redis t: a batch failed after 1 retries \(redis 127\.0\.0\.1:\d+: .*\); delivery is mandatory$/);
  });

  it('after a best_effort batch to a Redis failed every retry, the next get one attempt until one lands; mandatory keeps its retries', async () => {
    // A server that takes each connection and drops it: every call fails. Counted, to see how often writers try.
    let connections = 0;
    const refuse = async (port = 0): Promise<Server> => {
      const srv = createServer((sock) => {
        connections++;
        sock.destroy();
      });
      await new Promise<void>((r) => srv.listen(port, '127.0.0.1', () => r()));
      return srv;
    };
    silent = await refuse();
    const port = (silent.address() as { port: number }).port;
    const url = `redis://127.0.0.1:${port}`;
    const o = { ...REDIS_SINK_DEFAULTS, url, streamKey: 'w:f', timeoutMs: 1000, retries: 2 };
    /** One writer's single batch of 10 events: its end, and the connections it made (its early connect included). */
    const once = async (delivery: 'best_effort' | 'mandatory', run: string): Promise<{ sent: number; dropped: number; failed?: string; lastError: string | null; tries: number }> => {
      const before = connections;
      const w = new StreamWriter({ ...o, delivery }, run, partition, 't', () => undefined);
      push(w, events(1, 10));
      const end = await w.close(5000);
      return { ...end, tries: connections - before };
    };
    const first = await once('best_effort', 'run-a');
    expect(first).toMatchObject({ sent: 0, dropped: 10 });
    expect(first.tries).toBeGreaterThanOrEqual(3); // the batch's 3 attempts (the early connect may be one of them)
    const next = await once('best_effort', 'run-b');
    expect(next).toMatchObject({ sent: 0, dropped: 10 });
    expect(next.lastError).toMatch(/^redis 127\.0\.0\.1:\d+: /);
    expect(next.tries).toBeLessThanOrEqual(2); // the early connect and one attempt, no retries
    const mandatory = await once('mandatory', 'run-m');
    expect(mandatory.failed).toMatch(/a batch failed after 2 retries/);
    expect(mandatory.tries).toBeGreaterThanOrEqual(3);
    // Redis back on the same port: the one attempt lands, and that clears the mark.
    await new Promise<void>((r) => silent!.close(() => r()));
    silent = undefined;
    redis = await startPrivateRedis({ port });
    expect(await once('best_effort', 'run-c')).toMatchObject({ sent: 10, dropped: 0 });
    await redis.stop();
    redis = undefined;
    silent = await refuse(port);
    const again = await once('best_effort', 'run-d');
    expect(again).toMatchObject({ sent: 0, dropped: 10 });
    expect(again.tries).toBeGreaterThanOrEqual(3); // full retries again
  });
});
