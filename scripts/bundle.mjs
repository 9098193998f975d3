// Bundles the two programs a run starts, the CLI's (`dist/cli/program.js`)
// and the executor's (`dist/executor/program.js`), each into one CommonJS
// file next to it (`program.cjs`), which their entries (`dist/cli/main.js`,
// `dist/executor/main.js`) load when it is there and newer than tsc's output
// (src/runtime/bundle-entry.ts). Node 20's ES module loader resolves, reads,
// compiles and links each module on its own: ~40 modules for one run cost
// more CPU than the run's own work (docs/benchmarks.md, "One run's fixed
// cost"); one CommonJS file is one read and one compile. Runs after
// `tsc -p tsconfig.build.json` and reads its output, so the bundle is the same
// JavaScript the tests compile; it never rewrites tsc's files, so running it
// twice is the same as once.
//   node scripts/bundle.mjs
// npm packages stay external (loaded from node_modules, as before). In a
// CommonJS bundle their `import`s become `require`s inside the lazily
// initialised module that needs them, so a package loads only when the code
// that imports it first runs (DuckDB for an export, not for a run); dynamic
// `import()`s of packages stay `import()`s. Modules that find files next to
// themselves (`new URL('../sdk/index.js', import.meta.url)`) keep finding
// them: each module's `import.meta.url` is rewritten to the URL its own file
// has in dist/.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
// tsc's output is ES modules, which are strict; the bundle keeps them so.
const BANNER = '"use strict";\n// quarry: bundled by scripts/bundle.mjs from tsc\'s output; loaded by main.js (src/runtime/bundle-entry.ts)';

/** esbuild as tsx resolves it (tsx depends on it; the executor's TypeScript loader uses the same one). */
function loadEsbuild() {
  const req = createRequire(join(root, 'package.json'));
  try {
    return req('esbuild');
  } catch {
    return createRequire(req.resolve('tsx/package.json'))('esbuild');
  }
}

/** Each module's own dist URL, from the bundle's `__dirname` (the bundles sit one folder below dist/). */
const ownUrl = {
  name: 'own-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(dist + sep)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return { contents: text, loader: 'js' };
      const rel = relative(dist, args.path).split(sep).join('/');
      const url = `require("node:url").pathToFileURL(require("node:path").join(__dirname, "..", ${JSON.stringify(rel)})).href`;
      return { contents: text.replaceAll('import.meta.url', url), loader: 'js' };
    });
  },
};

/** What the bundle's `import()`s call instead (src/runtime/bundle-entry.ts `IMPORT`). */
const IMPORT_CALL = '__quarryImport(';
const IMPORT_PRELUDE = 'var __quarryImport = globalThis[Symbol.for("quarry.import")] || ((specifier) => import(specifier));';

/**
 * The bundle with every dynamic `import(` turned into a call of the entry's
 * importer: V8's code cache in Node 20 drops the dynamic-import callback of
 * the code it restores (an `import()` there fails "A dynamic import callback
 * was not specified"), the entry's own `import()` keeps it. Textual, so it
 * first proves every `import(` in the text is a call: esbuild, told the
 * target has no `import()`, rewrites each real one into a `require`, and
 * their counts must match (an `import(` inside a string would not be rewritten).
 */
async function routeImports(esbuild, code, file) {
  const textual = code.match(/(?<![\w$.])import\(/g)?.length ?? 0;
  const lowered = await esbuild.transform(code, { loader: 'js', format: 'cjs', platform: 'node', supported: { 'dynamic-import': false } });
  const lowering = /Promise\.resolve\(\)\.then\(\(\) => __toESM\d*\(require\(/g;
  const calls = lowered.code.match(lowering)?.length ?? 0;
  const before = code.match(lowering)?.length ?? 0;
  if (calls - before !== textual) throw new Error(`${file}: ${textual} "import(" in the text but ${calls - before} import() calls; cannot route them (scripts/bundle.mjs)`);
  return code.replace(/(?<![\w$.])import\(/g, IMPORT_CALL);
}

async function bundle(esbuild, folder) {
  const dir = join(dist, folder);
  // Earlier builds split the programs into ES module chunks; nothing loads them any more.
  for (const f of readdirSync(dir)) if (f.startsWith('chunk-')) rmSync(join(dir, f));
  const out = join(dir, 'program.cjs');
  const result = await esbuild.build({
    entryPoints: [join(dir, 'program.js')],
    outfile: out,
    write: false,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    keepNames: true,
    banner: { js: BANNER },
    sourcemap: false,
    logLevel: 'warning',
    plugins: [ownUrl],
  });
  const code = result.outputFiles[0].text;
  const routed = await routeImports(esbuild, code, out);
  // After the banner's lines: the prelude is ordinary code, not a directive.
  writeFileSync(out, routed.replace(BANNER, `${BANNER}\n${IMPORT_PRELUDE}`));
}

const esbuild = loadEsbuild();
await bundle(esbuild, 'cli');
await bundle(esbuild, 'executor');
