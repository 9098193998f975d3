import { describe, expect, it } from 'vitest';
import { escapeHtml, renderReportHtml, type ReportData } from '../../src/cli/commands/report-html.js';

const hostile = '<script>alert("x")</script>&\'';

function data(): ReportData {
  return {
    generated_at: '2026-11-08T00:00:00.000Z', dataset: 'quarry', storage: '/data', ledger: '/data/ledger.sqlite', filters: { source: 'ads' },
    days: ['2026-11-01', '2026-11-02'],
    calendar: [{ source: 'ads', category: 'acme', cells: [
      { day: '2026-11-01', status: 'failed', state: 'failed', run_id: null, last_run_id: 'r1', attempts: 1, last_error: hostile, href: 'javascript:alert(1)' },
      { day: '2026-11-02', status: 'pending', state: 'pending, skipped: holiday', run_id: null, last_run_id: 'r2', attempts: 0, last_error: null, href: null },
    ] }],
    counts: { success: 0, failed: 1, pending: 1 },
    runs: [{ run_id: 'r1', source: 'ads', category: 'acme', day: '2026-11-01', attempt: 1, job_id: hostile, root_run_id: 'r1', depth: 0, outcome: 'script_error', message: hostile,
      validation: 'invalid', reasons: [hostile], authority: 'rejected', current_run_id: null, policy: 'strict', drops: 2, dropped_by_type: { log: 2 }, duration_ms: 1500, finalized_at: null, href: 'file:///data/x/' }],
    trees: [],
  };
}

describe('the report page', () => {
  it('escapes every value that came from a script, the ledger or storage, and links only to local files', () => {
    const html = renderReportHtml(data());
    expect(html).not.toContain('<script>');
    expect(html).toContain(escapeHtml(hostile));
    expect(html).not.toContain('href="javascript:');
    expect(html).toContain('<a href="file:///data/x/">r1</a>');
  });

  it('puts the status in each cell as a word, and tells a skipped pending day apart', () => {
    const html = renderReportHtml(data());
    expect(html).toMatch(/<td class="cell failed" data-status="failed" data-partition="ads\/acme\/2026-11-01"[^>]*>.*failed/);
    expect(html).toMatch(/<td class="cell skipped" data-status="pending" data-partition="ads\/acme\/2026-11-02"/);
    expect(html).toContain('2 (log 2)');
    expect(escapeHtml('a"b\'c<d>&')).toBe('a&quot;b&#39;c&lt;d&gt;&amp;');
  });
});
