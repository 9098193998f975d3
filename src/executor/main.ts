#!/usr/bin/env node
/**
 * The executor binary's entry (SPEC §3; usage and exit codes in `program.ts`):
 * loads the program, as one bundled CommonJS file when `npm run build` made
 * it (`runtime/bundle-entry.ts`), else as tsc's ES modules.
 */
import { runProgram } from '../runtime/bundle-entry.js';

await runProgram(import.meta.url, 'program', process.argv[2] === '--validate' ? 'executor-validate' : 'executor');
