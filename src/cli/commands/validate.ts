/**
 * `quarry validate` (SPEC §8): checks finalized runs and records the result in
 * the ledger (the validator is the ledger's only writer). `--run <id>` for one
 * run, `--pending` for every finalized run never validated (after a crash).
 *
 * A run already in the ledger is not recorded again (the history is
 * append-only); `--run` re-checks its stored objects read-only and reports
 * what it finds now, so tampering after validation is still caught.
 */
import { readManifest } from '../../storage/reader.js';
import { manifestKey } from '../../storage/layout.js';
import { UsageError } from '../flags.js';
import type { CliIO } from '../io.js';
import { render, renderOptionsFrom } from '../render.js';
import { LEDGER_FLAG, ledgerTargetFrom, openLedgerAt } from './ledger-common.js';
import { checkRunId, openReadBackend, READ_FLAGS, ReadCommandError, stringFlag, EXIT_NOT_FOUND } from './read-common.js';
import { parseFlags, renderFlagHelp } from '../flags.js';

const FLAGS = [
  ...READ_FLAGS,
  LEDGER_FLAG,
  { name: 'run', type: 'list', arg: 'RUN_ID', help: 'Validate this run (repeatable)', group: 'Validate' },
  { name: 'pending', type: 'bool', help: 'Validate every finalized run the ledger has not recorded', group: 'Validate' },
] as const;

const USAGE = `Usage: quarry validate --run <run-id> [--run …] | --pending

Checks finalized runs (manifest, every object's size and SHA-256, record
counts, seq range, terminal event, outcome, contract version) and records the
result in the ledger, promoting a valid run to authoritative for its
partition. Exit 0 when every run checked is valid, 1 when one is not (the
reasons are printed), 2 for a usage error.`;

interface ValidateRow {
  run_id: string;
  source: string;
  category: string;
  day: string;
  validation: 'valid' | 'invalid';
  reasons: string[];
  recorded_now: boolean;
  promoted: boolean;
  partition_status: string;
  authoritative_run_id: string | null;
  note?: string;
}

/** A tree `validate --pending` validated (SPEC §10). */
interface TreeRow {
  tree_id: string;
  valid: boolean;
  failures: number;
  allowed: number;
  authoritative: boolean;
  reason: string;
}

export async function validateCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const p = parseFlags(argv, FLAGS);
  if (p.help) {
    io.stdout(`${USAGE}\n${renderFlagHelp(FLAGS)}\n`);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(p.positionals[0])}; give runs with --run <run-id>`);
  const runs = (p.values.run as string[] | undefined) ?? [];
  const pending = p.values.pending === true;
  if (runs.length === 0 && !pending) throw new UsageError('give --run <run-id> or --pending');
  if (runs.length > 0 && pending) throw new UsageError('give --run or --pending, not both');
  for (const r of runs) checkRunId('--run', r);
  const options = renderOptionsFrom(p.values, io);
  const dataset = stringFlag(p.values, 'storage-dataset') ?? 'quarry';

  const { validateRun, validatePending, RunNotFinalizedError, RunNotFoundError } = await import('../../ledger/validator.js');
  const { checkRun } = await import('../../ledger/run-checks.js');
  let backend;
  let ledger;
  try {
    backend = await openReadBackend(p.values, io.cwd);
    ledger = await openLedgerAt(ledgerTargetFrom(p.values, io.cwd), false);
    const rows: ValidateRow[] = [];
    let unfinalized: string[] = [];
    let trees: TreeRow[] = [];
    if (pending) {
      const r = await validatePending(backend, ledger, dataset);
      for (const v of r.validated) rows.push(row(v));
      unfinalized = r.unfinalized;
      trees = r.trees.validated.map((t) => ({ tree_id: t.tree_id, valid: t.valid, failures: t.failures, allowed: t.allowed, authoritative: t.authoritative, reason: t.reason }));
      for (const e of r.trees.errors) io.stderr(`quarry validate: tree ${e.tree_id} not validated: ${e.message}\n`);
      if (r.validated.length === 0 && trees.length === 0) io.stderr(`quarry validate: nothing pending (${r.already_recorded} run(s) already recorded, ${r.unfinalized.length} unfinalized)\n`);
    } else {
      for (const id of runs) {
        let v;
        try {
          v = await validateRun(backend, ledger, { dataset, run_id: id });
        } catch (err) {
          if (err instanceof RunNotFinalizedError || err instanceof RunNotFoundError) throw new ReadCommandError(err.message);
          throw err;
        }
        const out = row(v);
        if (!v.recorded) {
          // Already in the ledger: re-check what is stored now, writing nothing.
          const manifest = await readManifest(backend, v.partition);
          const now = manifest ? await checkRun(backend, v.partition, await backend.get(manifestKey(v.partition))) : undefined;
          const reasons = now ? now.reasons.map((r) => (r.object ? `${r.code}: ${r.message} (${r.object})` : `${r.code}: ${r.message}`)) : ['manifest missing'];
          out.note = `already recorded as ${v.status}; re-checked now: ${reasons.length === 0 ? 'still valid' : 'INVALID'}`;
          if (reasons.length > 0) {
            out.validation = 'invalid';
            out.reasons = reasons;
          }
        }
        rows.push(out);
      }
    }
    io.stdout(render(pending ? { validated: rows, unfinalized, trees } : rows, options, { columns: ['run_id', 'day', 'validation', 'promoted', 'partition_status', 'authoritative_run_id', 'reasons', 'note'] }));
    const invalid = rows.filter((r) => r.validation === 'invalid');
    for (const r of invalid) io.stderr(`quarry validate: run ${r.run_id} is invalid: ${r.reasons.join('; ')}\n`);
    return !pending && invalid.length > 0 ? 1 : 0;
  } catch (err) {
    if (err instanceof ReadCommandError) {
      io.stderr(`quarry validate: ${err.message}\n`);
      return EXIT_NOT_FOUND;
    }
    throw err;
  } finally {
    await ledger?.close();
    await backend?.close();
  }
}

function row(v: import('../../ledger/validator.js').RunValidation): ValidateRow {
  return {
    run_id: v.run_id,
    source: v.partition.source,
    category: v.partition.category,
    day: v.partition.day,
    validation: v.status,
    reasons: v.reasons.map((r) => (r.object ? `${r.code}: ${r.message} (${r.object})` : `${r.code}: ${r.message}`)),
    recorded_now: v.recorded,
    promoted: v.promoted,
    partition_status: v.partition_state?.status ?? 'pending',
    authoritative_run_id: v.partition_state?.current_run_id ?? null,
  };
}
