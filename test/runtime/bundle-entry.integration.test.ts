// The built entries load their bundled program with V8's code cache
// (src/runtime/bundle-entry.ts). What a user relies on: the cache is made on
// first use, a run from it does the same as one without it (including the
// `import()` of a script, which Node 20 loses in cached code unless routed), and
// a cache that is garbage, of another build or not ours is ignored, never fatal.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const EXECUTOR = join(REPO_ROOT, 'dist/executor/main.js');
let tmp: TempDir;
let script: string;

beforeAll(async () => {
  tmp = await makeTempDir('bundle-entry');
  script = join(tmp.path, 'ok.mjs');
  writeFileSync(script, 'export default async function run() {}\n');
});
afterAll(async () => {
  await tmp.remove();
});

/** `node <entry> args` with its own TMPDIR (where the code cache lives). */
function node(entry: string, args: string[], tmpdir: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [entry, ...args], { cwd: REPO_ROOT, env: { ...process.env, TMPDIR: tmpdir }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const cacheFiles = (tmpdir: string): string[] => {
  const dir = join(tmpdir, `quarry-code-cache-${process.getuid!()}`);
  return existsSync(dir) ? readdirSync(dir).map((f) => join(dir, f)) : [];
};

describe('the code cache of the bundled programs', () => {
  it('is made on first use and gives the same results when used', () => {
    const t = join(tmp.path, 'first');
    const fresh = node(CLI, ['version'], t);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(cacheFiles(t)).toHaveLength(1);
    const cached = node(CLI, ['version'], t);
    expect(cached).toEqual(fresh);
    // The executor imports the script from cached code.
    for (let i = 0; i < 2; i++) {
      const v = node(EXECUTOR, ['--validate', script], t);
      expect(v.code, v.stderr).toBe(0);
      expect(v.stderr).toContain('valid:');
    }
  });

  it('ignores a cache that is garbage', () => {
    const t = join(tmp.path, 'garbage');
    expect(node(EXECUTOR, ['--validate', script], t).code).toBe(0);
    for (const f of cacheFiles(t)) writeFileSync(f, 'not a code cache');
    const v = node(EXECUTOR, ['--validate', script], t);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).not.toMatch(/warning|error/i);
    // Rejected, it was made anew.
    for (const f of cacheFiles(t)) expect(readFileSync(f, 'utf8')).not.toBe('not a code cache');
  });

  it('does not use the cache of another build of the bundle', () => {
    const t = join(tmp.path, 'rebuilt');
    expect(node(EXECUTOR, ['--validate', script], t).code).toBe(0);
    const [file] = cacheFiles(t);
    const made = readFileSync(file!);
    // Used as it is while the bundle is the same.
    expect(node(EXECUTOR, ['--validate', script], t).code).toBe(0);
    expect(readFileSync(file!).equals(made)).toBe(true);
    // A rebuilt bundle (here: new times) has its cache made anew, in the same file.
    const bundle = join(REPO_ROOT, 'dist/executor/program.cjs');
    const later = new Date(statSync(bundle).mtimeMs + 1000);
    utimesSync(bundle, later, later);
    expect(node(EXECUTOR, ['--validate', script], t).code).toBe(0);
    expect(cacheFiles(t)).toEqual([file]);
    expect(readFileSync(file!).equals(made)).toBe(false);
  });

  it('does not use a cache folder others can write', () => {
    const t = join(tmp.path, 'shared');
    expect(node(CLI, ['version'], t).code).toBe(0);
    const [file] = cacheFiles(t);
    writeFileSync(file!, 'planted');
    chmodSync(join(t, `quarry-code-cache-${process.getuid!()}`), 0o777);
    const r = node(CLI, ['version'], t);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    // Neither read nor written: a planted file there would otherwise have been replaced.
    expect(readFileSync(file!, 'utf8')).toBe('planted');
  });
});
