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
