/**
 * `quarry read` (SPEC §8 consumers): streams the authoritative records of the
 * `success` partitions matching the filters as JSON lines, in partition order
 * and `seq` order within each. Never a pending or failed partition, never a
 * run the ledger does not name. Read-only.
 */
import { EVENT_TYPES } from '../../protocol/envelope.js';
import { parseFlags, renderFlagHelp, UsageError, type FlagSpec } from '../flags.js';
import type { CliIO } from '../io.js';
import { LEDGER_FLAG, ledgerFilters, ledgerTargetFrom, openLedgerReaderAt, OLD_RANGE_ALIASES } from './ledger-common.js';
import { EXIT_NOT_FOUND, openReadBackend, PARTITION_FILTER_FLAGS, ReadCommandError, stringFlag } from './read-common.js';
import { STORAGE_FLAGS } from '../common-flags.js';
import { LedgerError } from '../../ledger/types.js';
import { StorageError } from '../../storage/backend.js';
import { ManifestError } from '../../storage/manifest.js';
import { ReaderError } from '../../storage/reader.js';
import { describeGaps, EXIT_INCOMPLETE, findGaps, REQUIRE_COMPLETE_FLAGS, requireCompleteQuery } from './completeness.js';

const TYPES = [...EVENT_TYPES, 'metrics'];

export const READ_RECORD_FLAGS: readonly FlagSpec[] = [
  ...STORAGE_FLAGS,
  LEDGER_FLAG,
  ...PARTITION_FILTER_FLAGS,
  ...OLD_RANGE_ALIASES,
  { name: 'type', type: 'list', arg: 'TYPE', help: `Only these record types (repeatable): ${TYPES.join('|')}`, group: 'Filters' },
  ...REQUIRE_COMPLETE_FLAGS,
];

const USAGE = `Usage: quarry read [filters] [--type item …] [--require-complete]

Streams the vetted records (JSON lines) of every partition the ledger marks
success, from the run it names. Pending and failed partitions are not read
and not listed: quarry state inspect --expect-all shows them. With
--require-complete (and --source, --category, --from-day/--to-day), a range
with any pending or failed day prints nothing, lists those partitions on
stderr and exits 4. Exit 1 when the ledger or storage cannot be read (records
already printed stay printed; the line says so).`;

export async function readCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const p = parseFlags(argv, READ_RECORD_FLAGS);
  if (p.help) {
    io.stdout(`${USAGE}\n${renderFlagHelp(READ_RECORD_FLAGS)}\n`);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(p.positionals[0])}`);
  const types = (p.values.type as string[] | undefined) ?? undefined;
  for (const t of types ?? []) if (!TYPES.includes(t)) throw new UsageError(`--type ${JSON.stringify(t)} must be one of ${TYPES.join('|')}`);
  const dataset = stringFlag(p.values, 'storage-dataset') ?? 'quarry';
  const filters = ledgerFilters(p.values, dataset);
  const complete = requireCompleteQuery(p.values, filters);

  const { openConsumer } = await import('../../ledger/consumer.js');
  let backend;
  let ledger;
  let records = 0;
  try {
    backend = await openReadBackend(p.values, io.cwd);
    ledger = await openLedgerReaderAt(ledgerTargetFrom(p.values, io.cwd));
    if (complete) {
      // Checked before anything is read: a consumer never sees part of a range it asked to get whole.
      const gaps = await findGaps(ledger, complete);
      if (gaps.length > 0) {
        io.stderr(`quarry read: --require-complete: ${gaps.length} partition(s) of the range are not complete; nothing was output\n${describeGaps(gaps)}`);
        return EXIT_INCOMPLETE;
      }
    }
    const consumer = openConsumer({ storage: backend, ledger });
    const partitions = await consumer.partitions(filters);
    if (partitions.length === 0) io.stderr('quarry read: no success partition matches; see quarry state inspect\n');
    for (const part of partitions) {
      for await (const rec of consumer.records(part, types ? { eventTypes: types } : {})) {
        await io.stdoutWrite(`${JSON.stringify(rec)}\n`);
        records++;
      }
    }
    io.stderr(`quarry read: ${records} record(s) from ${partitions.length} partition(s)\n`);
    return 0;
  } catch (err) {
    if (err instanceof ReadCommandError || (err as Error).name === 'PartitionNotReadableError') {
      io.stderr(`quarry read: ${(err as Error).message}\n`);
      return EXIT_NOT_FOUND;
    }
    if (err instanceof StorageError || err instanceof LedgerError || err instanceof ReaderError || err instanceof ManifestError) {
      const partial = records > 0 ? ` after ${records} record(s): the output is incomplete` : '';
      io.stderr(`quarry read: ${err.message}${partial}; check the storage and ledger, then read again\n`);
      return EXIT_NOT_FOUND;
    }
    throw err;
  } finally {
    await ledger?.close();
    await backend?.close();
  }
}
