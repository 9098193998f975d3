// Shared by the one-run benchmarks (no-browser-run.mjs, browser-run.mjs): wall
// time of a child process from spawn to exit and, where /usr/bin/time exists,
// its CPU time (user + system, its own children included).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

/**
 * Runs `node args` to the end; resolves with { ms, cpuMs } (cpuMs NaN without
 * /usr/bin/time). Asynchronous on purpose: fixture servers answer from this
 * process's event loop.
 */
export function timed(args, cwd) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const [cmd, argv] = TIME ? [TIME, ['-f', 'QUARRY_BENCH_CPU %U %S', process.execPath, ...args]] : [process.execPath, args];
    const child = spawn(cmd, argv, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - t0;
      const m = /QUARRY_BENCH_CPU ([\d.]+) ([\d.]+)/.exec(stderr);
      if (code !== 0) reject(new Error(`node ${args.join(' ')} exited ${code}: ${stderr}`));
      else resolve({ ms, cpuMs: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN });
    });
  });
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** `median (min–max)` of the wall times, and the median CPU time. */
export const fmt = (runs) => {
  const ms = runs.map((r) => r.ms);
  const cpu = median(runs.map((r) => r.cpuMs));
  return `${median(ms).toFixed(0)} (${Math.min(...ms).toFixed(0)}–${Math.max(...ms).toFixed(0)}) | ${Number.isNaN(cpu) ? 'n/a' : cpu.toFixed(0)}`;
};

export const machine = () => `machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`;
