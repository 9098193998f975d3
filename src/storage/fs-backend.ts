/**
 * The filesystem storage backend (SPEC §7), the embedded default.
 *
 * Immutability without `rename()`: every object is written to a private
 * temporary file under `<root>/.quarry-tmp/`, fsynced, then published with
 * `link()` to its key. `link()` fails with EEXIST instead of replacing, so a
 * second create of a key changes nothing, and the link is atomic, so a reader
 * sees no file or the whole file. The temporary name is then unlinked and the
 * parent directory fsynced so the new name survives a crash.
 */
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, constants as fsc, fsync, linkSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { lstat, mkdir, open, readFile, readdir, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { assertValidKey, StorageError, type ListedObject, type ObjectInfo, type ObjectWriter, type StorageBackend, type StorageErrorCode } from './backend.js';
import { ownerTag } from '../runtime/owner-tag.js';
import { reachKillPoint } from '../runtime/kill-point.js';
import { isSegmentKey } from './layout.js';

/** Folder under the root that holds unpublished temporary files; never listed, never a key. */
export const FS_TMP_DIR = '.quarry-tmp';

const CODE_BY_ERRNO: Readonly<Record<string, StorageErrorCode>> = {
  ENOSPC: 'no_space',
  EDQUOT: 'no_space',
  EFBIG: 'no_space',
  EACCES: 'access_denied',
  EPERM: 'access_denied',
  EROFS: 'access_denied',
  EEXIST: 'exists',
  ENOENT: 'not_found',
  ENOTDIR: 'not_found',
  EISDIR: 'not_found',
};

const READ_OPERATIONS: ReadonlySet<string> = new Set(['get', 'read', 'stat']);

/**
 * Maps a Node fs error to a StorageError whose message names the operation and
 * the absolute path. Unknown errno values become `io`.
 */
export function fsStorageError(err: unknown, operation: string, absPath: string): StorageError {
  if (err instanceof StorageError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  let code = CODE_BY_ERRNO[errno] ?? 'io';
  // A missing path while writing (e.g. the temp folder was removed) is not a missing object.
  if (code === 'not_found' && !READ_OPERATIONS.has(operation)) code = 'io';
  const detail = (err as Error | undefined)?.message ?? String(err);
  const why: Record<StorageErrorCode, string> = {
    no_space: `no space left on the device (${errno})`,
    access_denied: `access denied (${errno}); check the permissions of the storage path`,
    exists: 'an object already exists at this key (nothing was replaced)',
    not_found: 'no such object',
    invalid_key: detail,
    unavailable: detail,
    io: detail,
  };
  return new StorageError(code, operation, absPath, why[code], { cause: err });
}

/** Code-point order, the same as the UTF-8 byte order S3 lists in, without allocating. */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

// UTF-16 surrogates (D800-DFFF) encode code points above FFFF, so they rank after E000-FFFF.
function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

/** Throws `invalid_key` unless `prefix` is '' or a key-like prefix (a trailing `/` allowed). */
function assertValidPrefix(prefix: string, operation: string): void {
  if (prefix === '') return;
  assertValidKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix, operation);
}

/** Filesystem backend rooted at an absolute directory. */
export class FsBackend implements StorageBackend {
  readonly kind = 'fs' as const;
  readonly location: string;
  readonly #tmpDir: string;

  private constructor(root: string) {
    this.location = root;
    this.#tmpDir = join(root, FS_TMP_DIR);
  }

  /**
   * Opens (and creates when missing) the storage root.
   * @throws StorageError `access_denied`, `no_space` or `io` naming the root.
   */
  static async create(root: string, options: { readOnly?: boolean } = {}): Promise<FsBackend> {
    const abs = resolve(root);
    const backend = new FsBackend(abs);
    // A read-only open creates nothing, so reading works on a read-only mount.
    if (options.readOnly) {
      backend.#readOnly = true;
      return backend;
    }
    try {
      await mkdir(backend.#tmpDir, { recursive: true });
    } catch (err) {
      throw fsStorageError(err, 'open', abs);
    }
    return backend;
  }

  #readOnly = false;

  #assertWritable(operation: string, key: string): void {
    if (this.#readOnly) throw new StorageError('access_denied', operation, key, 'storage was opened read-only');
  }

  /** Absolute path of a key. */
  #path(key: string, operation: string): string {
    assertValidKey(key, operation);
    if (key === FS_TMP_DIR || key.startsWith(`${FS_TMP_DIR}/`)) {
      throw new StorageError('invalid_key', operation, key, `keys under ${FS_TMP_DIR}/ are reserved for unpublished writes`);
    }
    return join(this.location, ...key.split('/'));
  }

  #tmpPath(): string {
    // `<pid>@<host>-…`: a run killed mid-write leaves a file the next `quarry run` can sweep (SPEC §5).
    return join(this.#tmpDir, `${ownerTag()}-${randomUUID()}.tmp`);
  }

  /**
   * Writes, syncs and publishes one object. The metadata calls (open, write
   * into the page cache, close, link, unlink) are synchronous: each takes
   * microseconds, less than the thread-pool round trip it would cost, and on
   * a loaded machine every round trip waits for the scheduler twice. Only
   * the two fsyncs (file, then folder), which wait for the disk, leave the
   * event loop (docs/benchmarks.md, "Emit throughput by wall clock").
   */
  async putNew(key: string, data: Uint8Array | string): Promise<ObjectInfo> {
    this.#assertWritable('put', key);
    const abs = this.#path(key, 'put');
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const tmp = this.#tmpPath();
    let fd: number | undefined;
    try {
      fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL);
      writeAllSync(fd, bytes);
      await fsyncFd(fd);
      closeSync(fd);
      fd = undefined;
      // Test-only: a crash with a whole segment written but not published (docs/contracts/run.md).
      if (isSegmentKey(key)) reachKillPoint('mid_segment');
      await publish(tmp, abs, this.location);
    } catch (err) {
      if (fd !== undefined) closeQuietly(fd);
      unlinkQuietly(tmp);
      throw fsStorageError(err, 'put', abs);
    }
    return { key, bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') };
  }

  /** Opens the temporary file synchronously, as `putNew` does: a run opens one per event type. */
  async openNew(key: string): Promise<ObjectWriter> {
    this.#assertWritable('open-write', key);
    const abs = this.#path(key, 'open-write');
    const tmp = this.#tmpPath();
    let fd: number;
    try {
      fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL);
    } catch (err) {
      throw fsStorageError(err, 'open-write', abs);
    }
    return new FsObjectWriter(key, abs, tmp, fd, this.location);
  }

  async get(key: string): Promise<Buffer> {
    const abs = this.#path(key, 'get');
    try {
      return await readFile(abs);
    } catch (err) {
      throw fsStorageError(err, 'get', abs);
    }
  }

  async *read(key: string): AsyncIterable<Buffer> {
    const abs = this.#path(key, 'read');
    let handle: FileHandle;
    try {
      handle = await open(abs, fsc.O_RDONLY);
    } catch (err) {
      throw fsStorageError(err, 'read', abs);
    }
    try {
      for await (const chunk of handle.createReadStream({ autoClose: false, highWaterMark: 256 * 1024 })) {
        yield chunk as Buffer;
      }
    } catch (err) {
      throw fsStorageError(err, 'read', abs);
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  async stat(key: string): Promise<ListedObject | undefined> {
    const abs = this.#path(key, 'stat');
    try {
      const s = await stat(abs);
      return s.isFile() ? { key, bytes: s.size } : undefined;
    } catch (err) {
      const errno = (err as NodeJS.ErrnoException).code;
      if (errno === 'ENOENT' || errno === 'ENOTDIR') return undefined;
      throw fsStorageError(err, 'stat', abs);
    }
  }

  async *list(prefix: string): AsyncIterable<ListedObject> {
    assertValidPrefix(prefix, 'list');
    const slash = prefix.lastIndexOf('/');
    yield* this.#walk(prefix.slice(0, slash + 1), prefix.slice(slash + 1));
  }

  /** Depth-first walk; children are sorted with a `/` after folder names so keys come out in full-key order. */
  async *#walk(dirKey: string, namePrefix: string): AsyncIterable<ListedObject> {
    const entries = await this.#readdir(dirKey, 'list');
    const children: Array<{ sortKey: string; name: string; dir: boolean }> = [];
    for (const e of entries) {
      if (!e.name.startsWith(namePrefix) || (dirKey === '' && e.name === FS_TMP_DIR)) continue;
      if (e.isDirectory()) children.push({ sortKey: `${e.name}/`, name: e.name, dir: true });
      else if (e.isFile()) children.push({ sortKey: e.name, name: e.name, dir: false });
    }
    children.sort((a, b) => compareKeys(a.sortKey, b.sortKey));
    for (const child of children) {
      const key = `${dirKey}${child.name}`;
      if (child.dir) {
        yield* this.#walk(`${key}/`, '');
        continue;
      }
      const abs = join(this.location, ...key.split('/'));
      try {
        const s = await lstat(abs);
        yield { key, bytes: s.size };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsStorageError(err, 'list', abs);
      }
    }
  }

  async #readdir(dirKey: string, operation: string): Promise<import('node:fs').Dirent[]> {
    const abs = dirKey === '' ? this.location : join(this.location, ...dirKey.slice(0, -1).split('/'));
    try {
      return await readdir(abs, { withFileTypes: true });
    } catch (err) {
      const errno = (err as NodeJS.ErrnoException).code;
      if (errno === 'ENOENT' || errno === 'ENOTDIR') return [];
      throw fsStorageError(err, operation, abs);
    }
  }

  /** One `readdir` of the folder: cheap even for 10k run folders. */
  async listFolders(prefix: string): Promise<string[]> {
    assertValidPrefix(prefix, 'list-folders');
    const slash = prefix.lastIndexOf('/');
    const dirKey = prefix.slice(0, slash + 1);
    const namePrefix = prefix.slice(slash + 1);
    const entries = await this.#readdir(dirKey, 'list-folders');
    const out: string[] = [];
    for (const e of entries) {
      if (!e.isDirectory() || !e.name.startsWith(namePrefix) || (dirKey === '' && e.name === FS_TMP_DIR)) continue;
      out.push(`${dirKey}${e.name}/`);
    }
    return out.sort(compareKeys);
  }

  async close(): Promise<void> {
    // No handles are held between calls.
  }
}

/** Streams into a temporary file; `commit` publishes it exactly like `putNew`. */
class FsObjectWriter implements ObjectWriter {
  readonly key: string;
  #bytes = 0;
  #state: 'open' | 'closing' | 'done' = 'open';
  #failed: StorageError | undefined;
  readonly #abs: string;
  readonly #tmp: string;
  /** The temporary file's descriptor; undefined once closed. */
  #fd: number | undefined;
  readonly #root: string;
  readonly #hash = createHash('sha256');

  constructor(key: string, abs: string, tmp: string, fd: number, root: string) {
    this.key = key;
    this.#abs = abs;
    this.#tmp = tmp;
    this.#fd = fd;
    this.#root = root;
  }

  #close(): void {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) closeQuietly(fd);
  }

  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Writes the chunk to the temporary file before returning (a synchronous
   * `write(2)` into the page cache, not synced). A thread-pool round trip
   * costs more than such a write, and on a loaded machine each one waits for
   * the scheduler twice: strict appends once per pipe read, so a million
   * events paid thousands of them (docs/benchmarks.md, "Emit throughput by
   * wall clock"). Writes land in call order without a chain.
   */
  write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(new StorageError('io', 'write', this.#abs, 'writer is already committed or aborted'));
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    try {
      writeAllSync(this.#fd!, chunk);
    } catch (err) {
      // The temp file may now hold part of the chunk: the writer can only be aborted.
      this.#failed = fsStorageError(err, 'write', this.#abs);
      return Promise.reject(this.#failed);
    }
    this.#hash.update(chunk);
    this.#bytes += chunk.byteLength;
    return Promise.resolve();
  }

  async commit(): Promise<ObjectInfo> {
    if (this.#state !== 'open') throw new StorageError('io', 'commit', this.#abs, 'writer is already committed or aborted');
    this.#state = 'closing';
    try {
      if (this.#failed !== undefined) throw this.#failed;
      await fsyncFd(this.#fd!);
      const fd = this.#fd!;
      this.#fd = undefined;
      closeSync(fd);
      await publish(this.#tmp, this.#abs, this.#root);
    } catch (err) {
      this.#close();
      unlinkQuietly(this.#tmp);
      this.#state = 'done';
      throw fsStorageError(err, 'commit', this.#abs);
    }
    this.#state = 'done';
    return { key: this.key, bytes: this.#bytes, sha256: this.#hash.digest('hex') };
  }

  async abort(): Promise<void> {
    if (this.#state === 'done') return;
    this.#state = 'done';
    this.#close();
    unlinkQuietly(this.#tmp);
  }
}

function writeAllSync(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.byteLength) off += writeSync(fd, data, off, data.byteLength - off);
}

/**
 * Publishes a synced temporary file under `abs` with `link()` (EEXIST leaves the
 * existing object untouched), removes the temporary name and fsyncs the
 * directories whose entries changed.
 */
async function publish(tmp: string, abs: string, root: string): Promise<void> {
  const dir = dirname(abs);
  let created: string | undefined;
  try {
    created = mkdirSync(dir, { recursive: true });
  } catch (err) {
    // EEXIST from mkdir means a parent segment is a file: the key itself does not exist, so this is not `exists`.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    throw Object.assign(new Error(`a parent of ${abs} is an object, not a folder`), { code: 'ENOTDIR', cause: err });
  }
  linkSync(tmp, abs);
  unlinkSync(tmp);
  const dirs = [dir];
  if (created !== undefined) {
    // New folders are entries of their parents: sync each parent up to the first pre-existing one.
    for (let d = dir; d !== dirname(created) && d.length > root.length && d.startsWith(root + sep); d = dirname(d)) dirs.push(dirname(d));
  }
  // The folders are independent: their fsyncs wait for the disk together.
  await Promise.all(dirs.map(syncDir));
}

/** A folder's fsync: the one running, and the one queued behind it. */
interface DirSync {
  running: Promise<void> | undefined;
  queued: Promise<void> | undefined;
}

/** Folder fsyncs in progress in this process, by path. */
const dirSyncs = new Map<string, DirSync>();

/**
 * Makes the entries already made in `dir` durable: resolves after an fsync of
 * `dir` that started after this call. Callers that change the same folder at
 * about the same time share fsyncs (concurrent runs publish claims into one
 * `runs/` folder and run folders into one day's folder): a caller joins the
 * fsync queued and not yet started, which will see its entry; when only one
 * is running (started before the caller's entry, maybe without it) the caller
 * queues the next. So a burst of N publishers costs at most two fsyncs of the
 * folder, never one that misses an entry.
 */
function syncDir(dir: string): Promise<void> {
  let s = dirSyncs.get(dir);
  if (s === undefined) {
    s = { running: undefined, queued: undefined };
    dirSyncs.set(dir, s);
  }
  if (s.queued !== undefined) return s.queued;
  const state = s;
  const start = (): Promise<void> => {
    const p = fsyncDirNow(dir).finally(() => {
      if (state.running === p) state.running = undefined;
      if (state.running === undefined && state.queued === undefined && dirSyncs.get(dir) === state) dirSyncs.delete(dir);
    });
    state.running = p;
    return p;
  };
  if (state.running === undefined) return start();
  const queued = state.running.catch(() => undefined).then(() => {
    state.queued = undefined;
    return start();
  });
  state.queued = queued;
  return queued;
}

async function fsyncDirNow(dir: string): Promise<void> {
  const fd = openSync(dir, fsc.O_RDONLY);
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsync(2) on the thread pool: the one call here that waits for the disk. */
function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Cleanup after a failure: the failure is what gets reported.
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // As above.
  }
}
