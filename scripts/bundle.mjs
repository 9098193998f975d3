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
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');

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

async function bundle(esbuild, folder) {
  const dir = join(dist, folder);
  // Earlier builds split the programs into ES module chunks; nothing loads them any more.
  for (const f of readdirSync(dir)) if (f.startsWith('chunk-')) rmSync(join(dir, f));
  await esbuild.build({
    entryPoints: [join(dir, 'program.js')],
    outfile: join(dir, 'program.cjs'),
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    keepNames: true,
    // tsc's output is ES modules, which are strict; the bundle keeps them so.
    banner: { js: '"use strict";\n// quarry: bundled by scripts/bundle.mjs from tsc\'s output; loaded by main.js (src/runtime/bundle-entry.ts)' },
    sourcemap: false,
    logLevel: 'warning',
    plugins: [ownUrl],
  });
}

const esbuild = loadEsbuild();
await bundle(esbuild, 'cli');
await bundle(esbuild, 'executor');
