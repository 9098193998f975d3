import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, REPO_ROOT } from '../_harness/cli.js';

const hook = join(REPO_ROOT, 'test/fixtures/hooks/log-loads.mjs');
const HEAVY = ['puppeteer', '@aws-sdk', '/pg/', 'better-sqlite3', '@duckdb', 'ioredis', 'bullmq', 'msgpackr', 'tsx'];

function loads(args: string[]): { code: number | null; modules: string[]; stdout: string } {
  const r = spawnSync(process.execPath, ['--import', hook, CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, modules: r.stderr.split('\n').filter((l) => l.startsWith('LOAD ')).map((l) => l.slice(5)) };
}

describe('start-up stays light (heavy clients load only when a command needs them)', () => {
  for (const args of [['--help'], ['version'], ['run', '--help'], ['list', 'runs', '--help'], ['state', 'inspect', '--help']]) {
    it(`quarry ${args.join(' ')} loads no browser, S3, database or msgpack module`, () => {
      const r = loads(args);
      expect(r.code).toBe(0);
      expect(r.stdout.length).toBeGreaterThan(0);
      expect(r.modules.length).toBeGreaterThan(0);
      expect(r.modules.filter((m) => HEAVY.some((h) => m.includes(h)))).toEqual([]);
    });
  }
});

describe('a direct ctx.http request loads only the undici parts it uses', () => {
  it('GETs a local page without loading undici\'s entry (its every client, mock, cache and fetch module)', () => {
    const sdk = join(REPO_ROOT, 'dist/sdk/index.js');
    const child = `
      import { createServer } from 'node:http';
      import { createRequire } from 'node:module';
      const { createHttpClient } = await import(${JSON.stringify(sdk)});
      const server = createServer((_q, r) => r.end('hello')).listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      const http = createHttpClient();
      const text = await http.getText('http://127.0.0.1:' + server.address().port + '/');
      await http.close();
      server.close();
      const entry = createRequire(${JSON.stringify(sdk)}).resolve('undici');
      console.log(JSON.stringify({ text, entryLoaded: entry in createRequire(import.meta.url).cache }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', child], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ text: 'hello', entryLoaded: false });
  });
});
