/**
 * The page of `quarry report --html` (SPEC §9), rendered from plain data.
 * Pure: data in, one HTML string out. Static and readable without JavaScript:
 * every status is a word in the cell as well as a colour, and every value
 * that came from storage, the ledger or a script (error messages, job ids) is
 * escaped.
 */
import type { RunOutcome } from '../../storage/manifest.js';

/** One partition of the calendar: a row of `state inspect --expect-all`. */
export interface ReportCell {
  day: string;
  status: 'success' | 'failed' | 'pending';
  /** What `state inspect` shows: the status, or "pending, skipped: <reason>". */
  state: string;
  run_id: string | null;
  last_run_id: string | null;
  attempts: number;
  last_error: string | null;
  /** The run folder (fs storage), or null. */
  href: string | null;
}

/** One recent run, as the ledger recorded it. */
export interface ReportRun {
  run_id: string;
  source: string;
  category: string;
  day: string;
  attempt: number | null;
  job_id: string | null;
  root_run_id: string;
  depth: number;
  outcome: RunOutcome | null;
  message: string | null;
  validation: 'valid' | 'invalid';
  reasons: string[];
  authority: 'authoritative' | 'authoritative (tree)' | 'superseded' | 'rejected' | 'skipped' | 'not promoted';
  current_run_id: string | null;
  policy: string | null;
  /** Events the policy dropped (null when the manifest could not be read). */
  drops: number | null;
  dropped_by_type: Record<string, number>;
  duration_ms: number | null;
  finalized_at: string | null;
  href: string | null;
}

/** A crawl tree: runs sharing a root, with depth > 0. */
export interface ReportTree {
  tree_id: string;
  runs: number;
  max_depth: number;
  outcomes: Record<string, number>;
  /** Logical partitions its runs wrote to. */
  partitions: number;
  /** Partitions whose authority is this tree. */
  authoritative_partitions: number;
  started_at: string | null;
  manifest_href: string | null;
}

/** Everything the page shows. */
export interface ReportData {
  generated_at: string;
  dataset: string;
  storage: string;
  ledger: string;
  filters: Record<string, string>;
  /** The calendar's columns. */
  days: string[];
  calendar: Array<{ source: string; category: string; cells: ReportCell[] }>;
  counts: { success: number; failed: number; pending: number };
  runs: ReportRun[];
  trees: ReportTree[];
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

const e = escapeHtml;

/** Only file: links are made (fs storage); anything else is shown as text. */
const isLocal = (href: string | null): href is string => href !== null && href.startsWith('file:');
const link = (href: string | null, text: string): string => (isLocal(href) ? `<a href="${e(href)}">${e(text)}</a>` : e(text));

const SYMBOL: Record<ReportCell['status'], string> = { success: '✓', failed: '✗', pending: '·' };

/** The cell's class: its status, or `skipped` for a pending partition whose runs were all skips. */
const cellClass = (c: ReportCell): string => (c.status === 'pending' && c.state !== 'pending' ? 'skipped' : c.status);

function formatDuration(ms: number | null): string {
  if (ms === null) return '–';
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1b1b1b;background:#fff}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.meta{color:#555;margin:0 0 1rem}.meta code{font-size:12px}
table{border-collapse:collapse}th,td{padding:.2rem .5rem;text-align:left;border-bottom:1px solid #e3e3e3;vertical-align:top}
th{font-weight:600;background:#f6f6f6}
table.calendar td.cell{width:1.6rem;height:1.6rem;padding:0;text-align:center;border:2px solid #fff;font-weight:700}
table.calendar td.cell a{color:inherit;text-decoration:none;display:block}
table.calendar th.day{font-weight:400;font-size:11px;writing-mode:vertical-rl;transform:rotate(180deg);padding:.3rem 0;background:none}
td.success{background:#2e7d32;color:#fff}td.failed{background:#c62828;color:#fff}
td.pending{background:#d0d0d0;color:#333}td.skipped{background:#f2c94c;color:#333}
.legend span{display:inline-block;padding:.1rem .5rem;margin-right:.4rem;border-radius:3px}
.legend .success{background:#2e7d32;color:#fff}.legend .failed{background:#c62828;color:#fff}
.legend .pending{background:#d0d0d0}.legend .skipped{background:#f2c94c}
td.outcome-success{color:#2e7d32;font-weight:600}td.outcome-bad{color:#c62828;font-weight:600}
table.runs td,table.gaps td,table.trees td{white-space:nowrap}table.runs td.err,table.gaps td.err{white-space:normal}
.num{text-align:right;font-variant-numeric:tabular-nums}.err{color:#8a1c1c;max-width:40rem}
code{font-size:12px}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}`;
// .sr: the status word stays in the DOM for screen readers and text browsers, hidden visually.

/** Renders the whole page. Pure. */
export function renderReportHtml(d: ReportData): string {
  const filters = Object.entries(d.filters).map(([k, v]) => `${k}=${v}`).join(', ') || 'none';
  const range = d.days.length === 0 ? 'no partitions' : `${d.days[0]} to ${d.days[d.days.length - 1]}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Quarry report: ${e(d.dataset)}</title><style>${STYLE}</style></head>
<body>
<h1>Quarry report: dataset ${e(d.dataset)}</h1>
<p class="meta">Generated ${e(d.generated_at)} · storage <code>${e(d.storage)}</code> · ledger <code>${e(d.ledger)}</code> · filters ${e(filters)} · ${e(range)}</p>
${renderCounts(d)}
<h2>Partitions by day</h2>
${renderCalendar(d)}
${renderGaps(d)}
<h2>Recent runs</h2>
${renderRuns(d.runs)}
<h2>Crawl trees</h2>
${renderTrees(d.trees)}
</body></html>
`;
}

function renderCounts(d: ReportData): string {
  const skipped = d.calendar.flatMap((g) => g.cells).filter((c) => cellClass(c) === 'skipped').length;
  return `<p class="legend" id="counts">
<span class="success">✓ success <b id="count-success">${d.counts.success}</b></span>
<span class="failed">✗ failed <b id="count-failed">${d.counts.failed}</b></span>
<span class="pending">· pending <b id="count-pending">${d.counts.pending}</b></span>${skipped > 0 ? `
<span class="skipped">pending, skipped: ${skipped} (counted in pending)</span>` : ''}
</p>`;
}

function renderCalendar(d: ReportData): string {
  if (d.calendar.length === 0) return '<p>No partitions match.</p>';
  const head = d.days.map((day) => `<th class="day" scope="col">${e(day)}</th>`).join('');
  const rows = d.calendar.map((g) => {
    const byDay = new Map(g.cells.map((c) => [c.day, c]));
    const cells = d.days.map((day) => {
      const c = byDay.get(day);
      if (!c) return '<td></td>';
      const title = [`${g.source}/${g.category}/${day}: ${c.state}`, c.run_id ? `run ${c.run_id}` : '', c.attempts ? `${c.attempts} attempt(s)` : '', c.last_error ?? ''].filter(Boolean).join(' · ');
      const label = `<span aria-hidden="true">${SYMBOL[c.status]}</span><span class="sr">${e(c.status)}</span>`;
      return `<td class="cell ${cellClass(c)}" data-status="${e(c.status)}" data-partition="${e(`${g.source}/${g.category}/${day}`)}" title="${e(title)}">${isLocal(c.href) ? `<a href="${e(c.href)}">${label}</a>` : label}</td>`;
    }).join('');
    return `<tr><th scope="row">${e(g.source)} / ${e(g.category)}</th>${cells}</tr>`;
  }).join('\n');
  return `<table class="calendar"><thead><tr><th>source / category</th>${head}</tr></thead><tbody>
${rows}
</tbody></table>`;
}

function renderGaps(d: ReportData): string {
  const gaps = d.calendar.flatMap((g) => g.cells.filter((c) => c.status !== 'success').map((c) => ({ g, c })));
  if (gaps.length === 0) return '';
  const rows = gaps.map(({ g, c }) => `<tr><td>${e(g.source)}</td><td>${e(g.category)}</td><td>${e(c.day)}</td><td>${e(c.state)}</td><td class="num">${c.attempts}</td><td>${link(c.href, c.last_run_id ?? '–')}</td><td class="err">${e(c.last_error ?? '')}</td></tr>`).join('\n');
  return `<h2>Not success (${gaps.length})</h2>
<p>Fill them with <code>quarry retry</code> (failed) or <code>quarry retry --expect-all --script … --job …</code> (days that never ran).</p>
<table class="gaps"><thead><tr><th>source</th><th>category</th><th>day</th><th>state</th><th>attempts</th><th>last run</th><th>last error</th></tr></thead><tbody>
${rows}
</tbody></table>`;
}

function renderRuns(runs: readonly ReportRun[]): string {
  if (runs.length === 0) return '<p>No runs recorded in the ledger.</p>';
  const rows = runs.map((r) => {
    const outcomeClass = r.outcome === 'success' ? 'outcome-success' : 'outcome-bad';
    const drops = r.drops === null ? '–' : r.drops === 0 ? '0' : `${r.drops} (${Object.entries(r.dropped_by_type).map(([t, n]) => `${t} ${n}`).join(', ')})`;
    const why = r.validation === 'invalid' ? r.reasons.join('; ') : r.outcome !== 'success' ? (r.message ?? '') : '';
    return `<tr data-run="${e(r.run_id)}"><td>${link(r.href, r.run_id)}</td><td>${e(r.source)}/${e(r.category)}/${e(r.day)}</td><td class="num">${e(r.attempt ?? '–')}</td><td class="${outcomeClass}">${e(r.outcome ?? 'unreadable')}</td><td>${e(r.authority)}</td><td>${e(r.policy ?? '–')}</td><td class="num">${e(drops)}</td><td class="num">${e(formatDuration(r.duration_ms))}</td><td>${e(r.finalized_at ?? '–')}</td><td class="err">${e(why)}</td></tr>`;
  }).join('\n');
  return `<table class="runs"><thead><tr><th>run</th><th>partition</th><th>attempt</th><th>outcome</th><th>authority</th><th>policy</th><th>drops</th><th>duration</th><th>finalized</th><th>why</th></tr></thead><tbody>
${rows}
</tbody></table>`;
}

function renderTrees(trees: readonly ReportTree[]): string {
  if (trees.length === 0) return '<p>No crawl trees in the ledger for these filters.</p>';
  const rows = trees.map((t) => `<tr data-tree="${e(t.tree_id)}"><td>${link(t.manifest_href, t.tree_id)}</td><td>${e(t.started_at ?? '–')}</td><td class="num">${t.runs}</td><td class="num">${t.max_depth}</td><td>${e(Object.entries(t.outcomes).map(([o, n]) => `${o} ${n}`).join(', '))}</td><td class="num">${t.partitions}</td><td class="num">${t.authoritative_partitions}</td></tr>`).join('\n');
  return `<table class="trees"><thead><tr><th>tree</th><th>started</th><th>runs</th><th>depth</th><th>outcomes</th><th>partitions</th><th>authoritative in</th></tr></thead><tbody>
${rows}
</tbody></table>`;
}
