// Installs what is missing on a fresh machine, then builds dist/ when stale.
// Used by `npm run demo` and `npm test`; safe to run again (does nothing when all is there).
//   node scripts/setup.mjs          node modules, Chromium, build
//   node scripts/setup.mjs --test   the same, and redis-server (tests start private ones
//                                   when the machine runs none; PostgreSQL is installed
//                                   by its test harness when needed)
//   node scripts/setup.mjs --bench  the same as --test (bench/event-sink.mjs starts its own Redis)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const log = (msg) => process.stderr.write(`[setup] ${msg}\n`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    log(`failed: ${cmd} ${args.join(' ')} (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

const has = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;

let aptUpdated = false;
function aptInstall(packages, why) {
  if (!isRoot) {
    log(`${why} is missing. Install it with:\n    sudo apt-get install -y ${packages.join(' ')}`);
    process.exit(1);
  }
  log(`installing ${packages.join(' ')} (${why}) with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) {
    run('apt-get', ['update', '-qq'], { env });
    aptUpdated = true;
  }
  run('apt-get', ['install', '-y', '-qq', ...packages], { env });
}

// 1. Node modules. better-sqlite3 compiles from source against Node's own headers.
const nodeHeaders = '/usr/include/node/node.h';
const env = { ...process.env };
if (existsSync(nodeHeaders) && !env.npm_config_nodedir) env.npm_config_nodedir = '/usr';
const lockStamp = join(root, 'node_modules', '.package-lock.json');
const needInstall = !existsSync(lockStamp) || statSync(join(root, 'package-lock.json')).mtimeMs > statSync(lockStamp).mtimeMs;
if (needInstall) {
  if (!has('make') || !has('g++') || !has('python3')) aptInstall(['build-essential', 'python3'], 'a C++ toolchain (to build better-sqlite3)');
  // `npm ci` installs exactly the committed lock and never rewrites it, as any
  // user's CI does. The lock lists every platform's optional binaries (duckdb,
  // msgpackr-extract) at versions published for all of them (README.md, "Install").
  log('installing node modules (npm ci, from package-lock.json)');
  run('npm', ['ci', '--no-audit', '--no-fund'], { env });
}

// 2. Chromium from the system, never downloaded (SPEC §1.6).
const chromium = process.env.QUARRY_CHROMIUM_PATH || '/usr/bin/chromium';
if (!existsSync(chromium)) aptInstall(['chromium'], `Chromium (${chromium})`);

// 3. redis-server for the tests and benches, which start private servers.
if ((process.argv.includes('--test') || process.argv.includes('--bench')) && !has('redis-server')) {
  aptInstall(['redis-server'], 'redis-server (tests and benches start private ones)');
}

// 4. Build dist/ when any source is newer than the last build.
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}
const stamp = join(root, 'dist', 'cli', 'main.js');
const srcTime = Math.max(newest(join(root, 'src')), statSync(join(root, 'tsconfig.json')).mtimeMs, statSync(join(root, 'scripts/bundle.mjs')).mtimeMs);
if (!existsSync(stamp) || statSync(stamp).mtimeMs < srcTime) {
  log('building (tsc)');
  try {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  } catch {
    log('the TypeScript build failed; see the errors above');
    process.exit(1);
  }
  // The CLI and the executor, each bundled into one file and its lazy chunks (scripts/bundle.mjs).
  run(process.execPath, [join(root, 'scripts/bundle.mjs')]);
}
