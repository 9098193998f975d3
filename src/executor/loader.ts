/**
 * Loads a user script (SPEC §2): `.js`/`.mjs`/`.cjs` through `import()`;
 * TypeScript with no build step: `.mts`, and `.ts` in an ES module scope,
 * through this executor's own hooks (ts-hooks.ts: esbuild's transform, output
 * cached by content hash, so an unchanged script loads without a compiler);
 * `.cts` and `.ts` in a CommonJS scope through tsx's `tsImport`. Checks the
 * shape: the default export is a function, every hook export present is a
 * function, and `options` (SPEC §13) is an object of known keys and types.
 * Never starts a browser, so `--validate` can use it alone.
 */
import { existsSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import * as nodeModule from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HOOK_NAMES, type QuarryHooks, type QuarryScript } from '../sdk/index.js';
import { describeValue, parseScriptOptions, type ResolvedScriptOptions } from './script-options.js';
import { cachedStandalone, inModuleScope, type TsHooksData } from './ts-hooks.js';

/** The script cannot be used; the executor exits 3. */
export class ScriptLoadError extends Error {
  override readonly name = 'ScriptLoadError';
  constructor(
    readonly path: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${reason}`, options);
  }
}

/** A loaded, checked script. */
export interface LoadedScript {
  /** Absolute path. */
  readonly path: string;
  readonly run: QuarryScript;
  readonly hooks: QuarryHooks;
  /** The `options` export with defaults filled in. */
  readonly options: ResolvedScriptOptions;
}

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts']);
const JS_EXTENSIONS = new Set(['.js', '.mjs', '.cjs']);

/** The SDK names a script may import; both resolve to this executor's own SDK build. */
export const SDK_SPECIFIERS = ['quarry/sdk', '@pithecene-io/quarry-sdk'] as const;

let hooksRegistered = false;

/** Where compiled TypeScript is cached: per user, under the temporary folder (ts-hooks.ts checks it is ours alone). */
function tsCacheDir(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return join(tmpdir(), `quarry-ts-cache-${uid}`);
}

/** esbuild as tsx resolves it (tsx depends on it), with its version for the cache key. */
function locateEsbuild(): { url: string; version: string } {
  const tsxPkg = nodeModule.createRequire(import.meta.url).resolve('tsx/package.json');
  const fromTsx = nodeModule.createRequire(tsxPkg);
  const pkgPath = fromTsx.resolve('esbuild/package.json');
  const version = (JSON.parse(readFileSync(pkgPath, 'utf8')) as { version?: unknown }).version;
  return { url: pathToFileURL(fromTsx.resolve('esbuild')).href, version: typeof version === 'string' ? version : 'unknown' };
}

/**
 * Registers ts-hooks.ts in Node's loader thread: the SDK names map to this
 * package's SDK, so a script anywhere on disk can import values from it, as
 * with the original package; with `typescript`, ES-module TypeScript loads too.
 */
function registerHooks(typescript: boolean): void {
  if (hooksRegistered) return;
  hooksRegistered = true;
  // module.register exists from Node 20.6; before that, value imports resolve only where the package is installed.
  const register = (nodeModule as Partial<typeof nodeModule>).register;
  if (typeof register !== 'function') return;
  let esbuild = { url: '', version: '' };
  if (typescript) {
    try {
      esbuild = locateEsbuild();
    } catch {
      // no esbuild beside tsx: every TypeScript script goes through tsx
    }
  }
  const data: TsHooksData = {
    sdkUrl: new URL('../sdk/index.js', import.meta.url).href,
    sdkSpecifiers: SDK_SPECIFIERS,
    cacheDir: tsCacheDir(),
    esbuildUrl: esbuild.url,
    esbuildVersion: esbuild.version,
  };
  register(new URL('./ts-hooks.js', import.meta.url), import.meta.url, { data });
  ownHooksLoadTs = esbuild.url !== '';
}

/**
 * Registers the module hooks `loadScript(scriptPath)` needs, so Node's loader
 * thread starts while the executor still waits for its request. Loads nothing
 * of the script.
 */
export function prepareLoader(scriptPath: string): void {
  const ext = extname(scriptPath);
  if (ext === '.ts' || ext === '.mts') {
    // A compiled script that imports nothing needs no hooks thread (its start is a second node
    // environment's): look for it first, and start the thread only when it is not there.
    prepared = { path: resolve(scriptPath), standalone: standaloneScript(resolve(scriptPath)) };
    void prepared.standalone.then((found) => {
      if (found === undefined) registerHooks(true);
    });
    return;
  }
  if (TS_EXTENSIONS.has(ext)) registerHooks(true);
  else if (JS_EXTENSIONS.has(ext) && mayNameSdk(resolve(scriptPath))) registerHooks(false);
}

/** How a source file names the SDK, in an import or anywhere else. */
const SDK_MENTION = /quarry\/sdk|@pithecene-io\/quarry-sdk/;
/** `from '…'`, `import '…'`, `import('…')`, `require('…')`: the specifier in group 2. */
const LITERAL_SPECIFIER = /\b(?:from|import|require)\s*\(?\s*(['"])([^'"\n]+)\1/g;
/** `import(x)` or `require(x)` of something other than a string literal: where it leads cannot be read off. */
const COMPUTED_SPECIFIER = /\b(?:import|require)\s*\(\s*[^'"\s)]/;
/** Files a scan follows before it gives up and assumes the SDK is named. */
const SCAN_LIMIT = 200;

/**
 * Whether a JavaScript script, or a file it imports by a relative path
 * (followed to any depth), may name the SDK: only then does it need the
 * module-hooks thread (ts-hooks.ts maps the SDK names), whose start is a
 * second node environment and through which every later import would
 * resolve, across threads. Packages (bare specifiers) are not read: they
 * resolve from node_modules as they always do. A computed `import(x)`, an
 * absolute, `file:` or `#` specifier, an unreadable file or a graph larger
 * than {@link SCAN_LIMIT} files counts as naming it, so the hooks are there
 * whenever they might be needed.
 */
export function mayNameSdk(entry: string): boolean {
  const seen = new Set<string>([entry]);
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop()!;
    let source: string;
    try {
      source = readFileSync(file, 'utf8');
    } catch {
      return true;
    }
    if (SDK_MENTION.test(source) || COMPUTED_SPECIFIER.test(source)) return true;
    for (const m of source.matchAll(LITERAL_SPECIFIER)) {
      const spec = m[2]!.replace(/[?#].*$/, '');
      if (spec.startsWith('node:')) continue;
      if (!spec.startsWith('./') && !spec.startsWith('../')) {
        if (isAbsolute(spec) || spec.startsWith('file:') || m[2]!.startsWith('#')) return true;
        continue;
      }
      const target = localFile(resolve(dirname(file), spec));
      if (target === undefined) continue; // not JavaScript (JSON, TypeScript) or missing: import() reports it
      if (seen.has(target)) continue;
      if (seen.size >= SCAN_LIMIT) return true;
      seen.add(target);
      todo.push(target);
    }
  }
  return false;
}

/** The JavaScript file a relative specifier names (as written, or as `require` completes it), if any. */
function localFile(path: string): string | undefined {
  for (const candidate of [path, `${path}.js`, `${path}.cjs`, `${path}.mjs`, join(path, 'index.js')]) {
    if (JS_EXTENSIONS.has(extname(candidate)) && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** What prepareLoader found for the script before the request came. */
let prepared: { path: string; standalone: Promise<string | undefined> } | undefined;

/** The cached, import-free compiled output of an ES-module TypeScript script (ts-hooks.ts `cachedStandalone`), or undefined. */
async function standaloneScript(path: string): Promise<string | undefined> {
  if (hooksRegistered) return undefined;
  let version: string;
  try {
    version = locateEsbuild().version;
  } catch {
    return undefined;
  }
  return cachedStandalone(path, { cacheDir: tsCacheDir(), esbuildVersion: version }).catch(() => undefined);
}

/** Whether ts-hooks.ts compiles ES-module TypeScript in this process. */
let ownHooksLoadTs = false;

/** Imports a TypeScript script: ES-module ones through our hooks, the rest (and any graph our hooks cannot load) through tsx. */
async function importTypeScript(path: string, url: string): Promise<Record<string, unknown>> {
  if (url.includes('?')) {
    // A fresh evaluation (run slots): tsx compiles CommonJS-scope TypeScript into require's cache.
    delete requireCache()[path];
  }
  const ext = extname(path);
  const esm = ext === '.mts' || (ext === '.ts' && (await inModuleScope(dirname(path))));
  if (esm && ownHooksLoadTs) {
    // Stack traces point into the .ts source (the compiled output carries an inline source map), as under tsx.
    process.setSourceMapsEnabled(true);
    try {
      return (await import(url)) as Record<string, unknown>;
    } catch (err) {
      // A .cts or CommonJS-scope .ts among its imports (or a spelling only tsx resolves, like ./x.cjs for x.cts):
      // nothing of the graph has run yet, so tsx can load it whole.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ERR_UNKNOWN_FILE_EXTENSION' && code !== 'ERR_MODULE_NOT_FOUND') throw err;
    }
  }
  const { tsImport } = await import('tsx/esm/api');
  return (await tsImport(url, import.meta.url)) as Record<string, unknown>;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/**
 * The exports of a module namespace. A TypeScript script in a CommonJS scope
 * (no `"type": "module"`) is compiled to CommonJS, and its exports then sit on
 * the namespace's `default` object.
 */
function exportsOf(ns: Record<string, unknown>): Record<string, unknown> {
  const d = ns.default;
  if (typeof d !== 'function' && isObj(d) && ('__esModule' in d || 'default' in d)) return d;
  return ns;
}

let cjsCache: NodeJS.Dict<NodeJS.Module> | undefined;
const requireCache = (): NodeJS.Dict<NodeJS.Module> => (cjsCache ??= nodeModule.createRequire(import.meta.url).cache);

export interface LoadOptions {
  /**
   * Evaluate the script's own module afresh even if this process loaded it
   * before (a run slot's later runs, SPEC §10): its URL gets the query
   * `?quarry-run=<fresh>`, and a CommonJS copy leaves require's cache first.
   * Modules it imports are shared, as the ESM cache keeps them.
   */
  readonly fresh?: number;
}

/**
 * Imports and checks a script.
 * @throws ScriptLoadError when the file is missing, has an unsupported
 *   extension, fails to import, or has a wrong default or hook export.
 */
export async function loadScript(scriptPath: string, options: LoadOptions = {}): Promise<LoadedScript> {
  const path = resolve(scriptPath);
  const ext = extname(path);
  if (!TS_EXTENSIONS.has(ext) && !JS_EXTENSIONS.has(ext)) {
    throw new ScriptLoadError(path, `unsupported extension ${JSON.stringify(ext)}; use .ts, .mts, .cts, .js, .mjs or .cjs`);
  }
  try {
    if (!(await stat(path)).isFile()) throw new ScriptLoadError(path, 'is not a file');
  } catch (err) {
    if (err instanceof ScriptLoadError) throw err;
    throw new ScriptLoadError(path, 'script not found', { cause: err });
  }
  // Looked up again now the run is here: the script may have changed since prepareLoader.
  if (prepared?.path === path) await prepared.standalone;
  const standalone = ext === '.ts' || ext === '.mts' ? await standaloneScript(path) : undefined;
  // A JavaScript graph that never names the SDK loads without the hooks thread (looked at each run: the script may have changed).
  if (standalone === undefined && (TS_EXTENSIONS.has(ext) || (!hooksRegistered && mayNameSdk(path)))) registerHooks(TS_EXTENSIONS.has(ext));
  const fresh = options.fresh !== undefined ? `?quarry-run=${options.fresh}` : '';
  const url = `${pathToFileURL(path).href}${fresh}`;
  let ns: Record<string, unknown>;
  try {
    if (standalone !== undefined) {
      // Stack traces point into the .ts source through the output's inline source map.
      process.setSourceMapsEnabled(true);
      ns = (await import(`${pathToFileURL(standalone).href}${fresh}`)) as Record<string, unknown>;
    } else if (TS_EXTENSIONS.has(ext)) {
      ns = await importTypeScript(path, url);
    } else {
      if (options.fresh !== undefined) delete requireCache()[path];
      ns = (await import(url)) as Record<string, unknown>;
    }
  } catch (err) {
    const detail = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new ScriptLoadError(path, `failed to import: ${detail}`, { cause: err });
  }
  const exp = exportsOf(ns);
  const run = exp.default;
  if (typeof run !== 'function') {
    throw new ScriptLoadError(path, `the default export must be a function, e.g. export default async function run(ctx) { ... }; got ${run === undefined ? 'no default export' : describeValue(run)}`);
  }
  const hooks: Record<string, unknown> = {};
  for (const name of HOOK_NAMES) {
    const h = exp[name];
    if (h === undefined) continue;
    if (typeof h !== 'function') throw new ScriptLoadError(path, `the "${name}" export must be a function (it is a hook), got ${describeValue(h)}`);
    hooks[name] = h;
  }
  const parsed = parseScriptOptions(exp.options);
  if (typeof parsed === 'string') throw new ScriptLoadError(path, parsed);
  return Object.freeze({ path, run: run as QuarryScript, hooks: Object.freeze(hooks) as QuarryHooks, options: parsed });
}
