/**
 * A PostgreSQL server for integration tests, on any machine: reuses one that
 * answers on 127.0.0.1:5432, starts the local cluster when it is stopped, and
 * installs the Debian package when there is none (a fresh machine). Each test
 * file then gets its own database ({@link createTestDatabase}), dropped after.
 *
 * `QUARRY_TEST_PG_URL` (a URL to an admin database) skips all of this.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const HOST = '127.0.0.1';
const PORT = 5432;
/** Password set on the `postgres` role only when this harness installed the server itself. */
const INSTALLED_PASSWORD = 'quarry-test';

const candidateUrls = (): string[] => [
  `postgres://postgres@${HOST}:${PORT}/postgres`,
  `postgres://postgres:${INSTALLED_PASSWORD}@${HOST}:${PORT}/postgres`,
];

async function canConnect(url: string): Promise<'ok' | 'auth' | 'down'> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return 'ok';
  } catch (err) {
    const code = (err as { code?: string }).code;
    // 28P01 bad password, 28000 no pg_hba entry / auth failed, 3D000 no such database.
    return code === '28P01' || code === '28000' || code === '3D000' ? 'auth' : 'down';
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function firstWorkingUrl(): Promise<{ url?: string; reachable: boolean }> {
  let reachable = false;
  for (const url of candidateUrls()) {
    const r = await canConnect(url);
    if (r === 'ok') return { url, reachable: true };
    if (r === 'auth') reachable = true;
  }
  return { reachable };
}

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: 'pipe', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 600_000 });
}

function clusters(): string[] {
  return existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql') : [];
}

function startClusters(): void {
  for (const version of clusters()) {
    try {
      run('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start']);
    } catch {
      // Already running, or another version's cluster: the connection check decides.
    }
  }
}

async function waitForServer(ms: number): Promise<{ url?: string; reachable: boolean }> {
  const until = Date.now() + ms;
  for (;;) {
    const r = await firstWorkingUrl();
    if (r.url !== undefined || Date.now() > until) return r;
    await new Promise((res) => setTimeout(res, 500));
  }
}

let cached: Promise<string> | undefined;

/**
 * A URL to the `postgres` database of a running server, as superuser.
 * Starts or installs PostgreSQL when needed (root, apt).
 * @throws Error saying what is missing when no server can be made to answer.
 */
export function ensurePostgres(): Promise<string> {
  cached ??= (async () => {
    const fromEnv = process.env.QUARRY_TEST_PG_URL;
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    let r = await firstWorkingUrl();
    if (r.url !== undefined) return r.url;
    if (!r.reachable) {
      let installed = false;
      if (clusters().length === 0) {
        run('apt-get', ['update']);
        run('apt-get', ['install', '-y', 'postgresql']);
        installed = true;
      }
      startClusters();
      r = await waitForServer(60_000);
      if (r.url === undefined && installed) {
        // A fresh Debian install authenticates TCP with scram: give the superuser a known test password.
        run('runuser', ['-u', 'postgres', '--', 'psql', '-c', `ALTER USER postgres PASSWORD '${INSTALLED_PASSWORD}'`]);
        r = await waitForServer(10_000);
      }
    }
    if (r.url === undefined) {
      throw new Error(`PostgreSQL on ${HOST}:${PORT} did not accept user postgres (trust or password ${INSTALLED_PASSWORD}); set QUARRY_TEST_PG_URL to an admin URL`);
    }
    return r.url;
  })();
  return cached;
}

/** A database of its own for one test file. */
export interface TestDatabase {
  url: string;
  name: string;
  /** Drops the database (closing other sessions on it). */
  drop(): Promise<void>;
}

/** Creates a uniquely named empty database on the server of {@link ensurePostgres}. */
export async function createTestDatabase(prefix = 'quarry_test'): Promise<TestDatabase> {
  const admin = await ensurePostgres();
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    async drop(): Promise<void> {
      const d = new pg.Client({ connectionString: admin });
      await d.connect();
      try {
        await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await d.end();
      }
    },
  };
}
