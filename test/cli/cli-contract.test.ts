import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REPORT_FLAGS } from '../../src/cli/commands/report.js';
import { RUN_FLAGS } from '../../src/cli/commands/run-flags.js';
import { COMMANDS } from '../../src/cli/registry.js';

const doc = readFileSync(new URL('../../docs/contracts/cli.md', import.meta.url), 'utf8');
const section = doc.slice(doc.indexOf('## `quarry run` flags'), doc.indexOf('## Output of `quarry run`'));
const rows = section
  .split('\n')
  .filter((l) => l.startsWith('| `--'))
  .map((l) => l.split('|').map((c) => c.trim()))
  .map((c) => ({ name: c[1]!.replace(/`/g, '').slice(2), type: c[2]!, def: c[3]!.replace(/`/g, ''), status: c[4]! }));

describe('the CLI contract and the parser agree', () => {
  it('lists exactly the flags quarry run parses, in the same order', () => {
    expect(rows.map((r) => r.name)).toEqual(RUN_FLAGS.map((f) => f.name));
  });

  it('gives each flag the type, default and status the parser uses', () => {
    for (const f of RUN_FLAGS) {
      const row = rows.find((r) => r.name === f.name)!;
      expect(row.type, `--${f.name} type`).toBe(f.type);
      expect(row.def, `--${f.name} default`).toBe(f.default === undefined ? '' : String(f.default));
      expect(row.status.startsWith(f.planned ? 'refused' : 'supported'), `--${f.name} status`).toBe(true);
    }
  });

  it('names every original quarry run flag of SPEC §9', () => {
    const original = ['config', 'script', 'run-id', 'attempt', 'job-id', 'parent-run-id', 'job', 'job-json', 'source', 'category', 'policy', 'flush-mode', 'buffer-events', 'buffer-bytes', 'flush-count', 'flush-interval', 'storage-dataset', 'storage-backend', 'storage-path', 'storage-region', 'storage-endpoint', 'storage-s3-path-style', 'proxy-config', 'proxy-pool', 'proxy-strategy', 'proxy-sticky-key', 'proxy-domain', 'proxy-origin', 'executor', 'browser-ws-endpoint', 'no-browser-reuse', 'resolve-from', 'depth', 'max-runs', 'parallel', 'adapter', 'adapter-url', 'adapter-header', 'adapter-channel', 'adapter-timeout', 'adapter-retries', 'event-sink', 'event-sink-lode-delivery', 'report', 'dry-run', 'quiet', 'day', 'ledger', 'retries', 'allow-failed-children', 'chromium-path'];
    const parsed = new Set(RUN_FLAGS.map((f) => f.name));
    expect(original.filter((n) => !parsed.has(n))).toEqual([]);
  });
});

describe('quarry report is documented as the parser reads it', () => {
  const cli = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
  const part = cli.slice(cli.indexOf('## `quarry report --html FILE`'));
  const own = part.split('\n').filter((l) => l.startsWith('| `--')).map((l) => /^\| `--([a-z-]+)/.exec(l)![1]);

  it('lists its own flags in docs/cli.md, and takes the shared ones the page says it takes', () => {
    expect(own).toEqual(REPORT_FLAGS.filter((f) => f.group === 'Report').map((f) => f.name));
    const names = REPORT_FLAGS.map((f) => f.name);
    for (const shared of ['storage-path', 'storage-dataset', 'ledger', 'source', 'category', 'day', 'from-day', 'to-day', 'format']) expect(names).toContain(shared);
  });

  it('is in the command table of docs/cli.md, the CLI contract and the registry', () => {
    expect(cli).toContain('| `quarry report --html FILE` |');
    expect(doc).toContain('`report --html FILE`');
    expect(COMMANDS.some((c) => c.words.join(' ') === 'report')).toBe(true);
  });
});
