/**
 * What sends a run's events to its Redis stream (SPEC §11), asynchronously on
 * the run's event loop (src/notify/redis-stream-sink.ts hands it a string per
 * batch; the run never waits for it). Events wait in a queue; one loop sends them in
 * batches through one Lua call that skips any seq at or below the run's
 * highest seq already added (so a batch retried after a timeout that had in
 * fact landed adds nothing twice), trims by length (`MAXLEN ~`) and by age
 * (`XTRIM MINID ~`: entries older than the TTL go; the key itself never
 * expires). The queue's bound is kept by the sending side, which counts what
 * it has handed over and not yet heard back about.
 */
import type { WireChunk } from './redis-stream-pack.js';
import type { RedisSinkOptions, SinkPartition } from './redis-stream-sink.js';
import { LuaScript, RespClient } from './resp-client.js';

/** What the writer reports after each batch, and at the end. */
export interface WriterProgress {
  /** Events the report covers (sent or dropped), so the sender can free their room. */
  done: number;
  sent: number;
  dropped: number;
  lastError: string | null;
  /** Set once a mandatory sink has failed: the run must end `policy_failure` with this message. */
  failed?: string;
}

const NL = 0x0a;
const NEWLINE = Buffer.from([NL]);

/** Events per Lua call: big enough to spare round trips, small enough that one call never stalls Redis. */
export const BATCH = 500;

// KEYS: stream, hwm hash. ARGV: run_id, maxlen, minid, hash ttl, source, category, dataset, and the batch packed
// in ONE argument, a line per event "seq TAB type TAB ts TAB payload-json" (JSON never holds a raw tab or
// newline; types and timestamps hold neither): one argument instead of four per event spares the client
// most of its per-argument work.
// Trimmed by length once per call, not per XADD (a fifth of Redis's CPU for the batch); the call is atomic,
// so no reader sees the stream past its length. Each line is cut once (its seq is one substring, read as a
// number and sent as it is; the newline is looked for after the third tab, not from the line's start) and the
// functions and run fields are locals: ~10% of Redis's CPU per entry (docs/benchmarks.md "Event sink cost").
const ADD_SCRIPT = new LuaScript(`
local call, key, run, source, category, dataset = redis.call, KEYS[1], ARGV[1], ARGV[5], ARGV[6], ARGV[7]
local find, sub = string.find, string.sub
local hwm = tonumber(call('HGET', KEYS[2], run) or '0')
local added = 0
local batch = ARGV[8]
local pos = 1
local len = #batch
while pos <= len do
  local t1 = find(batch, '\\t', pos, true)
  local t2 = find(batch, '\\t', t1 + 1, true)
  local t3 = find(batch, '\\t', t2 + 1, true)
  local nl = find(batch, '\\n', t3 + 1, true) or (len + 1)
  local s = sub(batch, pos, t1 - 1)
  local seq = tonumber(s)
  if seq > hwm then
    call('XADD', key, '*', 'run_id', run, 'seq', s, 'type', sub(batch, t1 + 1, t2 - 1), 'ts', sub(batch, t2 + 1, t3 - 1), 'payload', sub(batch, t3 + 1, nl - 1), 'source', source, 'category', category, 'dataset', dataset)
    hwm = seq
    added = added + 1
  end
  pos = nl + 1
end
call('HSET', KEYS[2], run, hwm)
call('PEXPIRE', KEYS[2], ARGV[4])
if added > 0 then call('XTRIM', key, 'MAXLEN', '~', ARGV[2]) end
if ARGV[3] ~= '0' then call('XTRIM', key, 'MINID', '~', ARGV[3]) end
return added`);

/**
 * Redis servers (by URL) whose last best_effort batch failed every retry.
 * Until a batch to one succeeds again, best_effort batches to it get one
 * attempt and no backoff: a crawl whose Redis is down pays the retries once,
 * not at the end of every page's run (each run has its own writer, and its
 * end waits for the last batch's retries). Process-wide, in memory only.
 */
const failing = new Set<string>();

/** One run's writer. `push` queues; `close` sends what is queued (within the retries) and disconnects. */
export class StreamWriter {
  readonly #o: RedisSinkOptions;
  readonly #runId: string;
  readonly #partition: SinkPartition;
  readonly #target: string;
  readonly #report: (p: WriterProgress) => void;
  #queue: WireChunk[] = [];
  #sent = 0;
  #dropped = 0;
  #lastError: string | null = null;
  #failed: string | undefined;
  #loop: Promise<void> | undefined;
  #client: RespClient | undefined;
  /** Set when a best_effort writer's drain at close ran out of time: nothing more is sent, the rest is dropped (counted). */
  #giveUp = false;

  constructor(o: RedisSinkOptions, runId: string, partition: SinkPartition, target: string, report: (p: WriterProgress) => void) {
    this.#o = o;
    this.#runId = runId;
    this.#partition = partition;
    this.#target = target;
    this.#report = report;
    // Connect now, while the executor starts: a client loaded and connected only at the first event let
    // the first burst fill the queue (the paced run of bench/event-sink.mjs dropped 900 events that way).
    this.#loop = this.#connect().then(() => undefined, (err: Error) => {
      this.#lastError = err.message;
    }).finally(() => {
      this.#loop = undefined;
      if (this.#queue.length > 0 && this.#failed === undefined) this.#kick();
    });
  }

  push(chunk: WireChunk): void {
    if (this.#failed !== undefined) {
      // A failed mandatory sink sends nothing more; these are dropped and their room freed.
      this.#dropped += chunk.count;
      this.#progress(chunk.count);
      return;
    }
    this.#queue.push(chunk);
    this.#kick();
  }

  /** Starts the sending loop unless it runs; it restarts itself if events arrived as it ended. */
  #kick(): void {
    if (this.#loop !== undefined) return;
    this.#loop = this.#run().finally(() => {
      this.#loop = undefined;
      if (this.#queue.length > 0 && this.#failed === undefined) this.#kick();
    });
  }

  #progress(done: number): void {
    this.#report({ done, sent: this.#sent, dropped: this.#dropped, lastError: this.#lastError, ...(this.#failed !== undefined ? { failed: this.#failed } : {}) });
  }

  async #connect(): Promise<RespClient> {
    if (this.#client?.open === true) return this.#client;
    this.#client?.close();
    this.#client = undefined;
    const c = await RespClient.connect(this.#o.url, this.#o.timeoutMs);
    if (this.#giveUp) {
      c.close();
      throw new Error('the drain at close ran out of time');
    }
    this.#client = c;
    return c;
  }

  async #send(packed: Buffer): Promise<void> {
    const p = this.#partition;
    const c = await this.#connect();
    await c.eval(ADD_SCRIPT, [this.#o.streamKey, `${this.#o.streamKey}:seq`], [this.#runId, String(this.#o.maxLen), String(Math.max(0, Date.now() - this.#o.ttlMs)), String(Math.max(this.#o.ttlMs, 60_000)), p.source, p.category, p.dataset, packed]);
  }

  async #run(): Promise<void> {
    while (this.#queue.length > 0 && this.#failed === undefined) {
      // The chunks that fit in one call; a chunk of more than BATCH events is cut after its BATCH-th line.
      const first = this.#queue[0]!;
      if (first.count > BATCH) {
        let at = -1;
        for (let n = 0; n < BATCH; n++) at = first.bytes.indexOf(NL, at + 1);
        this.#queue.splice(0, 1, { bytes: first.bytes.subarray(0, at), count: BATCH }, { bytes: first.bytes.subarray(at + 1), count: first.count - BATCH });
      }
      let take = 0;
      let count = 0;
      while (take < this.#queue.length && (take === 0 || count + this.#queue[take]!.count <= BATCH)) count += this.#queue[take++]!.count;
      const packed = take === 1 ? this.#queue[0]!.bytes : Buffer.concat(this.#queue.slice(0, take).flatMap((c, k) => (k === 0 ? [c.bytes] : [NEWLINE, c.bytes])));
      let ok = false;
      const bestEffort = this.#o.delivery === 'best_effort';
      const retries = bestEffort && failing.has(this.#o.url) ? 0 : this.#o.retries;
      for (let n = 0; n <= retries && !ok && !this.#giveUp; n++) {
        try {
          await this.#send(packed);
          ok = true;
        } catch (err) {
          if (!this.#giveUp) this.#lastError = (err as Error).message;
          this.#client?.close();
          this.#client = undefined;
          if (n < retries && !this.#giveUp) await new Promise((r) => setTimeout(r, 100 * 2 ** n));
        }
      }
      this.#queue.splice(0, take);
      if (bestEffort && !this.#giveUp) {
        if (ok) failing.delete(this.#o.url);
        else failing.add(this.#o.url);
      }
      if (ok) {
        this.#sent += count;
        this.#progress(count);
        continue;
      }
      if (this.#o.delivery === 'mandatory') {
        this.#failed = `event sink redis ${this.#target}: a batch failed after ${this.#o.retries} retries (${this.#lastError}); delivery is mandatory`;
        const rest = this.#queue.reduce((n, c) => n + c.count, 0);
        this.#dropped += count + rest;
        this.#queue = [];
        this.#progress(count + rest);
        return;
      }
      this.#dropped += count;
      this.#progress(count);
    }
  }

  /**
   * Waits for the queue to be sent (or dropped), then disconnects. A
   * best_effort writer waits at most `drainMs`: then the call under way is
   * abandoned and what is still queued is dropped, all counted (the run's end
   * is not held by a slow or hung Redis). A mandatory one waits for every
   * batch to land or fail its retries. Never throws.
   */
  async close(drainMs = this.#o.timeoutMs): Promise<WriterProgress> {
    const deadline = this.#o.delivery === 'best_effort' && this.#loop !== undefined
      ? setTimeout(() => {
        this.#giveUp = true;
        this.#lastError = `the drain at close ran out of time after ${drainMs}ms (${this.#lastError ?? 'Redis was slower than the run'})`;
        this.#client?.close();
      }, drainMs)
      : undefined;
    while (this.#loop !== undefined) await this.#loop;
    clearTimeout(deadline);
    this.#client?.close();
    this.#client = undefined;
    return { done: 0, sent: this.#sent, dropped: this.#dropped, lastError: this.#lastError, ...(this.#failed !== undefined ? { failed: this.#failed } : {}) };
  }
}
