/**
 * A StorageBackend wrapper for failure tests (SPEC §6 failed flushes): fails
 * the Nth write with a chosen StorageError code (once, or from N on), delays
 * every write (a slow backend), and counts writes and bytes per key so a test
 * can see what a retry rewrote; it also counts reads per key.
 *
 * A "write" is a `putNew` call or an `ObjectWriter.commit()` call; `openNew`
 * and `ObjectWriter.write()` are not counted (they publish nothing). A failed
 * write publishes nothing (the inner writer is aborted), unless the fault is
 * `after`: then the write is done and reported failed.
 */
import { fsStorageError } from '../../src/storage/fs-backend.js';
import { StorageError, type ListedObject, type ObjectInfo, type ObjectWriter, type StorageBackend, type StorageErrorCode } from '../../src/storage/backend.js';

export interface FaultPlan {
  /** 1-based index of the (matching) write that fails. */
  failAt: number;
  /** Error code of the injected failure (default `io`). */
  code?: StorageErrorCode;
  /**
   * Fail as the fs backend does when the OS returns this errno (`ENOSPC`,
   * `EACCES` …): the same StorageError code and message, with a Node errno
   * error as its cause. Overrides `code`.
   */
  errno?: string;
  /** `once`: only write N fails; `from`: write N and every later one fails (default `once`). */
  mode?: 'once' | 'from';
  /** Only writes whose key this accepts count toward N and can fail (default: all). */
  match?: (key: string) => boolean;
  /**
   * The failing write takes effect first and the failure is reported after it:
   * an S3 response lost on the way back, an fs error after `link()`. The object is published.
   */
  after?: boolean;
  /**
   * What counts as a write for this plan: `publish` (default) a `putNew` or a
   * `commit`; `append` an `ObjectWriter.write()` (a strict segment's append),
   * which then fails without reaching the inner writer.
   */
  on?: 'publish' | 'append';
}

export interface FaultyBackendOptions {
  fault?: FaultPlan;
  /** Delay before every write, in ms. */
  delayMs?: number;
}

export interface KeyWriteStats {
  /** Write calls for the key (putNew or commit), failed ones included. */
  attempts: number;
  /** Write calls that published the object. */
  published: number;
  /** Write calls that failed (injected or from the inner backend). */
  failed: number;
  /** Bytes of every attempt, failed ones included: what a retry cost. */
  bytesAttempted: number;
}

export class FaultyBackend implements StorageBackend {
  readonly kind: StorageBackend['kind'];
  readonly location: string;
  readonly inner: StorageBackend;
  /** Per key, in first-write order. */
  readonly writes = new Map<string, KeyWriteStats>();
  /** `get` and `read` calls per key (reads are never faulted or delayed). */
  readonly reads = new Map<string, number>();
  /** Every write in call order: key and outcome. */
  readonly log: Array<{ key: string; ok: boolean; bytes: number; code?: StorageErrorCode }> = [];
  #fault: FaultPlan | undefined;
  #matching = 0;
  #delayMs: number;

  constructor(inner: StorageBackend, options: FaultyBackendOptions = {}) {
    this.inner = inner;
    this.kind = inner.kind;
    this.location = inner.location;
    this.#fault = options.fault;
    this.#delayMs = options.delayMs ?? 0;
  }

  /** Replaces the fault plan and restarts its count (undefined: no more faults). */
  setFault(fault: FaultPlan | undefined): void {
    this.#fault = fault;
    this.#matching = 0;
  }

  setDelay(ms: number): void {
    this.#delayMs = ms;
  }

  /** Total write calls, failed ones included. */
  get writeCount(): number {
    return this.log.length;
  }

  /** Keys written more than once (a retry rewrote them). */
  rewrittenKeys(): string[] {
    return [...this.writes].filter(([, s]) => s.attempts > 1).map(([k]) => k);
  }

  /** Appends (`ObjectWriter.write()`) seen, and the ones failed on purpose. */
  readonly appends = { calls: 0, failed: 0 };

  /** Decides, before the inner write, whether this write fails. */
  #injected(key: string, operation: string, kind: 'publish' | 'append' = 'publish'): StorageError | undefined {
    const f = this.#fault;
    if (f === undefined || (f.on ?? 'publish') !== kind || (f.match !== undefined && !f.match(key))) return undefined;
    const n = ++this.#matching;
    const hit = (f.mode ?? 'once') === 'once' ? n === f.failAt : n >= f.failAt;
    if (!hit) return undefined;
    if (f.errno !== undefined) {
      const cause = Object.assign(new Error(`${f.errno}: injected, ${operation} '${key}'`), { code: f.errno, errno: -1, syscall: 'write' });
      return fsStorageError(cause, operation, `${this.location}/${key}`);
    }
    return new StorageError(f.code ?? 'io', operation, key, `injected fault on write ${n}`);
  }

  #record(key: string, bytes: number, ok: boolean, code?: StorageErrorCode): void {
    const s = this.writes.get(key) ?? { attempts: 0, published: 0, failed: 0, bytesAttempted: 0 };
    s.attempts++;
    s.bytesAttempted += bytes;
    if (ok) s.published++;
    else s.failed++;
    this.writes.set(key, s);
    this.log.push(code === undefined ? { key, ok, bytes } : { key, ok, bytes, code });
  }

  async #delay(): Promise<void> {
    if (this.#delayMs > 0) await new Promise((r) => setTimeout(r, this.#delayMs));
  }

  /** Runs one counted write: delay, maybe fail, else the inner write. */
  async #counted(key: string, bytes: number, operation: string, write: () => Promise<ObjectInfo>, onInjected?: () => Promise<void>): Promise<ObjectInfo> {
    await this.#delay();
    const injected = this.#injected(key, operation);
    if (injected !== undefined && this.#fault?.after === true) {
      await write();
      this.#record(key, bytes, false, injected.code);
      throw injected;
    }
    if (injected !== undefined) {
      await onInjected?.();
      this.#record(key, bytes, false, injected.code);
      throw injected;
    }
    try {
      const info = await write();
      this.#record(key, bytes, true);
      return info;
    } catch (err) {
      this.#record(key, bytes, false, err instanceof StorageError ? err.code : 'io');
      throw err;
    }
  }

  putNew(key: string, data: Uint8Array | string): Promise<ObjectInfo> {
    const bytes = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    return this.#counted(key, bytes, 'put', () => this.inner.putNew(key, data));
  }

  async openNew(key: string): Promise<ObjectWriter> {
    const w = await this.inner.openNew(key);
    return {
      key,
      get bytes() {
        return w.bytes;
      },
      write: (chunk) => {
        this.appends.calls++;
        const injected = this.#injected(key, 'write', 'append');
        if (injected === undefined) return w.write(chunk);
        this.appends.failed++;
        return Promise.reject(injected);
      },
      commit: () => this.#counted(key, w.bytes, 'commit', () => w.commit(), () => w.abort()),
      abort: () => w.abort(),
    };
  }

  /** Total `get` and `read` calls. */
  get readCount(): number {
    let n = 0;
    for (const c of this.reads.values()) n += c;
    return n;
  }

  get(key: string): Promise<Buffer> {
    this.reads.set(key, (this.reads.get(key) ?? 0) + 1);
    return this.inner.get(key);
  }

  read(key: string): AsyncIterable<Buffer> {
    this.reads.set(key, (this.reads.get(key) ?? 0) + 1);
    return this.inner.read(key);
  }

  stat(key: string): Promise<ListedObject | undefined> {
    return this.inner.stat(key);
  }

  list(prefix: string): AsyncIterable<ListedObject> {
    return this.inner.list(prefix);
  }

  listFolders(prefix: string): Promise<string[]> {
    return this.inner.listFolders(prefix);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
