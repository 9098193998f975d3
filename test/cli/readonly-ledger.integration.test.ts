/**
 * Readers are read-only (SPEC §8, issue 9): read commands open the SQLite
 * ledger read-only and never migrate, so a user who cannot write the ledger
 * reads it while a writer holds it open; without a writer they get one line
 * saying what to do; and they never leave -wal/-shm files its owner cannot open.
 * Runs the CLI as unprivileged users (setpriv): root ignores permissions.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLedger } from '../../src/ledger/ledger.js';
import { runInput } from '../ledger/conformance.js';

const exec = promisify(execFile);
const CLI = resolve('dist/cli/main.js');
const READER = 65534;
const OWNER = 65533;
const asRoot = process.geteuid?.() === 0;

let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'quarry-ro-ledger-'));
  await chmod(tmp, 0o755);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A migrated ledger with one authoritative run, in its own folder, owned by `uid` (files 0644). */
async function makeLedger(name: string, uid: number, folderMode: number): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir);
  const file = join(dir, 'ledger.sqlite');
  const l = await openLedger(file);
  await l.recordRuns([runInput('quarry', 'run-ro-1')], new Date('2024-06-10T03:00:00Z'));
  await l.close();
  await chown(file, uid, uid);
  await chmod(file, 0o644);
  await chown(dir, uid, uid);
  await chmod(dir, folderMode);
  return file;
}

async function as(uid: number, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, ...args], { cwd: tmp, timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout: string; stderr: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout, stderr: e.stderr };
  }
}

const stateInspect = (file: string): string[] => [CLI, 'state', 'inspect', '--ledger', file, '--format', 'json'];

/** A writer holding the ledger open in WAL mode, as `uid`, until killed. Resolves once the connection is open. */
async function holdWriter(file: string, uid: number): Promise<ChildProcess> {
  const code = `const D = require('better-sqlite3'); const d = new D(${JSON.stringify(file)}); d.pragma('journal_mode = WAL'); d.prepare('SELECT count(*) FROM partition_state').get(); process.stdout.write('open\\n'); setInterval(() => {}, 1000);`;
  const child = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, '-e', code], { cwd: resolve('.'), stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((ok, fail) => {
    child.stdout!.once('data', () => ok());
    child.once('exit', (c) => fail(new Error(`writer exited ${c}`)));
  });
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await done;
}

/** The owner opens the ledger as a writer and takes the write lock: fails when a reader left files it cannot open. */
async function ownerCanWrite(file: string, uid: number): Promise<void> {
  const code = `const D = require('better-sqlite3'); const d = new D(${JSON.stringify(file)}); d.pragma('journal_mode = WAL'); d.exec('BEGIN IMMEDIATE'); d.prepare('SELECT count(*) FROM partition_state').get(); d.exec('COMMIT'); d.close();`;
  await exec('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, '-e', code], { cwd: resolve('.'), timeout: 30_000 });
}

async function filesOwnedBy(dir: string, uid: number): Promise<string[]> {
  const out: string[] = [];
  for (const f of await readdir(dir)) if ((await stat(join(dir, f))).uid === uid) out.push(f);
  return out;
}

describe.runIf(asRoot)('read commands open the SQLite ledger read-only', () => {
  it('(A) a user who cannot write the ledger or its folder reads it while a writer holds it open', async () => {
    const file = await makeLedger('a', 0, 0o755);
    const writer = await holdWriter(file, 0);
    try {
      const r = await as(READER, stateInspect(file));
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('run-ro-1');
    } finally {
      await stop(writer);
    }
    // Nothing migrated or switched by the reader: the ledger is unchanged and its owner writes it.
    await ownerCanWrite(file, 0);
  });

  it('(B) with no writer and an unwritable folder: one line naming the folder and what to do', async () => {
    const file = await makeLedger('b', 0, 0o755);
    const r = await as(READER, stateInspect(file));
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(join(tmp, 'b'));
    expect(lines[0]).toMatch(/grant this user write access to .*, or use a PostgreSQL ledger/);
    expect(await readdir(join(tmp, 'b'))).toEqual(['ledger.sqlite']);
  });

  it('(C) a reader never leaves -wal/-shm files that the ledger owner cannot open', async () => {
    // A folder anyone may write: the reader could create -wal/-shm there, owned by itself.
    const file = await makeLedger('c', OWNER, 0o777);
    const dir = join(tmp, 'c');
    // With the owner's writer running, the reader reads through the owner's files.
    const writer = await holdWriter(file, OWNER);
    try {
      const r = await as(READER, stateInspect(file));
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('run-ro-1');
    } finally {
      await stop(writer);
    }
    expect(await filesOwnedBy(dir, READER)).toEqual([]);
    await ownerCanWrite(file, OWNER);
    // With no writer, the reader refuses in one line rather than create files as another user.
    const r = await as(READER, stateInspect(file));
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(dir);
    expect(await filesOwnedBy(dir, READER)).toEqual([]);
    await ownerCanWrite(file, OWNER);
    // Every read command is a reader: read and export too.
    for (const args of [[CLI, 'read', '--ledger', file, '--source', 's', '--storage-path', dir], [CLI, 'inspect', 'run-ro-1', '--ledger', file, '--storage-path', dir]]) {
      await as(READER, args);
      expect(await filesOwnedBy(dir, READER)).toEqual([]);
    }
    await ownerCanWrite(file, OWNER);
  });

  it('a ledger older than this Quarry is refused by readers, not migrated', async () => {
    const file = await makeLedger('old', 0, 0o755);
    const D = (await import('better-sqlite3')).default;
    const db = new D(file);
    db.exec('DELETE FROM quarry_schema_migrations WHERE version = (SELECT MAX(version) FROM quarry_schema_migrations)');
    const before = (db.prepare('SELECT count(*) AS n FROM quarry_schema_migrations').get() as { n: number }).n;
    db.close();
    const r = await as(0, stateInspect(file));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/older than this Quarry's .*read commands never migrate/);
    const db2 = new D(file, { readonly: true });
    expect((db2.prepare('SELECT count(*) AS n FROM quarry_schema_migrations').get() as { n: number }).n).toBe(before);
    db2.close();
  });
});
