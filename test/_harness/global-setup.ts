/**
 * Runs once before the test files: compiles src/ to dist/ so subprocess tests
 * run the same JavaScript a user runs (the CLI never starts through a TS loader),
 * then bundles the CLI and the executor as `npm run build` does.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  try {
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'pipe' });
  } catch (err) {
    // tsc still emits on type errors; the typecheck test reports them. Show them here too.
    process.stderr.write(`[global-setup] tsc reported errors:\n${String((err as { stdout?: Buffer }).stdout ?? err)}\n`);
  }
  // As `npm run build`: the CLI and the executor bundled (scripts/bundle.mjs), as a user runs them.
  execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: root, stdio: 'inherit' });
}
