import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Frontier } from '../../src/scheduler/frontier.js';
import { SqliteFrontier } from '../../src/scheduler/sqlite-frontier.js';
import { frontierPaths } from '../../src/scheduler/state-dir.js';
import { fakeClock } from '../_harness/fake-clock.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
import { frontierConformance, page, root, treeOptions } from './frontier-conformance.js';

// Each client is its own SQLite connection to the tree's one file.
frontierConformance('sqlite (separate connections)', async () => {
  const dir = await makeTempDir('frontier');
  return {
    start: async (options, clock, clients) => {
      const path = frontierPaths(dir.path, options.tree_id).db;
      const first = SqliteFrontier.create(path, options, { clock });
      const rest = Array.from({ length: clients - 1 }, () => SqliteFrontier.open(path, { clock }));
      return Promise.resolve([first, ...rest]);
    },
    teardown: () => dir.remove(),
  };
});

describe('sqlite frontier file', () => {
  let dir: TempDir;
  const opened: Frontier[] = [];
  afterEach(async () => {
    for (const f of opened.splice(0)) await f.close();
    await dir.remove();
  });

  it('keeps a tree across close and reopen: dedup, attempts and options survive', async () => {
    dir = await makeTempDir('frontier');
    const clock = fakeClock();
    const opts = treeOptions({ parallel: 2 });
    const path = frontierPaths(dir.path, opts.tree_id).db;
    const first = SqliteFrontier.create(path, opts, { clock });
    await first.admit([root(), page(1)]);
    const [l] = await first.lease('gone', 1);
    await first.close();
    const again = SqliteFrontier.open(path, { clock });
    opened.push(again);
    expect(await again.admit([page(1), root()])).toEqual(['duplicate', 'duplicate']);
    expect((await again.inFlight()).map((x) => x.run_id)).toEqual([l!.run_id]);
    expect(await again.options()).toEqual(opts);
  });

  it('refuses to create a tree twice and to open one never created, saying what to do', async () => {
    dir = await makeTempDir('frontier');
    const opts = treeOptions();
    const path = frontierPaths(dir.path, opts.tree_id).db;
    opened.push(SqliteFrontier.create(path, opts));
    expect(() => SqliteFrontier.create(path, opts)).toThrow(`resume it with --resume ${opts.tree_id}`);
    expect(() => SqliteFrontier.open(join(dir.path, 'none.sqlite'))).toThrow(/never started here \(check --state-dir\)/);
  });

  it('refuses a bad tree option, quoting it', async () => {
    dir = await makeTempDir('frontier');
    expect(() => SqliteFrontier.create(join(dir.path, 'a.sqlite'), treeOptions({ max_runs: 0 }))).toThrow('max_runs must be an integer ≥ 1, got 0');
    expect(() => SqliteFrontier.create(join(dir.path, 'b.sqlite'), treeOptions({ tree_id: '../x' }))).toThrow('tree id "../x"');
  });
});
