// Bundles the two entry points a run starts, `dist/cli/main.js` (the quarry
// binary) and `dist/executor/main.js` (the executor process), each into one
// file plus the lazily loaded chunks of its commands. Node 20's ES module
// loader resolves, reads and compiles each module on its own: ~115 modules
// for one run cost more CPU than the run's own work (docs/benchmarks.md,
// "One run's fixed cost"). Runs after `tsc -p tsconfig.build.json` and reads
// its output, so the bundle is the same JavaScript the tests compile.
//   node scripts/bundle.mjs
// npm packages stay external (loaded from node_modules, as before). Modules
// that find files next to themselves (`new URL('../sdk/index.js',
// import.meta.url)`) keep finding them: each module's `import.meta.url` is
// rewritten to the URL its own file had in dist/, computed from the chunk's.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const MARK = '// quarry: bundled by scripts/bundle.mjs';

/** esbuild as tsx resolves it (tsx depends on it; the executor's TypeScript loader uses the same one). */
function loadEsbuild() {
  const req = createRequire(join(root, 'package.json'));
  try {
    return req('esbuild');
  } catch {
    return createRequire(req.resolve('tsx/package.json'))('esbuild');
  }
}

/** Each module's own dist URL: chunks sit one folder below dist/, so dist/ is `..` from any chunk. */
const ownUrl = {
  name: 'own-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(dist + sep)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return { contents: text, loader: 'js' };
      const rel = relative(dist, args.path).split(sep).join('/');
      return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, new URL('../', import.meta.url)).href`), loader: 'js' };
    });
  },
};

async function bundle(esbuild, folder) {
  const dir = join(dist, folder);
  const entry = join(dir, 'main.js');
  // tsc rewrites main.js on every build; a main.js that is already a bundle has nothing new to bundle.
  if (readFileSync(entry, 'utf8').startsWith(MARK)) return;
  for (const f of readdirSync(dir)) if (f.startsWith('chunk-')) rmSync(join(dir, f));
  await esbuild.build({
    entryPoints: [entry],
    outdir: dir,
    allowOverwrite: true,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    keepNames: true,
    chunkNames: 'chunk-[hash]',
    banner: { js: MARK },
    sourcemap: false,
    logLevel: 'warning',
    plugins: [ownUrl],
  });
}

const esbuild = loadEsbuild();
await bundle(esbuild, 'cli');
await bundle(esbuild, 'executor');
