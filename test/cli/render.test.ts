import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../../src/cli/flags.js';
import { render, renderJson, renderOptionsFrom, renderTable, renderYaml } from '../../src/cli/render.js';

const strip = (s: string): string => s.replace(/\u001b\[[0-9;]*m/g, '');

describe('format choice', () => {
  it('defaults to table on a terminal and JSON when piped; --format wins either way', () => {
    expect(renderOptionsFrom({}, { stdoutIsTTY: true, env: {} })).toEqual({ format: 'table', color: true });
    expect(renderOptionsFrom({}, { stdoutIsTTY: false, env: {} })).toEqual({ format: 'json', color: false });
    expect(renderOptionsFrom({ format: 'yaml' }, { stdoutIsTTY: true, env: {} }).format).toBe('yaml');
    expect(renderOptionsFrom({ format: 'table' }, { stdoutIsTTY: false, env: {} })).toEqual({ format: 'table', color: false });
  });

  it('colors tables only on a terminal, never with --no-color or NO_COLOR', () => {
    expect(renderOptionsFrom({ 'no-color': true }, { stdoutIsTTY: true, env: {} }).color).toBe(false);
    expect(renderOptionsFrom({}, { stdoutIsTTY: true, env: { NO_COLOR: '1' } }).color).toBe(false);
    expect(renderOptionsFrom({ format: 'json' }, { stdoutIsTTY: true, env: {} }).color).toBe(false);
  });

  it('an unknown format is a usage error quoting it', () => {
    expect(() => renderOptionsFrom({ format: 'xml' }, { stdoutIsTTY: false, env: {} })).toThrow(UsageError);
    expect(() => renderOptionsFrom({ format: 'xml' }, { stdoutIsTTY: false, env: {} })).toThrow('--format must be one of json|table|yaml, got "xml"');
  });
});

describe('json and yaml', () => {
  const data = { run_id: 'r1', n: 2, nested: { a: [1, 2], b: null }, gone: undefined };

  it('JSON is pretty, keeps the built key order, drops undefined and ends with a newline', () => {
    expect(renderJson(data)).toBe('{\n  "run_id": "r1",\n  "n": 2,\n  "nested": {\n    "a": [\n      1,\n      2\n    ],\n    "b": null\n  }\n}\n');
    expect(renderJson([])).toBe('[]\n');
    expect(renderJson({})).toBe('{}\n');
  });

  it('YAML carries the same data as JSON', () => {
    expect(parseYaml(renderYaml(data))).toEqual(JSON.parse(renderJson(data)));
    expect(renderYaml([])).toBe('[]\n');
  });

  it('render dispatches on the format', () => {
    expect(render(data, { format: 'json', color: false })).toBe(renderJson(data));
    expect(render(data, { format: 'yaml', color: false })).toBe(renderYaml(data));
  });
});

describe('tables', () => {
  const rows = [
    { run_id: 'r-1', state: 'succeeded', events: 10, job_id: 'j' },
    { run_id: 'r-long-id', state: 'failed', events: 2, job_id: undefined },
  ];

  it('aligns columns under upper-case headers; missing values show as -', () => {
    expect(renderTable(rows, false)).toBe(['RUN_ID     STATE      EVENTS  JOB_ID', 'r-1        succeeded  10      j', 'r-long-id  failed     2       -', ''].join('\n'));
  });

  it('shows only the hinted columns, in the hinted order', () => {
    expect(renderTable(rows, false, { columns: ['state', 'run_id'] })).toBe(['STATE      RUN_ID', 'succeeded  r-1', 'failed     r-long-id', ''].join('\n'));
  });

  it('says so for an empty list', () => {
    expect(renderTable([], false)).toBe('(no results)\n');
    expect(renderTable([], false, { empty: '(no runs)' })).toBe('(no runs)\n');
  });

  it('keeps each row on one line: newlines escaped, long cells cut', () => {
    const out = renderTable([{ message: `line1\nline2 ${'x'.repeat(100)}` }], false);
    const body = out.split('\n')[1]!;
    expect(body.startsWith('line1\\nline2')).toBe(true);
    expect(body.length).toBe(60);
    expect(body.endsWith('…')).toBe(true);
  });

  it('colors states and headers without breaking alignment', () => {
    const colored = renderTable(rows, true);
    expect(colored).toContain('\u001b[32msucceeded');
    expect(colored).toContain('\u001b[31mfailed');
    expect(strip(colored)).toBe(renderTable(rows, false));
  });

  it('shows an object as aligned key: value lines, nested keys dotted, lists of objects as sub-tables', () => {
    const out = renderTable({ run_id: 'r1', policy: { name: 'strict', dropped_by_type: {} }, tags: ['a', 'b'], empty: [], objects: [{ path: 'p1', bytes: 3 }] }, false);
    expect(out).toBe(
      [
        'run_id:                  r1',
        'policy.name:             strict',
        'policy.dropped_by_type:  {}',
        'tags:                    a, b',
        'empty:                   (none)',
        '',
        'objects (1):',
        '  PATH  BYTES',
        '  p1    3',
        '',
      ].join('\n'),
    );
  });

  it('an empty object says there is nothing to show', () => {
    expect(renderTable({}, false)).toBe('(nothing to show)\n');
  });
});
