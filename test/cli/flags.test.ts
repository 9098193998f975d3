import { describe, expect, it } from 'vitest';
import { compilePolicy, compileRunPlan } from '../../src/cli/commands/run.js';
import { RUN_FLAGS } from '../../src/cli/commands/run-flags.js';
import { parseDuration, parseFlags, UsageError } from '../../src/cli/flags.js';

const script = new URL('../../examples/books.ts', import.meta.url).pathname;
const parse = (...argv: string[]) => parseFlags(argv, RUN_FLAGS);
const plan = (...argv: string[]) => compileRunPlan(parse('--script', script, '--source', 'books', ...argv), {}, '/tmp', new Date('2026-11-22T10:00:00Z'));
const usage = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error('expected a UsageError');
};

describe('flag parsing', () => {
  it('accepts --name value, --name=value and boolean forms', () => {
    const p = parse('--source', 'a', '--category=b', '--quiet', '--dry-run=false');
    expect(p.values.source).toBe('a');
    expect(p.values.category).toBe('b');
    expect(p.values.quiet).toBe(true);
    expect(p.values['dry-run']).toBe(false);
    expect([...p.explicit].sort()).toEqual(['category', 'dry-run', 'quiet', 'source']);
  });

  it('keeps the original defaults', () => {
    const p = parse();
    expect(p.values.attempt).toBe(1);
    expect(p.values.category).toBe('default');
    expect(p.values.policy).toBe('strict');
    expect(p.values['flush-mode']).toBe('at_least_once');
    expect(p.values['storage-dataset']).toBe('quarry');
  });

  it('refuses unknown flags, with a suggestion', () => {
    expect(usage(() => parse('--sorce', 'x'))).toMatch(/unknown flag --sorce/);
    expect(usage(() => parse('--polic', 'strict'))).toMatch(/did you mean --policy/);
  });

  it('refuses flags of features not built yet instead of ignoring them', () => {
    expect(usage(() => parse('--resolve-from', 'x'))).toMatch(/scripts resolve modules from their own folder/);
  });

  it('compiles the fan-out flags (SPEC §10): --depth > 0 needs --max-runs; without --depth they only earn a notice', () => {
    expect(plan('--depth', '2', '--max-runs', '10', '--parallel', '3', '--allow-failed-children', '1').tree).toEqual({ depth: 2, maxRuns: 10, parallel: 3, allowFailedChildren: 1 });
    expect(usage(() => plan('--depth', '1'))).toMatch(/--depth 1 needs --max-runs N: a crawl must be bounded/);
    expect(usage(() => plan('--depth', '1', '--max-runs', '0'))).toMatch(/--max-runs must be 1 or more/);
    expect(usage(() => plan('--depth', '1', '--max-runs', '5', '--parallel', '0'))).toMatch(/--parallel must be 1 or more/);
    expect(usage(() => plan('--depth', '-1'))).toMatch(/--depth must be 0 or more/);
    const neutral = plan('--depth', '0', '--parallel', '1');
    expect(neutral.tree).toBeUndefined();
    expect(neutral.notices).toEqual([]);
    const idle = plan('--max-runs', '5', '--parallel', '4');
    expect(idle.tree).toBeUndefined();
    expect(idle.notices).toEqual(['--max-runs and --parallel have no effect without --depth N > 0 (no fan-out: enqueue events are only stored)']);
  });

  it('quotes a bad value', () => {
    expect(usage(() => parse('--attempt', 'two'))).toMatch(/--attempt takes a whole number, got "two"/);
    expect(usage(() => parse('--policy', 'lossy'))).toMatch(/--policy must be one of strict\|buffered\|streaming, got "lossy"/);
    expect(usage(() => parse('--flush-interval', '5 parsecs'))).toMatch(/duration/);
    expect(usage(() => parse('--source'))).toMatch(/--source needs a value/);
  });

  it('parses Go-style durations', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('1500')).toBe(1500);
    expect(parseDuration('5x')).toBeUndefined();
  });
});

describe('compiling a run', () => {
  it('fills the day from the start time in UTC and resolves paths', () => {
    const p = plan();
    expect(p.day).toBe('2026-11-22');
    expect(p.storage).toMatchObject({ backend: 'fs', path: '/tmp/quarry-data' });
    expect(p.job).toEqual({});
  });

  it('names what to fix for each bad input', () => {
    expect(usage(() => compileRunPlan(parse('--source', 'x'), {}, '/tmp', new Date()))).toMatch(/--script is required/);
    expect(usage(() => compileRunPlan(parse('--script', '/nope.ts', '--source', 'x'), {}, '/tmp', new Date()))).toMatch(/no such file/);
    expect(usage(() => compileRunPlan(parse('--script', script), {}, '/tmp', new Date()))).toMatch(/--source is required/);
    expect(usage(() => plan('--job', '{"url":'))).toMatch(/--job is not valid JSON/);
    expect(usage(() => plan('--job', '{}', '--job-json', 'x.json'))).toMatch(/not both/);
    expect(usage(() => plan('--job-json', '/does/not/exist.json'))).toMatch(/cannot read the file \(ENOENT\)/);
    expect(usage(() => plan('--run-id', 'a/b'))).toMatch(/--run-id "a\/b" must match/);
    expect(usage(() => plan('--day', '2026-02-30'))).toMatch(/not a calendar date/);
    expect(usage(() => plan('--category', '../up'))).toMatch(/--category/);
    expect(usage(() => plan('--storage-backend', 's3', '--storage-path', 'Bad_Bucket'))).toMatch(/bucket\/prefix/);
  });

  it('requires the options each policy needs and refuses the ones it would ignore', () => {
    expect(usage(() => compilePolicy(parse('--policy', 'buffered')))).toMatch(/--buffer-events N and\/or --buffer-bytes N/);
    expect(usage(() => compilePolicy(parse('--policy', 'streaming')))).toMatch(/--flush-count N and\/or --flush-interval/);
    expect(usage(() => compilePolicy(parse('--buffer-events', '10')))).toMatch(/no effect with --policy strict/);
    expect(compilePolicy(parse('--policy', 'buffered', '--buffer-bytes', '1024'))).toEqual({ name: 'buffered', flushMode: 'at_least_once', bufferBytes: 1024 });
    expect(compilePolicy(parse('--policy', 'streaming', '--flush-interval', '2s', '--flush-mode', 'two_phase'))).toEqual({ name: 'streaming', flushMode: 'two_phase', flushIntervalMs: 2000 });
  });
});

describe('one-letter forms and deprecated names (SPEC §9)', () => {
  const specs = [
    { name: 'format', short: 'f', type: 'string' as const, help: '', choices: ['json', 'table'] },
    { name: 'from-day', type: 'string' as const, help: '' },
    { name: 'from', type: 'string' as const, help: '', aliasOf: 'from-day' },
  ];
  it('-f is --format, in both spellings, and is checked like it', () => {
    expect(parseFlags(['-f', 'json'], specs).values.format).toBe('json');
    expect(parseFlags(['-f=table'], specs).values.format).toBe('table');
    expect(usage(() => parseFlags(['-f', 'xml'], specs))).toMatch(/--format must be one of json\|table/);
    expect(usage(() => parseFlags(['-x', '1'], specs))).toMatch(/unknown flag -x \(short forms: -f = --format\)/);
  });
  it('a deprecated name fills the flag it stands for and is hidden from help', async () => {
    const p = parseFlags(['--from', '2026-11-01'], specs);
    expect(p.values['from-day']).toBe('2026-11-01');
    expect(p.explicit.has('from-day')).toBe(true);
    const { renderFlagHelp } = await import('../../src/cli/flags.js');
    expect(renderFlagHelp(specs)).not.toMatch(/--from\s/);
    expect(renderFlagHelp(specs)).toMatch(/-f, --format/);
  });
  it('2d is two days', () => {
    expect(parseDuration('2d')).toBe(172_800_000);
  });
});

describe('--ledger names a ledger or is refused (SPEC §8)', async () => {
  const { parseLedgerTarget } = await import('../../src/cli/commands/ledger-target.js');
  it('accepts postgres URLs as given and sqlite:/file: URLs and SQLite-looking paths as files', () => {
    expect(parseLedgerTarget('postgres://u:p@h/db', '/w')).toBe('postgres://u:p@h/db');
    expect(parseLedgerTarget('sqlite:/var/l.sqlite', '/w')).toBe('/var/l.sqlite');
    expect(parseLedgerTarget('sqlite:l.sqlite', '/w')).toBe('/w/l.sqlite');
    expect(parseLedgerTarget('sqlite:///var/l.sqlite', '/w')).toBe('/var/l.sqlite');
    expect(parseLedgerTarget('file:///var/my%20l.db', '/w')).toBe('/var/my l.db');
    expect(parseLedgerTarget('file:state/ledger', '/w')).toBe('/w/state/ledger');
    expect(parseLedgerTarget('data/ledger.sqlite3', '/w')).toBe('/w/data/ledger.sqlite3');
  });
  it('refuses what is neither, saying how to get the default, without echoing a password', () => {
    expect(usage(() => parseLedgerTarget('none', '/w'))).toMatch(/neither a URL nor a SQLite file name.*leave --ledger out for the default/);
    const m = usage(() => parseLedgerTarget('mysql://u:hunter2@h/db', '/w'));
    expect(m).toMatch(/not a ledger URL/);
    expect(m).not.toContain('hunter2');
  });
});

describe('run plans', () => {
  it('--dry-run needs no --source', () => {
    expect(compileRunPlan(parse('--script', script, '--dry-run'), {}, '/tmp', new Date()).dryRun).toBe(true);
  });
  it('--job must be an object', () => {
    expect(usage(() => plan('--job', '[1]'))).toMatch(/must be a JSON object .* got an array/);
    expect(usage(() => plan('--job', 'null'))).toMatch(/got null/);
    expect(plan('--job', '{"a":1}').job).toEqual({ a: 1 });
  });
});
