#!/usr/bin/env node
/**
 * The executor binary's entry (SPEC §3; usage and exit codes in `program.ts`):
 * loads the program, as one bundled CommonJS file when `npm run build` made
 * it (`runtime/bundle-entry.ts`), else as tsc's ES modules.
 */
import { setFlagsFromString } from 'node:v8';
import { runProgram } from '../runtime/bundle-entry.js';
import { restoreUserExtraCaCerts } from '../runtime/extra-ca-certs.js';

/**
 * V8's budget before a WebAssembly function is recompiled by its optimizing
 * compiler, ~1000 times its default (1.8 M in Node 20). `ctx.http`'s HTTP
 * parser is undici's llhttp, in WebAssembly: with the default, one response
 * sent its parse function to the optimizing compiler, ~250 ms of CPU on a
 * background thread that node waits for before the process can end, so
 * every run's executor took that long to exit after its last frame, longer
 * than the rest of a one-GET run. The baseline code parses as fast for the
 * first hundreds of responses (docs/benchmarks.md, "Fifth round"); a
 * script's own WebAssembly that keeps running is still optimized, later.
 * Set before the bundle is compiled, so its code cache is made and checked
 * under the same flags every time.
 */
const WASM_TIERING_BUDGET = 1_800_000_000;

// Node read its NODE_EXTRA_CA_CERTS at start; scripts and their children see the user's.
restoreUserExtraCaCerts();
setFlagsFromString(`--wasm-tiering-budget=${WASM_TIERING_BUDGET}`);
await runProgram(import.meta.url, 'program', process.argv[2] === '--validate' ? 'executor-validate' : 'executor');
