/**
 * What every read command (`list`, `inspect`, `stats`; SPEC §9) shares: the
 * storage and output flags, opening the storage without creating it, reading
 * runs with their manifests, the derived run and job states, and turning
 * failures into one-line messages and exit codes.
 *
 * Read commands never write: a missing fs storage path is an error rather
 * than a folder created on the way (the fs backend creates its root on open).
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { StorageError, type StorageBackend } from '../../storage/backend.js';
import { checkDay, checkKeyValue, RUN_ID_RE } from '../../storage/layout.js';
import { ManifestError, type RunClaim, type RunManifest, type RunOutcome } from '../../storage/manifest.js';
import { BackendOptionsError, openBackend } from '../../storage/open-backend.js';
import { claimMatches, listRunClaims, mapOrdered, READ_CONCURRENCY, readManifest, ReaderError, summarize, type RunSummary } from '../../storage/reader.js';
import { OUTPUT_FLAGS, STORAGE_FLAGS } from '../common-flags.js';
import { parseFlags, renderFlagHelp, UsageError, type FlagSpec, type FlagValue, type ParsedFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { render, renderOptionsFrom, type TableHints } from '../render.js';

/**
 * Flags every read command takes: where the storage is and how to print. The
 * storage path's help is restated: a read command never creates the folder.
 */
export const READ_FLAGS: readonly FlagSpec[] = [
  ...STORAGE_FLAGS.map((f) => (f.name === 'storage-path' ? { ...f, help: 'fs: the directory quarry run wrote to (must exist); s3: bucket/prefix' } : f)),
  ...OUTPUT_FLAGS,
];

/** Partition filters shared by the commands that read many runs; day ranges are named the same everywhere (SPEC §9). */
export const PARTITION_FILTER_FLAGS: readonly FlagSpec[] = [
  { name: 'source', type: 'string', arg: 'NAME', help: 'Only runs of this source', group: 'Filters' },
  { name: 'category', type: 'string', arg: 'NAME', help: 'Only runs of this category', group: 'Filters' },
  { name: 'day', type: 'string', arg: 'YYYY-MM-DD', help: 'Only runs of this logical day', group: 'Filters' },
  { name: 'from-day', type: 'string', arg: 'YYYY-MM-DD', help: 'Only days from this one (inclusive)', group: 'Filters' },
  { name: 'to-day', type: 'string', arg: 'YYYY-MM-DD', help: 'Only days up to this one (inclusive)', group: 'Filters' },
];

/** Partition keys and a day range, each checked. */
export interface PartitionKeyFilters {
  source?: string;
  category?: string;
  day?: string;
  from?: string;
  to?: string;
}

/** Exit code of a read command whose target is missing or whose stored data cannot be read. */
export const EXIT_NOT_FOUND = 1;

/**
 * A read command cannot answer: the run or job does not exist, the storage
 * path is missing, or stored data is malformed. One line, exit 1.
 */
export class ReadCommandError extends Error {
  override readonly name = 'ReadCommandError';
}

/** A run as the read commands see it: its claim, and its manifest once finalized. */
export interface StoredRun {
  claim: RunClaim;
  manifest?: RunManifest;
}

/**
 * Derived state of a run: `succeeded` (finalized, outcome success),
 * `failed` (finalized with any other outcome) or `unfinalized` (claimed, no
 * manifest: still running, or stopped before finalizing; no consumer reads it).
 */
export type RunState = 'succeeded' | 'failed' | 'unfinalized';

/** The {@link RunState} of a run from its outcome and whether it has a manifest. */
export function runState(outcome: RunOutcome | undefined, finalized: boolean): RunState {
  if (!finalized) return 'unfinalized';
  return outcome === 'success' ? 'succeeded' : 'failed';
}

/** One read command: its words, usage text, flags and body. */
export interface ReadCommandSpec {
  /** Command words, e.g. `list runs`, for messages. */
  name: string;
  usage: string;
  flags: readonly FlagSpec[];
  /** Positional arguments it takes (named in messages), e.g. `['run-id']`. */
  positionals?: readonly string[];
  /** Whether the command reads the storage before its body runs (the pool views do not). */
  opensStorage: boolean;
  body(ctx: ReadContext): Promise<ReadResult>;
}

/** What a read command's body receives: parsed flags, positionals, the dataset and the open storage. */
export interface ReadContext {
  values: ParsedFlags['values'];
  /** Flags given on the command line (a `--config` file fills only the others). */
  explicit: ReadonlySet<string>;
  positionals: readonly string[];
  dataset: string;
  /** Open storage; only for commands with `opensStorage`. */
  backend: StorageBackend;
  io: CliIO;
}

/** What a command hands the renderer, plus an optional notice for stderr. */
export interface ReadResult {
  data: unknown;
  table?: TableHints;
  /** Printed on stderr (never mixed into stdout, which stays machine-readable). */
  notice?: string;
  /** Exit code after rendering (default 0): 4 when `--stale-after` found stale partitions (SPEC §9). */
  exitCode?: number;
}

/** Full `--help` text of a read command, from the same flag table the parser uses. */
export function readHelp(spec: ReadCommandSpec): string {
  return `${spec.usage}\n${renderFlagHelp(spec.flags)}\n`;
}

/**
 * Runs a read command: parses flags, opens the storage read-only, runs the
 * body, renders. Returns the exit code: 0, or {@link EXIT_NOT_FOUND} after a
 * one-line message on stderr.
 * @throws UsageError for a bad command line (main prints it and exits 2).
 */
export async function runReadCommand(spec: ReadCommandSpec, argv: readonly string[], io: CliIO): Promise<number> {
  const parsed = parseFlags(argv, spec.flags);
  if (parsed.help) {
    io.stdout(readHelp(spec));
    return 0;
  }
  const want = spec.positionals ?? [];
  if (parsed.positionals.length < want.length) {
    throw new UsageError(`missing <${want[parsed.positionals.length]!}>: quarry ${spec.name} ${want.map((w) => `<${w}>`).join(' ')} [flags]`);
  }
  if (parsed.positionals.length > want.length) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[want.length])} (flags start with --)`);
  const options = renderOptionsFrom(parsed.values, io);
  const dataset = stringFlag(parsed.values, 'storage-dataset') ?? 'quarry';
  const badDataset = checkKeyValue('--storage-dataset', dataset);
  if (badDataset) throw new UsageError(badDataset);

  let backend: StorageBackend | undefined;
  try {
    if (spec.opensStorage) backend = await openReadBackend(parsed.values, io.cwd);
    const result = await spec.body({ values: parsed.values, explicit: parsed.explicit, positionals: parsed.positionals, dataset, backend: backend ?? closedBackend(), io });
    if (result.notice) io.stderr(`quarry ${spec.name}: ${result.notice}\n`);
    io.stdout(render(result.data, options, result.table));
    return result.exitCode ?? 0;
  } catch (err) {
    if (err instanceof ReadCommandError || err instanceof ManifestError || err instanceof ReaderError || err instanceof StorageError) {
      io.stderr(`quarry ${spec.name}: ${err.message}\n`);
      return EXIT_NOT_FOUND;
    }
    throw err;
  } finally {
    await backend?.close();
  }
}

/** A backend that refuses every call: handed to commands that declared they do not read storage. */
function closedBackend(): StorageBackend {
  const refuse = (): never => {
    throw new Error('this command does not open the storage');
  };
  return { kind: 'fs', location: '', putNew: refuse, openNew: refuse, get: refuse, read: refuse, stat: refuse, list: refuse, listFolders: refuse, close: async () => undefined };
}

/** A string flag's value, or undefined when absent or empty. */
export function stringFlag(values: ParsedFlags['values'], name: string): string | undefined {
  const v: FlagValue | undefined = values[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * Opens the storage the `--storage-*` flags name, without creating it: an fs
 * path that does not exist is an error (a typo would otherwise read as "no runs").
 * @throws UsageError for bad storage options; ReadCommandError when the fs path is missing.
 */
export async function openReadBackend(values: ParsedFlags['values'], cwd: string): Promise<StorageBackend> {
  const backend = stringFlag(values, 'storage-backend') ?? 'fs';
  const rawPath = stringFlag(values, 'storage-path');
  if (rawPath === undefined) throw new UsageError('--storage-path is empty; give the storage directory (fs) or bucket/prefix (s3)');
  const path = backend === 'fs' ? resolve(cwd, rawPath) : rawPath;
  if (backend === 'fs') {
    const st = await stat(path).catch(() => undefined);
    if (st === undefined) throw new ReadCommandError(`no storage at ${path} (it does not exist); give --storage-path the folder quarry run wrote to`);
    if (!st.isDirectory()) throw new ReadCommandError(`storage path ${path} is not a directory`);
  }
  const region = stringFlag(values, 'storage-region');
  const endpoint = stringFlag(values, 'storage-endpoint');
  try {
    return await openBackend({
      backend,
      path,
      ...(region !== undefined ? { region } : {}),
      ...(endpoint !== undefined ? { endpoint } : {}),
      ...(values['storage-s3-path-style'] === true ? { s3PathStyle: true } : {}),
      ...(values['storage-request-timeout'] !== undefined ? { requestTimeoutMs: values['storage-request-timeout'] as number } : {}),
      readOnly: true,
    });
  } catch (err) {
    if (err instanceof BackendOptionsError) throw new UsageError(err.message);
    if (err instanceof StorageError) throw new ReadCommandError(`cannot open storage: ${err.message}`);
    throw err;
  }
}

/** Partition filters from the flags, each checked like the partition key it matches. @throws UsageError */
export function partitionFilters(values: ParsedFlags['values']): PartitionKeyFilters {
  const out: PartitionKeyFilters = {};
  for (const key of ['source', 'category'] as const) {
    const v = stringFlag(values, key);
    if (v === undefined) continue;
    const bad = checkKeyValue(`--${key}`, v);
    if (bad) throw new UsageError(bad);
    out[key] = v;
  }
  const day = stringFlag(values, 'day');
  if (day !== undefined) {
    const bad = checkDay(day);
    if (bad) throw new UsageError(`--day: ${bad}`);
    out.day = day;
  }
  for (const [flag, key] of [['from-day', 'from'], ['to-day', 'to']] as const) {
    const v = stringFlag(values, flag);
    if (v === undefined) continue;
    const bad = checkDay(v);
    if (bad) throw new UsageError(`--${flag}: ${bad}`);
    out[key] = v;
  }
  if (out.from && out.to && out.from > out.to) throw new UsageError(`--from-day ${out.from} is after --to-day ${out.to}`);
  if (out.day && (out.from || out.to)) throw new UsageError('use --day or --from-day/--to-day, not both');
  return out;
}

/** Checks an id given on the command line before it becomes part of a storage key. @throws UsageError */
export function checkRunId(what: string, id: string): void {
  if (!RUN_ID_RE.test(id)) throw new UsageError(`${what} ${JSON.stringify(id)} must match [A-Za-z0-9._-]{1,128}`);
}

/** One row of `list runs` (the reader's summary) with its derived {@link RunState}. */
export type RunRow = RunSummary & { state: RunState };

/** The reader's summary row plus the state, with `state` right after `run_id` so tables and JSON read naturally. */
export function withState(row: RunSummary): RunRow {
  const { dataset, source, category, day, run_id, ...rest } = row;
  return { run_id, state: runState(row.outcome, row.finalized), dataset, source, category, day, ...rest };
}

/** The same row as `list runs` prints, built from a claim and its manifest. */
export function runRow(run: StoredRun): RunRow {
  return withState(summarize(run.claim, run.manifest));
}

/**
 * Every run of the dataset matching the partition filters (and `keep`), with
 * its manifest when finalized. Claims are filtered before any manifest is
 * read; manifests are read {@link READ_CONCURRENCY} at a time. Order: run_id.
 */
export async function readRuns(
  backend: StorageBackend,
  dataset: string,
  filters: PartitionKeyFilters,
  keep: (claim: RunClaim) => boolean = () => true,
): Promise<StoredRun[]> {
  const claims = (await listRunClaims(backend, dataset)).filter((c) => claimMatches(c, filters) && keep(c));
  const runs: StoredRun[] = [];
  for await (const run of mapOrdered(claims, READ_CONCURRENCY, async (claim) => {
    const manifest = await readManifest(backend, claim);
    return manifest === undefined ? { claim } : { claim, manifest };
  })) {
    runs.push(run);
  }
  return runs;
}
