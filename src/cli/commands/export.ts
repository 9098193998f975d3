/**
 * `quarry export` (SPEC §8): loads the authoritative records of `success`
 * partitions into a warehouse (DuckDB file by default, PostgreSQL by URL),
 * one transaction per partition; re-exporting a reprocessed partition
 * replaces only that partition's rows.
 */
import { resolve } from 'node:path';
import { EVENT_TYPES } from '../../protocol/envelope.js';
import { STORAGE_FLAGS, OUTPUT_FLAGS } from '../common-flags.js';
import { parseFlags, renderFlagHelp, UsageError, type FlagSpec } from '../flags.js';
import { beforeStart, InterruptedBeforeStart, signalExitCode } from '../interruptible.js';
import type { CliIO } from '../io.js';
import { render, renderOptionsFrom } from '../render.js';
import { describeGaps, EXIT_INCOMPLETE, findGaps, REQUIRE_COMPLETE_FLAGS, requireCompleteQuery } from './completeness.js';
import { LEDGER_FLAG, ledgerFilters, ledgerTargetFrom, openLedgerReaderAt } from './ledger-common.js';
import { EXIT_NOT_FOUND, openReadBackend, PARTITION_FILTER_FLAGS, ReadCommandError, stringFlag } from './read-common.js';

export const EXPORT_FLAGS: readonly FlagSpec[] = [
  { name: 'to', type: 'string', arg: 'duckdb:FILE|postgres://…', default: 'duckdb:quarry.duckdb', help: 'Warehouse to load into', group: 'Export' },
  { name: 'type', type: 'list', arg: 'TYPE', help: `Only these event types (repeatable): ${EVENT_TYPES.join('|')}`, group: 'Export' },
  { name: 'force', type: 'bool', help: 'Reload partitions already loaded at their authoritative run', group: 'Export' },
  ...STORAGE_FLAGS,
  LEDGER_FLAG,
  ...PARTITION_FILTER_FLAGS,
  ...REQUIRE_COMPLETE_FLAGS,
  ...OUTPUT_FLAGS,
];

const USAGE = `Usage: quarry export [--to duckdb:FILE | --to postgres://…] [filters]

Loads the vetted records of every success partition matching the filters into
warehouse tables (quarry_events, quarry_items, quarry_artifacts, _quarry_loads).
Idempotent: a partition already loaded at its authoritative run is skipped; a
reprocessed one has its rows replaced in one transaction; other partitions'
rows are never touched. Exit 0 on success, 1 when a partition failed to load
(those loaded before it stay loaded; rerun to continue), 4 when
--require-complete found a pending or failed day in the range (nothing loaded).`;

export async function exportCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const p = parseFlags(argv, EXPORT_FLAGS);
  if (p.help) {
    io.stdout(`${USAGE}\n${renderFlagHelp(EXPORT_FLAGS)}\n`);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(p.positionals[0])}`);
  const dataset = stringFlag(p.values, 'storage-dataset') ?? 'quarry';
  const filters = ledgerFilters(p.values, dataset);
  const complete = requireCompleteQuery(p.values, filters);
  const types = p.values.type as string[] | undefined;
  for (const t of types ?? []) if (!(EVENT_TYPES as readonly string[]).includes(t)) throw new UsageError(`--type ${JSON.stringify(t)} must be one of ${EVENT_TYPES.join('|')}`);
  let target = stringFlag(p.values, 'to') ?? 'duckdb:quarry.duckdb';
  // A relative DuckDB file is relative to where the user stands.
  if (/^duckdb:(?!\/\/)/.test(target)) target = `duckdb:${resolve(io.cwd, target.slice('duckdb:'.length))}`;
  const options = renderOptionsFrom(p.values, io);

  const { exportPartitions, ExportError, compileExportOptions } = await import('../../ledger/export.js');
  try {
    compileExportOptions({ target, ...(types ? { eventTypes: types } : {}) });
  } catch (err) {
    if (err instanceof ExportError) throw new UsageError(err.message);
    throw err;
  }
  let backend;
  let ledger;
  try {
    // Nothing loaded yet: a signal while storage or the ledger opens stops at once.
    const opening = openReadBackend(p.values, io.cwd);
    backend = await beforeStart(opening, io.signal);
    const ledgerOpening = openLedgerReaderAt(ledgerTargetFrom(p.values, io.cwd));
    ledger = await beforeStart(ledgerOpening, io.signal);
    if (complete) {
      // Before the warehouse is even opened: an incomplete range loads nothing.
      const gaps = await findGaps(ledger, complete);
      if (gaps.length > 0) {
        io.stderr(`quarry export: --require-complete: ${gaps.length} partition(s) of the range are not complete; nothing was loaded\n${describeGaps(gaps)}`);
        return EXIT_INCOMPLETE;
      }
    }
    const summary = await exportPartitions({
      storage: backend, ledger, target, filters,
      ...(types ? { eventTypes: types } : {}),
      force: p.values.force === true,
      signal: io.signal,
    });
    io.stdout(render(summary, options));
    return 0;
  } catch (err) {
    if (err instanceof ExportError) {
      io.stderr(`quarry export: ${err.message}\n`);
      return err.code === 'aborted' ? signalExitCode(io.signal) : 1;
    }
    if (err instanceof ReadCommandError) {
      io.stderr(`quarry export: ${err.message}\n`);
      return EXIT_NOT_FOUND;
    }
    if (err instanceof InterruptedBeforeStart) {
      io.stderr(`quarry export: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  } finally {
    await ledger?.close();
    await backend?.close();
  }
}
