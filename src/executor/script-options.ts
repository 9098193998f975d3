/**
 * The `options` export of a script (SPEC §13): checked when the script loads,
 * so a typo is a load error (and `quarry run --dry-run` finds it) rather than
 * an option silently ignored. Pure.
 */
import type { ScriptOptions } from '../sdk/index.js';

/** `null`, `an array`, `an object`, `a string`…: what a wrong export turned out to be. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** Options with every default filled in. */
export interface ResolvedScriptOptions {
  /** False: no browser is launched and the context is an `HttpContext`. */
  readonly browser: boolean;
}

/** What a script without an `options` export gets. */
export const DEFAULT_SCRIPT_OPTIONS: ResolvedScriptOptions = Object.freeze({ browser: true });

/** The keys a script may set, each with its check. */
const KNOWN: { readonly [K in keyof Required<ScriptOptions>]: (v: unknown) => string | undefined } = {
  browser: (v) => (typeof v === 'boolean' ? undefined : `the "options" export's browser must be true or false, got ${JSON.stringify(v) ?? describeValue(v)}`),
};

/**
 * Checks and resolves the `options` export (undefined when the script has none).
 * @returns the resolved options, or a one-line reason naming what to fix.
 */
export function parseScriptOptions(value: unknown): ResolvedScriptOptions | string {
  if (value === undefined) return DEFAULT_SCRIPT_OPTIONS;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `the "options" export must be an object such as { browser: false }, got ${describeValue(value)}`;
  }
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!Object.hasOwn(KNOWN, key)) return `the "options" export has an unknown key ${JSON.stringify(key)}; known keys: ${Object.keys(KNOWN).join(', ')}`;
  }
  for (const [key, check] of Object.entries(KNOWN)) {
    if (o[key] === undefined) continue;
    const bad = check(o[key]);
    if (bad) return bad;
  }
  return Object.freeze({ browser: o.browser !== false });
}
