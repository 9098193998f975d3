/**
 * What the ledger commands (`state inspect`, `validate`, `read`, `export`,
 * `retry`) share: the `--ledger` flag, its default beside fs storage, and
 * partition filters over logical partitions (day ranges included).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Ledger, LedgerReader } from '../../ledger/ledger.js';
import type { PartitionFilters } from '../../ledger/types.js';
import { checkDay } from '../../storage/layout.js';
import { UsageError, type FlagSpec, type ParsedFlags } from '../flags.js';
import { daysOf } from './completeness.js';
import { ledgerTargetFor, parseLedgerTarget } from './ledger-target.js';
import { partitionFilters, ReadCommandError, stringFlag } from './read-common.js';

export const LEDGER_FLAG: FlagSpec = {
  name: 'ledger',
  type: 'string',
  arg: 'PATH|URL',
  help: 'Ledger: postgres:// URL, sqlite:PATH, file:PATH or a .sqlite/.db file (default <storage-path>/ledger.sqlite for fs)',
  group: 'Ledger',
};

/**
 * The names `state inspect`, `read` and `retry` used before the range was
 * `--from-day/--to-day` everywhere (`export --to` is the warehouse): still
 * accepted, hidden from help (docs/contracts/cli.md compatibility notes).
 */
export const OLD_RANGE_ALIASES: readonly FlagSpec[] = [
  { name: 'from', type: 'string', help: 'Deprecated: --from-day', aliasOf: 'from-day' },
  { name: 'to', type: 'string', help: 'Deprecated: --to-day', aliasOf: 'to-day' },
];

const isUrl = (t: string): boolean => /^postgres(ql)?:\/\//i.test(t);

/** The ledger the flags name (paths resolved against `cwd`). @throws UsageError for s3 storage without `--ledger`. */
export function ledgerTargetFrom(values: ParsedFlags['values'], cwd: string): string {
  const given = stringFlag(values, 'ledger');
  return ledgerTargetFor(
    stringFlag(values, 'storage-backend') ?? 'fs',
    resolve(cwd, stringFlag(values, 'storage-path') ?? './quarry-data'),
    given !== undefined ? parseLedgerTarget(given, cwd) : undefined,
  );
}

/** @throws ReadCommandError when `target` is a SQLite file that is not there (read commands and retry never create one). */
export function requireLedgerFile(target: string): void {
  if (!isUrl(target) && !existsSync(target)) {
    throw new ReadCommandError(`no ledger at ${target}: nothing was validated there yet (quarry run and quarry validate write it); give --ledger if it is elsewhere`);
  }
}

/**
 * Opens the ledger as a writer (creating and migrating it). With `mustExist`,
 * a SQLite file that is not there is an error rather than a new empty ledger.
 */
export async function openLedgerAt(target: string, mustExist: boolean): Promise<Ledger> {
  if (mustExist) requireLedgerFile(target);
  const { openLedger } = await import('../../ledger/ledger.js');
  try {
    return await openLedger(target);
  } catch (err) {
    throw new ReadCommandError(`cannot open the ledger: ${(err as Error).message}`);
  }
}

/**
 * Opens an existing ledger read-only, for the read commands (SPEC §8): never
 * creates, migrates or writes it.
 * @throws ReadCommandError one line when it is missing or cannot be read.
 */
export async function openLedgerReaderAt(target: string): Promise<LedgerReader> {
  requireLedgerFile(target);
  const { openLedgerReader } = await import('../../ledger/ledger.js');
  try {
    return await openLedgerReader(target);
  } catch (err) {
    throw new ReadCommandError(`cannot open the ledger: ${(err as Error).message}`);
  }
}

/** Logical-partition filters from `--source --category --day --from-day --to-day`. @throws UsageError */
export function ledgerFilters(values: ParsedFlags['values'], dataset: string): PartitionFilters {
  return { dataset, ...partitionFilters(values) };
}

/** Parses `--expect-days FROM..TO` into every day of the range. @throws UsageError */
export function expectedDays(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const m = /^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$/.exec(raw);
  if (!m) throw new UsageError(`--expect-days ${JSON.stringify(raw)} must be FROM..TO, e.g. 2026-11-01..2026-11-07`);
  for (const d of [m[1]!, m[2]!]) {
    const bad = checkDay(d);
    if (bad) throw new UsageError(`--expect-days: ${bad}`);
  }
  if (m[1]! > m[2]!) throw new UsageError(`--expect-days ${raw}: FROM is after TO`);
  return daysOf(m[1]!, m[2]!);
}
