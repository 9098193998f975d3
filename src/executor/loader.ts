/**
 * Loads a user script (SPEC §2): `.ts`/`.mts`/`.cts` through tsx's `tsImport`
 * (no build step), `.js`/`.mjs`/`.cjs` through `import()`. Checks the shape:
 * the default export is a function, every hook export present is a function,
 * and `options` (SPEC §13) is an object of known keys and types.
 * Never starts a browser, so `--validate` can use it alone.
 */
import { stat } from 'node:fs/promises';
import * as nodeModule from 'node:module';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HOOK_NAMES, type QuarryHooks, type QuarryScript } from '../sdk/index.js';
import { describeValue, parseScriptOptions, type ResolvedScriptOptions } from './script-options.js';

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

// Runs in Node's loader thread: maps the SDK names to this package's SDK, so a
// script anywhere on disk can import values from it, as with the original package.
const ALIAS_HOOK = `
let target;
const names = new Set(${JSON.stringify(SDK_SPECIFIERS)});
export function initialize(data) { target = data.sdkUrl; }
export async function resolve(specifier, context, next) {
  if (names.has(specifier)) return { url: target, format: 'module', shortCircuit: true };
  return next(specifier, context);
}
`;

let aliasRegistered = false;

function registerSdkAlias(): void {
  if (aliasRegistered) return;
  aliasRegistered = true;
  // module.register exists from Node 20.6; before that, value imports resolve only where the package is installed.
  const register = (nodeModule as Partial<typeof nodeModule>).register;
  if (typeof register !== 'function') return;
  const sdkUrl = new URL('../sdk/index.js', import.meta.url).href;
  register(`data:text/javascript,${encodeURIComponent(ALIAS_HOOK)}`, import.meta.url, { data: { sdkUrl } });
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

/**
 * Imports and checks a script.
 * @throws ScriptLoadError when the file is missing, has an unsupported
 *   extension, fails to import, or has a wrong default or hook export.
 */
export async function loadScript(scriptPath: string): Promise<LoadedScript> {
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
  registerSdkAlias();
  const url = pathToFileURL(path).href;
  let ns: Record<string, unknown>;
  try {
    if (TS_EXTENSIONS.has(ext)) {
      const { tsImport } = await import('tsx/esm/api');
      ns = (await tsImport(url, import.meta.url)) as Record<string, unknown>;
    } else {
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
