#!/usr/bin/env node
/**
 * The `quarry` binary's entry. For a plain `quarry run --script S` it starts
 * the run's executor first (`speculateExecutor`): node's start and the
 * executor's loading then overlap everything else the CLI does (loading its
 * program, the ledger, the binding, the claim); the executor only waits for
 * its request, written after the claim. Then it loads the program
 * (`program.ts`, bundled by scripts/bundle.mjs, see `runtime/bundle-entry.ts`),
 * which reads the rest of argv and runs the command. This file loads only
 * node's modules and the executor's spawn, so the executor starts before the
 * program is even read.
 */
import { resolve } from 'node:path';
import { runProgram } from '../runtime/bundle-entry.js';
import { speculateExecutor } from '../runtime/executor-process.js';

/** Flags after which `quarry run` may not run `--script` in the default executor at once (a tree, a config, a resume, a dry run, help). */
const NOT_SPECULATED = ['--help', '-h', '--dry-run', '--config', '--resume', '--depth', '--executor', '--queue'];

/**
 * The script of a plain `quarry run --script S …`, whose executor can start
 * before the run command loads (executor-process.ts `speculateExecutor`);
 * undefined when another flag may change what runs.
 */
function speculativeScript(rest: readonly string[]): string | undefined {
  if (rest.some((a) => NOT_SPECULATED.some((f) => a === f || a.startsWith(`${f}=`)))) return undefined;
  const i = rest.indexOf('--script');
  const script = i === -1 ? undefined : rest[i + 1];
  return script === undefined || script.startsWith('-') || rest.indexOf('--script', i + 1) !== -1 ? undefined : script;
}

const argv = process.argv.slice(2);
// `run` is the only command whose words start with "run"; the program disposes an executor no run takes.
const script = argv[0] === 'run' ? speculativeScript(argv.slice(1)) : undefined;
if (script !== undefined) speculateExecutor(resolve(script));
// The code cache is kept per command: each compiles its own part of the program.
await runProgram(import.meta.url, 'program', `cli-${argv[0] ?? ''}`);
