/**
 * The full fuzz campaign: `npm run fuzz` (every target, 100,000 inputs each),
 * or `npm run fuzz -- --target records --seed 123 --runs 5000` to replay or
 * size one. Each target runs in a worker thread under a hang watchdog
 * (run-in-worker.ts) and must, within the wall-time budget (60 s by default),
 * pass every input (no crash, no undocumented error, no input over the
 * per-input limit) and reach every error class it declares. Prints one line
 * per target with the figures docs/benchmarks.md records; exits 1 if any
 * target fails.
 */
import { loadavg } from 'node:os';
import { fuzzInWorker } from './run-in-worker.js';
import { TARGETS } from './targets.js';

const USAGE = `usage: npm run fuzz -- [--target NAME]... [--seed N] [--runs N] [--per-input-ms N] [--budget-s N]
  targets: ${Object.keys(TARGETS).join(', ')} (default: all)
  --runs 100000, --per-input-ms 1000, --budget-s 60 by default; the seed is random unless given (printed to replay)`;

interface Args {
  targets: string[];
  seed: number;
  runs: number;
  perInputMs: number;
  budgetS: number;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { targets: [], seed: Math.floor(Math.random() * 2 ** 31), runs: 100_000, perInputMs: 1_000, budgetS: 60 };
  const count = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isSafeInteger(n) || n < 0) throw new Error(`${flag} takes a whole number, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    i++;
    switch (flag) {
      case '--target':
        for (const t of (value ?? '').split(',')) {
          if (TARGETS[t] === undefined) throw new Error(`--target ${JSON.stringify(t)}: no such target (${Object.keys(TARGETS).join(', ')})`);
          args.targets.push(t);
        }
        break;
      case '--seed':
        args.seed = count(flag, value);
        break;
      case '--runs':
        args.runs = count(flag, value);
        break;
      case '--per-input-ms':
        args.perInputMs = count(flag, value);
        break;
      case '--budget-s':
        args.budgetS = count(flag, value);
        break;
      default:
        throw new Error(`unknown argument ${JSON.stringify(flag)}`);
    }
  }
  if (args.targets.length === 0) args.targets = Object.keys(TARGETS);
  return args;
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    console.error(`fuzz: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`fuzz: seed ${args.seed}, ${args.runs} inputs per target, budget ${args.budgetS} s each, per-input limit ${args.perInputMs} ms; load average ${load()}`);
  let failed = 0;
  for (const name of args.targets) {
    let line: string;
    let ok: boolean;
    try {
      const r = await fuzzInWorker({ target: name, seed: args.seed, numRuns: args.runs, perInputMs: args.perInputMs });
      const overBudget = r.ms > args.budgetS * 1000;
      ok = r.failure === undefined && r.missing.length === 0 && r.inputs === args.runs && !overBudget;
      const perCpuS = r.cpuMs > 0 ? Math.round(r.inputs / (r.cpuMs / 1000)) : 0;
      line = `${ok ? 'ok  ' : 'FAIL'} ${name}: ${r.inputs} inputs in ${(r.ms / 1000).toFixed(1)} s wall (${r.inputsPerSecond}/s), ${(r.cpuMs / 1000).toFixed(1)} s CPU (${perCpuS} per CPU-second); load average ${load()}`;
      if (overBudget) line += `\n     over the ${args.budgetS} s budget`;
      if (r.missing.length > 0) line += `\n     error classes never reached: ${r.missing.join(', ')}`;
      if (r.failure !== undefined) line += `\n     replay: npm run fuzz -- --target ${name} --seed ${args.seed} --runs ${args.runs}\n${r.failure}`;
      line += `\n     reached: ${Object.entries(r.counts).sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k}=${n}`).join(' ')}`;
    } catch (err) {
      ok = false;
      line = `FAIL ${name}: ${(err as Error).message}`;
    }
    if (!ok) failed++;
    console.log(line);
  }
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
