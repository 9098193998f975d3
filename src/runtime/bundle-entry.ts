/**
 * How the two entry points (`cli/main.ts`, `executor/main.ts`) load their
 * program. `npm run build` (scripts/bundle.mjs) turns each program into one
 * CommonJS file next to it (`program.cjs`): Node 20's ES module loader
 * resolves, reads and links every module on its own (~40 for a run), where
 * one CommonJS file is one read and one compile, and its npm packages load
 * with `require` only when the code that imports them first runs
 * (docs/benchmarks.md, "One run's fixed cost"). Without that file, or when it
 * is older than tsc's output (tsc ran again, the bundle did not), the
 * program loads as tsc's ES modules, as before: slower, never stale.
 *
 * The bundle is compiled with V8's code cache (Node 20 has no
 * `module.enableCompileCache`): the bytecode of what a command ran is kept in
 * `$TMPDIR/quarry-code-cache-<uid>/`, one file per bundle path, node version
 * and command, headed by the build it was made from (the bundle's inode,
 * size and times; another build's is not used), written at exit when missing
 * or rejected (and then caches not written for a week go). V8 rejects a cache
 * made for another V8 or flags; a cache that cannot be read or written is
 * only not used. Code read from a cache loses node's dynamic-import callback
 * in Node 20, so the bundle's `import()`s go through {@link IMPORT}
 * (scripts/bundle.mjs rewrites them).
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, type BigIntStats } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

/** The global a bundle's `import()`s call (scripts/bundle.mjs); an import from here resolves as one from the bundle (same package). */
const IMPORT = Symbol.for('quarry.import');

/**
 * Loads (and so runs) the program `./<name>` next to `entryUrl`: its bundle
 * when current (code-cached under `cacheTag`), else tsc's module.
 */
export async function runProgram(entryUrl: string, name: string, cacheTag: string): Promise<void> {
  const bundle = fileURLToPath(new URL(`./${name}.cjs`, entryUrl));
  const esm = new URL(`./${name}.js`, entryUrl);
  const st = currentBundle(bundle, fileURLToPath(esm));
  if (st) runBundle(bundle, st, cacheTag);
  else await import(esm.href);
}

function currentBundle(bundle: string, esm: string): BigIntStats | undefined {
  try {
    const st = statSync(bundle, { bigint: true });
    return st.mtimeNs >= statSync(esm, { bigint: true }).mtimeNs ? st : undefined;
  } catch {
    return undefined;
  }
}

function runBundle(file: string, st: BigIntStats, cacheTag: string): void {
  (globalThis as { [IMPORT]?: (specifier: string) => Promise<unknown> })[IMPORT] ??= (specifier: string) => import(specifier);
  const dir = cacheDir();
  // One file per bundle path, command and node: a new build replaces its cache instead of adding one.
  const cacheFile = dir && join(dir, `${cacheTag.replace(/[^a-z-]/g, '')}-${fnv1a(file)}-${process.version}-${process.arch}.bin`);
  // The build the cache was made from: a cache of another build is not used (V8 itself checks only the source's length).
  const identity = Buffer.from(`${st.dev}-${st.ino}-${st.size}-${st.mtimeNs}-${st.ctimeNs}\n`);
  const cached = cacheFile === undefined ? undefined : readCache(cacheFile, identity);
  const script = new Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file, ...(cached ? { cachedData: cached } : {}) });
  if (cacheFile !== undefined && (cached === undefined || script.cachedDataRejected === true)) {
    // At exit the cache holds what this command compiled, not only the top level.
    process.once('exit', () => writeCache(cacheFile, () => Buffer.concat([identity, script.createCachedData()])));
  }
  const module = new Module(file);
  module.filename = file;
  (script.runInThisContext() as (...args: unknown[]) => void).call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
}

/** A short name for a path (32-bit FNV-1a; a collision only makes two bundles take turns at one cache). */
export function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** Our own cache folder (mode 700, not a link, ours): bytecode from a folder others can write would run as ours. */
export function cacheDir(): string | undefined {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const dir = join(tmpdir(), `quarry-code-cache-${uid ?? 'user'}`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    return st.isDirectory() && (uid === undefined || st.uid === uid) && (st.mode & 0o022) === 0 ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** The cached bytecode when `file` was made from the build `identity` names. */
function readCache(file: string, identity: Buffer): Buffer | undefined {
  try {
    const data = readFileSync(file);
    return data.subarray(0, identity.length).equals(identity) ? data.subarray(identity.length) : undefined;
  } catch {
    return undefined;
  }
}

/** A cache not written for this long (a bundle since removed) is dropped when another is written. */
const CACHE_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

/**
 * Whole or not at all (a temporary file renamed), so a reader never takes
 * half a cache; caches of older builds (or of others left unused) go.
 */
export function writeCache(file: string, data: () => Buffer): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, data(), { mode: 0o600 });
    renameSync(tmp, file);
    const dir = dirname(file);
    const now = Date.now();
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (path !== file && now - statSync(path).mtimeMs > CACHE_MAX_AGE_MS) rmSync(path, { force: true });
    }
  } catch {
    // Only slower next time.
  }
}
