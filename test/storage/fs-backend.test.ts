import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/storage/backend.js';
import { compareKeys, FS_TMP_DIR, FsBackend, fsStorageError } from '../../src/storage/fs-backend.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

/** For `.then(unexpected, …)`: the call under test was expected to fail. */
const unexpected = (): never => {
  throw new Error('expected a StorageError, but the call succeeded');
};


let dir: TempDir;
beforeEach(async () => {
  dir = await makeTempDir('fs');
});
afterEach(async () => {
  await dir.remove();
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('fs backend: immutability by link()', () => {
  it('create makes a missing root, with its parents, and reports the absolute path as location', async () => {
    const root = join(dir.path, 'a', 'b', 'root');
    const b = await FsBackend.create(root);
    expect(b.location).toBe(root);
    expect((await stat(join(root, FS_TMP_DIR))).isDirectory()).toBe(true);
  });

  it('a file that already exists at the key (written by anyone) is never replaced, by putNew or by a writer', async () => {
    const b = await FsBackend.create(dir.path);
    const target = join(dir.path, 'run', '_manifest.json');
    await mkdir(join(dir.path, 'run'));
    await writeFile(target, 'pre-existing');
    const inode = (await stat(target)).ino;
    expect((await b.putNew('run/_manifest.json', 'new').then(unexpected, (e: unknown) => e as StorageError)).code).toBe('exists');
    const w = await b.openNew('run/_manifest.json');
    await w.write(Buffer.from('new too'));
    expect((await w.commit().then(unexpected, (e: unknown) => e as StorageError)).code).toBe('exists');
    expect(await readFile(target, 'utf8')).toBe('pre-existing');
    expect((await stat(target)).ino).toBe(inode);
  });

  it('the backend never imports rename', async () => {
    const src = await readFile(new URL('../../src/storage/fs-backend.ts', import.meta.url), 'utf8');
    const imports = src.split('\n').filter((l) => l.startsWith('import '));
    expect(imports.join('\n')).not.toMatch(/\brename\b/);
    const code = src.split('\n').filter((l) => !/^\s*(\*|\/\/|\/\*\*)/.test(l));
    expect(code.join('\n')).not.toMatch(/\brename(Sync)?\(/);
  });

  it('a published object has exactly one name: the temporary one is gone', async () => {
    const b = await FsBackend.create(dir.path);
    await b.putNew('x/y.json', '{}');
    const w = await b.openNew('x/z.bin');
    await w.write(Buffer.alloc(10));
    await w.commit();
    for (const k of ['x/y.json', 'x/z.bin']) expect((await stat(join(dir.path, k))).nlink).toBe(1);
    expect(await readdir(join(dir.path, FS_TMP_DIR))).toEqual([]);
  });

  it('leaves no temporary file behind after abort, a failed commit or a failed put', async () => {
    const b = await FsBackend.create(dir.path);
    await b.putNew('k', 'v');
    const w1 = await b.openNew('aborted');
    await w1.write(Buffer.from('x'));
    await w1.abort();
    const w2 = await b.openNew('k');
    await w2.write(Buffer.from('x'));
    await w2.commit().catch(() => undefined);
    await b.putNew('k', 'again').catch(() => undefined);
    expect(await readdir(join(dir.path, FS_TMP_DIR))).toEqual([]);
  });

  it('temporary files are never listed, and their folder is not a key', async () => {
    const b = await FsBackend.create(dir.path);
    await b.putNew('a/b', 'x');
    await writeFile(join(dir.path, FS_TMP_DIR, 'stale-from-a-crash.tmp'), 'partial');
    expect((await collect(b.list(''))).map((o) => o.key)).toEqual(['a/b']);
    expect(await b.listFolders('')).toEqual(['a/']);
    for (const key of [FS_TMP_DIR, `${FS_TMP_DIR}/stale-from-a-crash.tmp`]) {
      expect((await b.get(key).then(unexpected, (e: unknown) => e as StorageError)).code).toBe('invalid_key');
      expect((await b.putNew(key, 'x').then(unexpected, (e: unknown) => e as StorageError)).code).toBe('invalid_key');
    }
  });

  it('a key below an existing object fails as io, naming the path, and publishes nothing', async () => {
    const b = await FsBackend.create(dir.path);
    await b.putNew('obj', 'x');
    const err = await b.putNew('obj/child', 'y').then(unexpected, (e: unknown) => e as StorageError);
    expect(err).toBeInstanceOf(StorageError);
    expect(err.code).toBe('io');
    expect(err.message).toContain(join(dir.path, 'obj', 'child'));
    expect(await readdir(join(dir.path, FS_TMP_DIR))).toEqual([]);
  });
});

describe('fs backend: listing', () => {
  it('listFolders lists 10k run folders, sorted', async () => {
    const base = join(dir.path, 'datasets', 'q', 'partitions', 'source=s', 'category=c', 'day=2024-01-01');
    await mkdir(base, { recursive: true });
    for (let i = 0; i < 10_000; i += 500) await Promise.all(Array.from({ length: 500 }, (_, j) => mkdir(join(base, `run_id=${String(i + j).padStart(5, '0')}`))));
    const b = await FsBackend.create(dir.path);
    const folders = await b.listFolders('datasets/q/partitions/source=s/category=c/day=2024-01-01/');
    expect(folders).toHaveLength(10_000);
    expect(folders[0]).toBe('datasets/q/partitions/source=s/category=c/day=2024-01-01/run_id=00000/');
    expect(folders[9_999]).toMatch(/run_id=09999\/$/);
  });

  it('a prefix that is not a folder filters names inside its parent folder', async () => {
    const b = await FsBackend.create(dir.path);
    for (const k of ['p/run_id=a1/x', 'p/run_id=a2/y', 'p/run_id=b1/z', 'p/other']) await b.putNew(k, 'v');
    expect(await b.listFolders('p/run_id=a')).toEqual(['p/run_id=a1/', 'p/run_id=a2/']);
    expect((await collect(b.list('p/run_id=a'))).map((o) => o.key)).toEqual(['p/run_id=a1/x', 'p/run_id=a2/y']);
  });

  it('compareKeys orders by code point, as S3 orders by UTF-8 bytes', () => {
    const keys = ['b', 'a/', 'a-', '\u{1F600}', '\uFF21', 'é', 'A'];
    const bytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect([...keys].sort(compareKeys)).toEqual(bytes);
  });
});

describe('fs backend: error mapping', () => {
  const abs = '/data/quarry/datasets/x/_manifest.json';
  const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: failed`), { code });

  it.each([
    ['ENOSPC', 'put', 'no_space'],
    ['EDQUOT', 'commit', 'no_space'],
    ['EACCES', 'put', 'access_denied'],
    ['EPERM', 'commit', 'access_denied'],
    ['EROFS', 'put', 'access_denied'],
    ['EEXIST', 'put', 'exists'],
    ['ENOENT', 'get', 'not_found'],
    ['ENOENT', 'read', 'not_found'],
    ['ENOENT', 'put', 'io'],
    ['EIO', 'get', 'io'],
  ])('%s during %s is %s, and the message names the operation and the absolute path', (code, op, expected) => {
    const e = fsStorageError(errno(code), op, abs);
    expect(e).toBeInstanceOf(StorageError);
    expect(e.code).toBe(expected);
    expect(e.operation).toBe(op);
    expect(e.message).toContain(`storage ${op} ${abs}:`);
    expect(e.cause).toBeInstanceOf(Error);
  });
});

/** Real ENOSPC, EROFS and EPERM need mounts or chattr: run where we are root and may mount, skip elsewhere. */
function can(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const isRoot = process.getuid?.() === 0;
const probe = await makeTempDir('mount-probe');
const canMount = isRoot && can('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe.path]) && can('umount', [probe.path]);
await probe.remove();

describe.skipIf(!canMount)('fs backend: real device errors (tmpfs mounts)', () => {
  let mnt: string;
  beforeEach(async () => {
    mnt = join(dir.path, 'mnt');
    await mkdir(mnt);
  });
  afterEach(() => {
    can('umount', [mnt]);
  });

  it('a full device is no_space naming the path, and nothing is published', async () => {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
    const b = await FsBackend.create(mnt);
    const err = await b.putNew('big.bin', Buffer.alloc(1024 * 1024, 1)).then(unexpected, (e: unknown) => e as StorageError);
    expect(err.code).toBe('no_space');
    expect(err.message).toContain(join(mnt, 'big.bin'));
    expect(await b.stat('big.bin')).toBeUndefined();
    expect(await readdir(join(mnt, FS_TMP_DIR))).toEqual([]);
    // A caller that ignores a failed write cannot commit the partial file.
    const w = await b.openNew('streamed.bin');
    const writeErrors: StorageError[] = [];
    for (let i = 0; i < 8; i++) await w.write(Buffer.alloc(64 * 1024, 2)).catch((e: StorageError) => writeErrors.push(e));
    expect(writeErrors.length).toBeGreaterThan(0);
    expect(writeErrors[0]!.code).toBe('no_space');
    const cerr = await w.commit().then(unexpected, (e: unknown) => e as StorageError);
    expect(cerr.code).toBe('no_space');
    await w.abort();
    expect(await collect(b.list(''))).toEqual([]);
    expect(await readdir(join(mnt, FS_TMP_DIR))).toEqual([]);
  });

  it('a read-only device is access_denied; reads still work', async () => {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
    const b = await FsBackend.create(mnt);
    await b.putNew('kept.json', '{}');
    execFileSync('mount', ['-o', 'remount,ro', mnt]);
    const err = await b.putNew('new.json', '{}').then(unexpected, (e: unknown) => e as StorageError);
    expect(err.code).toBe('access_denied');
    expect(err.message).toMatch(/access denied \(EROFS\)/);
    expect((await b.get('kept.json')).toString()).toBe('{}');
  });
});

const canChattr = isRoot && (await (async () => {
  const t = await makeTempDir('chattr-probe');
  const ok = can('chattr', ['+i', t.path]) && can('chattr', ['-i', t.path]);
  await t.remove();
  return ok;
})());

describe.skipIf(!canChattr)('fs backend: permission errors (chattr +i, which binds root too)', () => {
  it('an immutable folder makes a put access_denied (EPERM) naming the path', async () => {
    const b = await FsBackend.create(dir.path);
    await b.putNew('locked/first', 'x');
    execFileSync('chattr', ['+i', join(dir.path, 'locked')]);
    try {
      const err = await b.putNew('locked/second', 'y').then(unexpected, (e: unknown) => e as StorageError);
      expect(err.code).toBe('access_denied');
      expect(err.message).toContain(join(dir.path, 'locked', 'second'));
      expect(await readdir(join(dir.path, FS_TMP_DIR))).toEqual([]);
    } finally {
      execFileSync('chattr', ['-i', join(dir.path, 'locked')]);
    }
  });
});

describe('fs backend: read-only open', () => {
  it('creates nothing and refuses every write', async () => {
    const ro = await FsBackend.create(join(dir.path, 'never-made'), { readOnly: true });
    await expect(readdir(join(dir.path, 'never-made'))).rejects.toThrow(/ENOENT/);
    await expect(ro.putNew('a/b', 'x')).rejects.toMatchObject({ code: 'access_denied' });
    await expect(ro.openNew('a/b')).rejects.toMatchObject({ code: 'access_denied' });
    await ro.close();
  });
});
