/**
 * How the two entry points (`cli/main.ts`, `executor/main.ts`) load their
 * program. `npm run build` (scripts/bundle.mjs) turns each program into one
 * CommonJS file next to it (`program.cjs`): Node 20's ES module loader
 * resolves, reads and links every module on its own (~40 for a run), where
 * one CommonJS file is one read and one compile, and its npm packages load
 * with `require` only when the code that needs them first runs
 * (docs/benchmarks.md, "One run's fixed cost"). Without that file, or when it
 * is older than tsc's output (tsc ran again, the bundle did not), the
 * program loads as tsc's ES modules, as before: slower, never stale.
 */
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Loads (and so runs) the program `./<name>` next to `entryUrl`: its bundle when current, else tsc's module. */
export async function runProgram(entryUrl: string, name: string): Promise<void> {
  const bundle = fileURLToPath(new URL(`./${name}.cjs`, entryUrl));
  const esm = new URL(`./${name}.js`, entryUrl);
  if (bundleIsCurrent(bundle, fileURLToPath(esm))) createRequire(bundle)(bundle);
  else await import(esm.href);
}

function bundleIsCurrent(bundle: string, esm: string): boolean {
  try {
    return statSync(bundle).mtimeMs >= statSync(esm).mtimeMs;
  } catch {
    return false;
  }
}
