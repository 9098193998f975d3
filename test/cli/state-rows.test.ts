import { describe, expect, it } from 'vitest';
import { withPendingDays, type StateRow } from '../../src/cli/commands/state.js';

const row = (source: string, category: string, day: string): StateRow => ({
  dataset: 'quarry', source, category, day, status: 'success', state: 'success', current_run_id: `r-${category}-${day}`, authority: 'run', attempts: 1,
  last_run_id: `r-${category}-${day}`, last_error: null, updated_at: '2026-11-02T00:00:00.000Z', skipped: null,
});
const keys = (rows: StateRow[]) => rows.map((r) => `${r.source}/${r.category}/${r.day}=${r.status}`);

describe('expected days (state inspect --expect-all)', () => {
  it('with --source alone, expects every category that source has, and no phantom default category', () => {
    const rows = [row('ads', 'acme', '2026-11-01'), row('ads', 'globex', '2026-11-02')];
    expect(keys(withPendingDays(rows, ['2026-11-01', '2026-11-02'], 'quarry', { source: 'ads' }))).toEqual([
      'ads/acme/2026-11-01=success', 'ads/acme/2026-11-02=pending', 'ads/globex/2026-11-01=pending', 'ads/globex/2026-11-02=success',
    ]);
  });

  it('expects the default category of a --source with no row in the range, and exactly the pair --source and --category name', () => {
    expect(keys(withPendingDays([], ['2026-11-01'], 'quarry', { source: 'shop' }))).toEqual(['shop/default/2026-11-01=pending']);
    expect(keys(withPendingDays([row('ads', 'acme', '2026-11-01')], ['2026-11-01', '2026-11-02'], 'quarry', { source: 'ads', category: 'acme' }))).toEqual([
      'ads/acme/2026-11-01=success', 'ads/acme/2026-11-02=pending',
    ]);
  });
});
