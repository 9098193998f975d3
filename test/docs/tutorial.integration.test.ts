/**
 * docs/tutorial.md runs as written: its `sh` blocks in order in one bash, in a
 * fresh folder whose node_modules holds this checkout as `quarry` (what `npm
 * install quarry cheerio` would give); its `file=` blocks are the files the
 * tutorial has you write, and the TypeScript ones are byte for byte the
 * example files that tsconfig.examples.json type-checks.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

interface Block { lang: string; file?: string; body: string }

/** Fenced blocks with their info string (` ```sh `, ` ```ts file=extract.ts `). */
function blocksOf(markdown: string): Block[] {
  const out: Block[] = [];
  const re = /^```(\w+)(?: file=(\S+))?\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(markdown); m; m = re.exec(markdown)) out.push({ lang: m[1]!, ...(m[2] ? { file: m[2] } : {}), body: m[3]! });
  return out;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

const tutorial = readFileSync(join(REPO_ROOT, 'docs/tutorial.md'), 'utf8');
let dir: TempDir;
let project: string;
/** The tutorial's bash (its own process group), stopped in afterAll should the test time out. */
let shell: number | undefined;

beforeAll(async () => {
  dir = await makeTempDir('tutorial');
  project = join(dir.path, 'ads-etl');
  // What `npm init -y && npm pkg set type=module && npm install quarry cheerio` leaves: the package, cheerio beside it, and the bin.
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'ads-etl', version: '1.0.0', type: 'module' }, null, 2));
  mkdirSync(join(project, 'node_modules', '.bin'), { recursive: true });
  symlinkSync(REPO_ROOT, join(project, 'node_modules', 'quarry'));
  symlinkSync(join(REPO_ROOT, 'node_modules', 'cheerio'), join(project, 'node_modules', 'cheerio'));
  // npm makes the bin executable; dist/cli/main.js is not, so the bin is a shim that runs it with this node.
  writeFileSync(join(project, 'node_modules', '.bin', 'quarry'), `#!/bin/sh\nexec "${process.execPath}" "${join(REPO_ROOT, 'dist', 'cli', 'main.js')}" "$@"\n`, { mode: 0o755 });
});

afterAll(async () => {
  if (shell !== undefined) {
    try {
      process.kill(-shell, 'SIGKILL');
    } catch {
      // already finished
    }
  }
  // The tutorial stops its fixture in its last block; should a block fail before, stop it here.
  const pidFile = join(project, 'site.pid');
  if (existsSync(pidFile)) {
    try {
      process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGTERM');
    } catch {
      // already stopped
    }
  }
  await dir?.remove();
});

describe('docs/tutorial.md', () => {
  it('shows the example files as they are, so what it teaches is what the tests and the type-check cover', () => {
    const files = blocksOf(tutorial).filter((b) => b.lang === 'ts');
    expect(files.map((b) => b.file)).toEqual(['extract.ts', 'orchestrator.ts']);
    for (const b of files) expect(b.body, b.file).toBe(readFileSync(join(REPO_ROOT, 'examples/ads-report', b.file!), 'utf8'));
    expect(readFileSync(join(REPO_ROOT, 'tsconfig.examples.json'), 'utf8')).toContain('examples/ads-report/*.ts');
  });

  it('runs from an empty folder to a loaded warehouse and a report, its shell blocks in order', async () => {
    const port = String(await freePort());
    const blocks = blocksOf(tutorial);
    const at = (s: string) => s.replaceAll('8090', port);
    // Files the tutorial has you write; the first sh block creates the folder they go in.
    for (const b of blocks.filter((x) => x.file)) writeFileSync(join(project, b.file!), at(b.body), { mode: b.lang === 'sh' ? 0o755 : 0o644 });
    const script = ['set -euo pipefail', ...blocks.filter((b) => b.lang === 'sh' && !b.file).map((b) => at(b.body))].join('\n');
    const result = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn('bash', ['-c', script], { cwd: dir.path, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      shell = child.pid;
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        shell = undefined;
        resolve({ code, out });
      });
    });
    expect(result.code, result.out).toBe(0);
    // The gap was there, alerting saw it, retry filled it, and everything after reflects that.
    expect(result.out).toContain('etl-day.sh exited 1');
    expect(result.out).toMatch(/globex\s+2026-11-03\s+failed/);
    expect(result.out).toContain('exit 4: late partitions');
    expect(result.out).toContain('1 of 1 run(s) succeeded');
    const exported = JSON.parse(readFileSync(join(project, 'export.json'), 'utf8')) as { partitions_loaded: number };
    expect(exported.partitions_loaded).toBe(5);
    expect(result.out).toMatch(/'globex'\s*│\s*'2026-11-03'/);
    expect(readFileSync(join(project, 'report.html'), 'utf8')).toContain('data-partition="ads/globex/2026-11-03"');
  }, 300_000); // 8 no-browser runs and the read commands: about 30 s on an idle 2-core machine
});
