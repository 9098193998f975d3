/**
 * Module hooks for the executor (registered by loader.ts; they run in Node's
 * loader thread): the SDK names resolve to this executor's SDK, and
 * TypeScript files in an ES module scope load through esbuild's transform
 * with a compiled-output cache keyed by a hash of the file's content, so a run
 * of an unchanged script compiles nothing and loads no compiler.
 *
 * ES module scope: `.mts`, or `.ts` whose nearest package.json says
 * `"type": "module"`. Other TypeScript (`.cts`, `.ts` in a CommonJS scope) is
 * left to the next hook: loader.ts loads such scripts with tsx, as before.
 * Type-only imports are erased (esbuild follows TypeScript's rules, and the
 * nearest tsconfig.json's options that change emitted code are applied).
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, extname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What loader.ts passes to {@link initialize}. */
export interface TsHooksData {
  /** URL of this executor's SDK entry: what `quarry/sdk` and `@pithecene-io/quarry-sdk` resolve to. */
  readonly sdkUrl: string;
  readonly sdkSpecifiers: readonly string[];
  /** Folder of the compiled-output cache; none when undefined (compile every time). */
  readonly cacheDir?: string;
  /** URL of esbuild's entry (imported only on a cache miss; '' for a JavaScript script: no TypeScript then) and its version (part of the cache key). */
  readonly esbuildUrl: string;
  readonly esbuildVersion: string;
}

/** Bumped whenever the compile options below change, so older cache entries are never used. */
const COMPILE_VERSION = 1;

/** tsconfig compilerOptions that change what esbuild emits for a file (the rest only type-check). */
const EMIT_OPTIONS = [
  'alwaysStrict',
  'experimentalDecorators',
  'importsNotUsedAsValues',
  'jsx',
  'jsxFactory',
  'jsxFragmentFactory',
  'jsxImportSource',
  'preserveValueImports',
  'target',
  'useDefineForClassFields',
  'verbatimModuleSyntax',
] as const;

interface EsbuildMessage {
  text: string;
  location?: { file: string; line: number; column: number } | null;
}
interface Esbuild {
  transform(code: string, options: Record<string, unknown>): Promise<{ code: string }>;
}

let data: TsHooksData | undefined;
let sdkNames: ReadonlySet<string> = new Set();
let esbuild: Promise<Esbuild> | undefined;
/** Per folder: is its nearest package.json `"type": "module"`? */
const scopeCache = new Map<string, Promise<boolean>>();
/** Per folder: the emit options of its nearest tsconfig.json (JSON), '' when none. */
const tsconfigCache = new Map<string, Promise<string>>();

/** Node calls this once with loader.ts's data. */
export function initialize(d: TsHooksData): void {
  data = d;
  sdkNames = new Set(d.sdkSpecifiers);
}

interface ResolveContext {
  parentURL?: string;
  conditions: string[];
  importAttributes?: Record<string, string>;
}
interface ResolveResult {
  url: string;
  format?: string | null;
  shortCircuit?: boolean;
}
type NextResolve = (specifier: string, context?: ResolveContext) => Promise<ResolveResult>;

export async function resolve(specifier: string, context: ResolveContext, next: NextResolve): Promise<ResolveResult> {
  if (data && sdkNames.has(specifier)) return { url: data.sdkUrl, format: 'module', shortCircuit: true };
  try {
    return await next(specifier, context);
  } catch (err) {
    // TypeScript's own rule, as tsx has it: `./x.js` may name `./x.ts`, `./x` may name `./x.ts` or `./x/index.ts`.
    const parent = context.parentURL;
    if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND' || !parent || !isEsmTsUrl(parent) || !/^\.{0,2}\//.test(specifier)) throw err;
    for (const candidate of tsCandidates(specifier)) {
      try {
        return await next(candidate, context);
      } catch {
        // try the next spelling
      }
    }
    throw err;
  }
}

function tsCandidates(specifier: string): string[] {
  const ext = extname(specifier);
  if (ext === '.js') return [`${specifier.slice(0, -3)}.ts`];
  if (ext === '.mjs') return [`${specifier.slice(0, -4)}.mts`];
  if (ext === '') return [`${specifier}.ts`, `${specifier}.mts`, `${specifier}/index.ts`];
  return [];
}

const isEsmTsUrl = (url: string): boolean => url.startsWith('file:') && /\.m?ts$/.test(new URL(url).pathname);

interface LoadContext {
  format?: string | null;
  conditions: string[];
  importAttributes?: Record<string, string>;
}
interface LoadResult {
  format: string;
  source?: string | ArrayBuffer | Uint8Array;
  shortCircuit?: boolean;
}
type NextLoad = (url: string, context?: LoadContext) => Promise<LoadResult>;

export async function load(url: string, context: LoadContext, next: NextLoad): Promise<LoadResult> {
  if (!data?.esbuildUrl || !isEsmTsUrl(url)) return next(url, context);
  const path = fileURLToPath(url);
  if (extname(path) === '.ts' && !(await inModuleScope(dirname(path)))) return next(url, context);
  const source = await readFile(path, 'utf8');
  return { format: 'module', source: await compiled(path, source, data), shortCircuit: true };
}

/**
 * The file compiled to JavaScript, from the cache when an entry for exactly
 * these bytes, path, compiler and options is there.
 */
async function compiled(path: string, source: string, d: TsHooksData): Promise<string> {
  const tsconfig = await emitOptionsFor(dirname(path));
  const entry = await cacheEntryFor(path, source, tsconfig, d);
  if (entry !== undefined) {
    try {
      return await readFile(entry, 'utf8');
    } catch {
      // not cached yet
    }
  }
  esbuild ??= import(d.esbuildUrl).then((m: { default?: Esbuild } & Partial<Esbuild>) => (typeof m.transform === 'function' ? (m as Esbuild) : m.default!));
  let code: string;
  try {
    ({ code } = await (await esbuild).transform(source, {
      loader: 'ts',
      format: 'esm',
      target: `node${process.versions.node}`,
      sourcemap: 'inline',
      sourcefile: path,
      keepNames: true,
      ...(tsconfig ? { tsconfigRaw: JSON.parse(tsconfig) as object } : {}),
    }));
  } catch (err) {
    // One line naming the place: `<file>:<line>:<column>: <what>`.
    const first = (err as { errors?: EsbuildMessage[] }).errors?.[0];
    if (!first) throw err;
    const at = first.location ? `${first.location.file}:${first.location.line}:${first.location.column + 1}: ` : '';
    throw new SyntaxError(`${at}${first.text}`);
  }
  if (entry !== undefined) {
    // A private name, then rename: a reader sees no entry or a whole one.
    const tmp = `${entry}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await writeFile(tmp, code, { flag: 'wx', mode: 0o600 });
      await rename(tmp, entry);
    } catch {
      // A cache that cannot be written only costs the next run a compile.
    }
  }
  return code;
}

/**
 * Where the compiled output of exactly these bytes, path, compiler and
 * options is cached; undefined when there is no usable cache folder.
 */
async function cacheEntryFor(path: string, source: string, tsconfig: string, d: Pick<TsHooksData, 'cacheDir' | 'esbuildVersion'>): Promise<string | undefined> {
  const key = createHash('sha256').update(`${COMPILE_VERSION}\0${d.esbuildVersion}\0${process.versions.node}\0${path}\0${tsconfig}\0`).update(source).digest('hex');
  const cacheDir = await usableCacheDir(d.cacheDir);
  return cacheDir === undefined ? undefined : join(cacheDir, `${key}.mjs`);
}

/**
 * The cached compiled output of an ES-module TypeScript file when it is there
 * and imports nothing (no static or dynamic import, `import.meta`, `require`
 * or re-export): such a module loads from its cache file as it is, without
 * these hooks, since nothing in it resolves relative to where it sits.
 * Undefined otherwise (not cached yet, or it imports something): the file
 * then loads through the hooks. Called by loader.ts in the executor's main thread.
 */
export async function cachedStandalone(path: string, d: Pick<TsHooksData, 'cacheDir' | 'esbuildVersion'>): Promise<string | undefined> {
  if (extname(path) === '.ts' && !(await inModuleScope(dirname(path)))) return undefined;
  let source: string;
  try {
    source = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  const entry = await cacheEntryFor(path, source, await emitOptionsFor(dirname(path)), d);
  if (entry === undefined) return undefined;
  let code: string;
  try {
    code = await readFile(entry, 'utf8');
  } catch {
    return undefined;
  }
  return importsNothing(code) ? entry : undefined;
}

/**
 * Whether compiled JavaScript imports nothing. Conservative: any word
 * `import` or `require`, or a re-export, counts (even in a string), since a
 * false "imports something" only costs the hooks thread. The inline source
 * map is left out (its base64 may spell anything).
 */
export function importsNothing(code: string): boolean {
  const map = code.lastIndexOf('\n//# sourceMappingURL=');
  const body = map === -1 ? code : code.slice(0, map);
  return !/\bimport\b|\brequire\b|\bexport\s*(\*|\{[^}]*\}\s*from\b)/.test(body);
}

let cacheChecked: Promise<string | undefined> | undefined;

/**
 * The cache folder, created if missing, when it is ours alone: owned by this
 * user and writable by nobody else (its entries are code we run). Otherwise
 * no cache.
 */
function usableCacheDir(dir: string | undefined): Promise<string | undefined> {
  if (dir === undefined) return Promise.resolve(undefined);
  cacheChecked ??= (async () => {
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const st = await lstat(dir);
      const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) return undefined;
      return dir;
    } catch {
      return undefined;
    }
  })();
  return cacheChecked;
}

/** Node's rule: the nearest package.json decides; no `"type": "module"` there means CommonJS. */
export function inModuleScope(dir: string): Promise<boolean> {
  let known = scopeCache.get(dir);
  if (known) return known;
  known = (async () => {
    let text: string | undefined;
    try {
      text = await readFile(join(dir, 'package.json'), 'utf8');
    } catch {
      const up = dirname(dir);
      return up === dir ? false : inModuleScope(up);
    }
    try {
      return (JSON.parse(text) as { type?: unknown }).type === 'module';
    } catch {
      return false;
    }
  })();
  scopeCache.set(dir, known);
  return known;
}

/** The emit options of the nearest tsconfig.json (its `extends` chain merged), as JSON; '' when there is none. */
function emitOptionsFor(dir: string): Promise<string> {
  let known = tsconfigCache.get(dir);
  if (known) return known;
  known = (async () => {
    const file = join(dir, 'tsconfig.json');
    const options = await readTsconfigOptions(file, 0);
    if (options === undefined) {
      const up = dirname(dir);
      return up === dir ? '' : emitOptionsFor(up);
    }
    const picked: Record<string, unknown> = {};
    for (const k of EMIT_OPTIONS) if (options[k] !== undefined) picked[k] = options[k];
    return Object.keys(picked).length === 0 ? '' : JSON.stringify({ compilerOptions: picked });
  })();
  tsconfigCache.set(dir, known);
  return known;
}

/** compilerOptions of a tsconfig file with its relative `extends` applied; undefined when the file is missing. */
async function readTsconfigOptions(file: string, depth: number): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let cfg: { extends?: unknown; compilerOptions?: Record<string, unknown> };
  try {
    cfg = JSON.parse(stripJsonComments(text)) as typeof cfg;
  } catch {
    return {};
  }
  let base: Record<string, unknown> = {};
  const ext = cfg.extends;
  for (const e of typeof ext === 'string' ? [ext] : Array.isArray(ext) ? ext : []) {
    // Only relative bases are followed; a package base (e.g. @tsconfig/node20) rarely sets an emit option.
    if (typeof e !== 'string' || !e.startsWith('.') || depth > 8) continue;
    const target = resolvePath(dirname(file), e.endsWith('.json') ? e : `${e}.json`);
    base = { ...base, ...((await readTsconfigOptions(target, depth + 1)) ?? {}) };
  }
  return { ...base, ...(cfg.compilerOptions ?? {}) };
}

/** tsconfig.json is JSON with comments and trailing commas: drop both (strings kept as they are). */
export function stripJsonComments(text: string): string {
  const withoutComments = scan(text, (t, i) => {
    if (t[i] !== '/') return 0;
    if (t[i + 1] === '/') {
      const end = t.indexOf('\n', i);
      return (end === -1 ? t.length : end) - i;
    }
    if (t[i + 1] === '*') {
      const end = t.indexOf('*/', i + 2);
      return (end === -1 ? t.length : end + 2) - i;
    }
    return 0;
  });
  return scan(withoutComments, (t, i) => (t[i] === ',' && /^\s*[}\]]/.test(t.slice(i + 1, i + 200)) ? 1 : 0));
}

/** Copies `text` but for the spans `skip` drops (it returns their length at `i`, 0 to keep); JSON strings are copied whole. */
function scan(text: string, skip: (text: string, i: number) => number): string {
  let out = '';
  for (let i = 0; i < text.length; ) {
    if (text[i] === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    const n = skip(text, i);
    if (n > 0) {
      i += n;
      continue;
    }
    out += text[i];
    i++;
  }
  return out;
}
