/**
 * `quarry report --html FILE` (SPEC §9): one static HTML page of what the
 * ledger says — a calendar of partitions by status per source/category, the
 * recent runs with outcome, drops, duration and authority, the crawl trees,
 * and links to the run folders on fs storage. No server, no JavaScript.
 *
 * Read-only: the ledger is opened with `openLedgerReader`, the storage without
 * creating it; the only file written is the page itself.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LedgerReader } from '../../ledger/ledger.js';
import type { PartitionFilters, RunHistoryRow } from '../../ledger/types.js';
import type { StorageBackend } from '../../storage/backend.js';
import { runPrefix, treeManifestKey } from '../../storage/layout.js';
import { mapOrdered, readManifest } from '../../storage/reader.js';
import { UsageError, type FlagSpec } from '../flags.js';
import type { CliIO } from '../io.js';
import { daysOf } from './completeness.js';
import { LEDGER_FLAG, ledgerFilters, ledgerTargetFrom, openLedgerReaderAt } from './ledger-common.js';
import { PARTITION_FILTER_FLAGS, READ_FLAGS, ReadCommandError, runReadCommand, stringFlag } from './read-common.js';
import { renderReportHtml, type ReportData, type ReportRun, type ReportTree } from './report-html.js';
import { loadStateRows, type StateRow } from './state.js';

const USAGE = `Usage: quarry report --html FILE [filters] [--runs N]

Writes one static HTML page (no server, readable without JavaScript) of what
the ledger says: a calendar of partitions by status for each source and
category, the most recent runs with their outcome, drops, duration and
authority, the crawl trees, and links to the run folders (fs storage). The
calendar spans --from-day..--to-day, or the days the ledger holds, and counts
a day with no row as pending, as state inspect --expect-all does. Read-only.
Prints where the page is and the counts it shows.`;

/** The flags of `quarry report`, as docs/cli.md lists them (test/cli/cli-contract.test.ts). */
export const REPORT_FLAGS: readonly FlagSpec[] = [
  { name: 'html', type: 'string', arg: 'FILE', help: 'Write the page here (required; replaced if it exists)', group: 'Report' },
  { name: 'runs', type: 'int', default: 50, help: 'Show this many recent runs', group: 'Report' },
  ...READ_FLAGS,
  LEDGER_FLAG,
  ...PARTITION_FILTER_FLAGS,
];

/** Most days one calendar shows: past it, narrow the range. */
const MAX_CALENDAR_DAYS = 400;

export function reportCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand({
    name: 'report',
    usage: USAGE,
    flags: REPORT_FLAGS,
    opensStorage: true,
    body: async ({ values, dataset, backend, io: ctxIo }) => {
      const html = stringFlag(values, 'html');
      if (html === undefined) throw new UsageError('--html FILE is required: where to write the page, e.g. --html report.html');
      const runLimit = values.runs as number;
      if (runLimit < 1) throw new UsageError(`--runs must be 1 or more, got ${runLimit}`);
      const filters = ledgerFilters(values, dataset);
      const ledger = await openLedgerReaderAt(ledgerTargetFrom(values, ctxIo.cwd));
      try {
        const data = await gatherReport(ledger, backend, filters, dataset, runLimit, new Date());
        const out = resolve(ctxIo.cwd, html);
        writePage(out, renderReportHtml(data));
        return {
          data: {
            html: out,
            url: pathToFileURL(out).href,
            days: data.days.length === 0 ? null : { from: data.days[0], to: data.days[data.days.length - 1] },
            partitions: data.counts,
            runs: data.runs.length,
            trees: data.trees.length,
          },
        };
      } finally {
        await ledger.close();
      }
    },
  }, argv, io);
}

/** Writes beside the target, then renames: a reader never sees half a page. */
function writePage(path: string, text: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.report.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (err) {
    throw new ReadCommandError(`cannot write --html ${path}: ${(err as Error).message}`);
  }
}

/**
 * Everything the page shows, from the ledger (and, for drops and links, the
 * run manifests). The calendar rows are `state inspect --expect-all`'s rows.
 * @throws UsageError when the calendar would span more than {@link MAX_CALENDAR_DAYS} days.
 */
export async function gatherReport(ledger: LedgerReader, backend: StorageBackend, filters: PartitionFilters, dataset: string, runLimit: number, now: Date): Promise<ReportData> {
  const days = await calendarDays(ledger, filters, dataset);
  const rows = days.length === 0 ? [] : await loadStateRows(ledger, filters, days, dataset);
  const counts = { success: 0, failed: 0, pending: 0 };
  for (const r of rows) counts[r.status]++;
  const current = new Map(rows.map((r) => [`${r.source}\u0000${r.category}\u0000${r.day}`, { run: r.current_run_id, tree: r.authority === 'tree' }]));

  const history = await ledger.listRuns({ dataset, ...keyFilters(filters) });
  const recent = history.slice(-runLimit).reverse();
  const runs: ReportRun[] = [];
  for await (const run of mapOrdered(recent, 16, (h) => describeRun(h, backend, current))) runs.push(run);

  return {
    generated_at: now.toISOString(),
    dataset,
    storage: backend.location,
    ledger: ledger.location,
    filters: keyFilters(filters),
    days,
    calendar: groupCalendar(rows, backend),
    counts,
    runs,
    trees: await describeTrees(history, rows, backend, dataset),
  };
}

const keyFilters = (f: PartitionFilters): Omit<PartitionFilters, 'dataset' | 'status' | 'limit'> => {
  const { source, category, day, from, to } = f;
  return { ...(source ? { source } : {}), ...(category ? { category } : {}), ...(day ? { day } : {}), ...(from ? { from } : {}), ...(to ? { to } : {}) };
};

/** The calendar's days: the range given, else from the first to the last day the ledger holds. */
async function calendarDays(ledger: LedgerReader, filters: PartitionFilters, dataset: string): Promise<string[]> {
  let from = filters.day ?? filters.from;
  let to = filters.day ?? filters.to;
  if (!from || !to) {
    const held = (await loadStateRows(ledger, filters, undefined, dataset)).map((r) => r.day).sort();
    if (held.length === 0) return [];
    from ??= held[0]!;
    to ??= held[held.length - 1]!;
  }
  if (from > to) return [];
  const days = daysOf(from, to);
  if (days.length > MAX_CALENDAR_DAYS) throw new UsageError(`the calendar would span ${days.length} days (${from}..${to}); narrow it to at most ${MAX_CALENDAR_DAYS} with --from-day/--to-day`);
  return days;
}

/** A local link to a storage key, on fs storage only (an S3 key is shown, not linked). */
function linkTo(backend: StorageBackend, key: string): string | null {
  return backend.kind === 'fs' ? pathToFileURL(join(backend.location, key)).href : null;
}

function groupCalendar(rows: readonly StateRow[], backend: StorageBackend): ReportData['calendar'] {
  const groups = new Map<string, ReportData['calendar'][number]>();
  for (const r of rows) {
    const k = `${r.source}\u0000${r.category}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { source: r.source, category: r.category, cells: [] }));
    const shown = r.current_run_id ?? r.last_run_id;
    g.cells.push({
      day: r.day,
      status: r.status,
      state: r.state,
      run_id: r.current_run_id,
      last_run_id: r.last_run_id,
      attempts: r.attempts,
      last_error: r.last_error,
      href: shown === null ? null : linkTo(backend, runPrefix({ dataset: r.dataset, source: r.source, category: r.category, day: r.day, run_id: shown })),
    });
  }
  return [...groups.values()];
}

/** One history row, with its drops from the manifest and its authority from the partition's row. */
async function describeRun(h: RunHistoryRow, backend: StorageBackend, current: ReadonlyMap<string, { run: string | null; tree: boolean }>): Promise<ReportRun> {
  const manifest = await readManifest(backend, h).catch(() => undefined);
  const held = current.get(`${h.source}\u0000${h.category}\u0000${h.day}`);
  const cur = held?.run ?? null;
  const duration = h.started_at && h.finalized_at ? Date.parse(h.finalized_at) - Date.parse(h.started_at) : null;
  let authority: ReportRun['authority'];
  // A tree's authority is its tree id (its root's first run id): every readable member shares it (SPEC §8).
  if (cur !== null && held?.tree === true && cur === h.root_run_id && h.validation_status === 'valid') authority = 'authoritative (tree)';
  else if (cur !== null && cur === h.run_id) authority = 'authoritative';
  else if (h.skipped === true) authority = 'skipped';
  else if (h.validation_status === 'invalid') authority = 'rejected';
  else if (cur !== null) authority = 'superseded';
  else authority = 'not promoted';
  return {
    run_id: h.run_id,
    source: h.source,
    category: h.category,
    day: h.day,
    attempt: h.attempt,
    job_id: h.job_id,
    root_run_id: h.root_run_id,
    depth: h.depth,
    outcome: h.outcome,
    message: h.message,
    validation: h.validation_status,
    reasons: h.validation_reasons.map((r) => r.message),
    authority,
    current_run_id: cur,
    policy: manifest?.policy.name ?? null,
    drops: manifest ? manifest.policy.events_dropped : null,
    dropped_by_type: manifest?.policy.dropped_by_type ?? {},
    duration_ms: duration !== null && Number.isFinite(duration) ? duration : null,
    finalized_at: h.finalized_at,
    href: linkTo(backend, runPrefix(h)),
  };
}

/** Run trees (runs that share a root with depth > 0): their runs, outcomes and the partitions they are the authority of. */
async function describeTrees(history: readonly RunHistoryRow[], rows: readonly StateRow[], backend: StorageBackend, dataset: string): Promise<ReportTree[]> {
  const byRoot = new Map<string, RunHistoryRow[]>();
  for (const h of history) {
    const list = byRoot.get(h.root_run_id) ?? [];
    list.push(h);
    byRoot.set(h.root_run_id, list);
  }
  const trees: ReportTree[] = [];
  for (const [root, members] of byRoot) {
    if (!members.some((m) => m.depth > 0)) continue;
    const outcomes: Record<string, number> = {};
    for (const m of members) outcomes[m.outcome ?? 'unreadable'] = (outcomes[m.outcome ?? 'unreadable'] ?? 0) + 1;
    const key = treeManifestKey(dataset, root);
    const published = (await backend.stat(key).catch(() => undefined)) !== undefined;
    trees.push({
      tree_id: root,
      runs: members.length,
      max_depth: Math.max(...members.map((m) => m.depth)),
      outcomes,
      partitions: [...new Set(members.map((m) => `${m.source}/${m.category}/${m.day}`))].length,
      authoritative_partitions: rows.filter((r) => r.current_run_id === root).length,
      started_at: members.map((m) => m.started_at ?? '').filter(Boolean).sort()[0] ?? null,
      manifest_href: published ? linkTo(backend, key) : null,
    });
  }
  return trees.sort((a, b) => ((a.started_at ?? '') < (b.started_at ?? '') ? 1 : -1));
}
