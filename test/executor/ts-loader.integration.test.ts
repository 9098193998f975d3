// The executor's own TypeScript path (src/executor/ts-hooks.ts): ES-module .ts
// scripts compile through esbuild into a per-user cache keyed by content, so an
// unchanged script compiles nothing on its next run. No browser: every script
// here says options.browser = false.
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXECUTOR, events, runExecutor, runResult, tempDir } from '../_harness/executor-harness.js';
import { spawnSync } from 'node:child_process';
import { stripJsonComments } from '../../src/executor/ts-hooks.js';

let project: { dir: string; remove(): void };
let tmp: { dir: string; remove(): void };
beforeEach(() => {
  project = tempDir('quarry-tsproj-');
  tmp = tempDir('quarry-tstmp-');
  writeFileSync(join(project.dir, 'package.json'), '{ "type": "module" }\n');
});
afterEach(() => {
  project.remove();
  tmp.remove();
});

/** The executor's temporary folder is `tmp` (TMPDIR), so its compile cache is this test's own. */
const env = () => ({ TMPDIR: tmp.dir });
const cacheDir = () => join(tmp.dir, `quarry-ts-cache-${process.getuid!()}`);
const cacheEntries = () => readdirSync(cacheDir()).filter((n) => n.endsWith('.mjs')).sort();
const request = { run_id: 'run-ts', attempt: 1, job: { n: 2 } };

function write(name: string, text: string): string {
  const path = join(project.dir, name);
  writeFileSync(path, text);
  return path;
}

const MAIN = `import type { HttpContext, ScriptOptions } from 'quarry/sdk';
import { double } from './helper.js';

export const options: ScriptOptions = { browser: false };

export default async function run(ctx: HttpContext<{ n: number }>): Promise<void> {
  await ctx.emit.item({ item_type: 'n', data: { value: double(ctx.job.n) } });
}
`;

const items = (frames: Parameters<typeof events>[0]) => events(frames).filter((e) => e.type === 'item').map((e) => (e.payload as { data: unknown }).data);

describe('ES-module TypeScript through the executor hooks', () => {
  it('runs a .ts script whose ./helper.js import names helper.ts, and caches both compiled files by content', async () => {
    const main = write('main.ts', MAIN);
    write('helper.ts', 'export const double = (n: number): number => n * 2;\n');
    const first = await runExecutor(main, request, { env: env() });
    expect(first.stderr).toBe('');
    expect(items(first.frames)).toEqual([{ value: 4 }]);
    expect(cacheEntries()).toHaveLength(2);

    // Unchanged: the same entries serve the next run. Changed: a new entry, the new code runs.
    const again = await runExecutor(main, request, { env: env() });
    expect(items(again.frames)).toEqual([{ value: 4 }]);
    expect(cacheEntries()).toHaveLength(2);
    write('helper.ts', 'export const double = (n: number): number => n * 3;\n');
    const changed = await runExecutor(main, request, { env: env() });
    expect(items(changed.frames)).toEqual([{ value: 6 }]);
    expect(cacheEntries()).toHaveLength(3);
  });

  /** Runs a one-file script once (filling the cache), then edits its cache entry to emit `planted`. */
  async function cachedThenPlanted(planted: string): Promise<string> {
    const main = write('main.ts', MAIN.replace("import { double } from './helper.js';\n", '').replace('double(ctx.job.n)', 'ctx.job.n'));
    await runExecutor(main, request, { env: env() });
    const [entry] = cacheEntries();
    const path = join(cacheDir(), entry!);
    writeFileSync(path, readFileSync(path, 'utf8').replace('value: ctx.job.n', `value: ${JSON.stringify(planted)}`));
    return main;
  }

  it('loads an unchanged script from the cache, not the compiler (an entry edited in the cache is what runs)', async () => {
    const main = await cachedThenPlanted('from the cache');
    const run = await runExecutor(main, request, { env: env() });
    expect(items(run.frames)).toEqual([{ value: 'from the cache' }]);
  });

  it('does not use a cache folder that others can write (its entries would be code we run)', async () => {
    const main = await cachedThenPlanted('planted');
    chmodSync(cacheDir(), 0o777);
    const run = await runExecutor(main, request, { env: env() });
    expect(items(run.frames)).toEqual([{ value: 2 }]);
  });

  it('maps a thrown error stack to the .ts line', async () => {
    const main = write('boom.ts', `import type { HttpContext, ScriptOptions } from 'quarry/sdk';
export const options: ScriptOptions = { browser: false };
type Unused = { a: number };

export default async function run(_ctx: HttpContext): Promise<void> {
  throw new Error('boom at line six');
}
`);
    const run = await runExecutor(main, request, { env: env() });
    expect(run.code).toBe(1);
    const err = events(run.frames).find((e) => e.type === 'run_error');
    expect((err?.payload as { stack?: string }).stack).toContain(`${main}:6:`);
  });

  it('refuses a syntax error in one line naming the file, line and column', () => {
    const bad = write('bad.ts', 'export default async function run(ctx: any) {\n  const x = ;\n}\n');
    const r = spawnSync(process.execPath, [EXECUTOR, '--validate', bad], { encoding: 'utf8', env: { ...process.env, ...env() } });
    expect(r.status).toBe(3);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`failed to import: ${bad}:2:13: Unexpected ";"`);
  });

  it('hands a graph with a .cts import to tsx, which loads it whole', async () => {
    const main = write('main.ts', MAIN.replace("from './helper.js'", "from './helper.cjs'"));
    write('helper.cts', 'export const double = (n: number): number => n * 5;\n');
    const run = await runExecutor(main, request, { env: env() });
    expect(run.stderr).toBe('');
    expect(items(run.frames)).toEqual([{ value: 10 }]);
    expect(runResult(run.frames)?.outcome.status).toBe('completed');
  });
});

describe('stripJsonComments (tsconfig.json is JSON with comments)', () => {
  it('drops line and block comments and trailing commas, and keeps strings that look like them', () => {
    const text = `{
  // a comment
  "compilerOptions": { /* inline */ "jsx": "react", "paths": { "a/*": ["b//*"] }, },
  "s": "x, }", // trailing
}`;
    expect(JSON.parse(stripJsonComments(text))).toEqual({ compilerOptions: { jsx: 'react', paths: { 'a/*': ['b//*'] } }, s: 'x, }' });
  });
});
