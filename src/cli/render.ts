/**
 * The one renderer of every read command's output (SPEC §9): `json` (stable,
 * pretty, the canonical form), `table` (aligned columns for people) and `yaml`.
 * Commands build plain data and hand it here with, at most, which columns a
 * list shows in a table; no command formats text by hand, so the three formats
 * always show the same data.
 *
 * Pure: returns strings; the caller writes them.
 */
import { redactJson } from '../protocol/redact.js';
import { stringify as yamlStringify } from 'yaml';
import type { FlagValue } from './flags.js';
import { UsageError } from './flags.js';

/** Output formats of every read command (SPEC §9). */
export type OutputFormat = 'json' | 'table' | 'yaml';

/** The formats `--format` accepts, in the order help lists them. */
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['json', 'table', 'yaml'];

/** How to render: the chosen format and whether tables are colored. */
export interface RenderOptions {
  format: OutputFormat;
  /** ANSI colors in table output. Never in json or yaml. */
  color: boolean;
}

/** How a table shows the data; ignored by json and yaml, which always show everything. */
export interface TableHints {
  /** For a list: the columns to show, in order (keys of the rows). Default: every scalar key, first seen first. */
  columns?: readonly string[];
  /** Line shown for an empty list (default `(no results)`). */
  empty?: string;
}

/** Keys whose values are outcomes or states, colored in tables. */
const STATUS_KEYS: ReadonlySet<string> = new Set(['state', 'outcome', 'latest_outcome', 'latest_state']);
const GOOD: ReadonlySet<string> = new Set(['success', 'succeeded']);
const PENDING: ReadonlySet<string> = new Set(['unfinalized', 'running', 'pending']);
/** List cells longer than this are cut with `…` so rows stay on one line; inspect views show values whole. */
const MAX_LIST_CELL = 60;

const ansi = (code: string, text: string): string => `\u001b[${code}m${text}\u001b[0m`;

/**
 * Chooses the format and coloring: `--format` when given, else table on a
 * terminal and JSON otherwise (a pipe gets machine-readable output); color only
 * for tables on a terminal, never with `--no-color` or `NO_COLOR` set.
 * @throws UsageError for a format that is not json, table or yaml.
 */
export function renderOptionsFrom(values: Readonly<Record<string, FlagValue | undefined>>, io: { stdoutIsTTY: boolean; env: NodeJS.ProcessEnv }): RenderOptions {
  const raw = values.format;
  let format: OutputFormat;
  if (raw === undefined || raw === '') format = io.stdoutIsTTY ? 'table' : 'json';
  else if (typeof raw === 'string' && (OUTPUT_FORMATS as readonly string[]).includes(raw)) format = raw as OutputFormat;
  else throw new UsageError(`--format must be one of ${OUTPUT_FORMATS.join('|')}, got ${JSON.stringify(raw)}`);
  const noColor = values['no-color'] === true || (io.env.NO_COLOR !== undefined && io.env.NO_COLOR !== '');
  return { format, color: format === 'table' && io.stdoutIsTTY && !noColor };
}

/** Renders `data` in the chosen format; the text always ends with a newline. */
export function render(data: unknown, options: RenderOptions, hints: TableHints = {}): string {
  // Every read command prints through here: a job payload, a message or a last_error that
  // holds a URL with credentials is shown redacted, whatever the command (SPEC §8).
  const shown = redactJson(data);
  switch (options.format) {
    case 'json':
      return renderJson(shown);
    case 'yaml':
      return renderYaml(shown);
    case 'table':
      return renderTable(shown, options.color, hints);
  }
}

/** Two-space indented JSON; key order is the order the command built the object in. */
export function renderJson(data: unknown): string {
  return `${JSON.stringify(data, null, 2)}\n`;
}

/** YAML of the same data as the JSON form. */
export function renderYaml(data: unknown): string {
  return yamlStringify(data, { indent: 2, lineWidth: 0 });
}

/**
 * Tables: a list of objects becomes aligned columns; an object becomes aligned
 * `key value` lines (nested objects flattened as `a.b`), each of its lists of
 * objects a titled sub-table; anything else prints as itself.
 */
export function renderTable(data: unknown, color: boolean, hints: TableHints = {}): string {
  if (Array.isArray(data)) return listTable(data, color, hints, '');
  if (isRecord(data)) return recordTable(data, color);
  return `${cell(data, Infinity)}\n`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isScalar(v: unknown): boolean {
  return v === null || v === undefined || typeof v !== 'object';
}

/** One value as one line of text: control characters escaped, long values cut when `max` is finite. */
function cell(v: unknown, max: number): string {
  let s: string;
  if (v === null || v === undefined) s = '-';
  else if (typeof v === 'string') s = v === '' ? '""' : v;
  else if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') s = String(v);
  else if (Array.isArray(v) && v.every(isScalar)) s = v.length === 0 ? '(none)' : v.map((x) => cell(x, Infinity)).join(', ');
  else s = JSON.stringify(v);
  // A table row is one line: a newline inside a message would break the columns.
  s = s.replace(/\r?\n/g, '\\n').replace(/[\u0000-\u001f\u007f]/g, ' ');
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function paint(key: string, text: string, raw: unknown, color: boolean): string {
  if (!color || !STATUS_KEYS.has(key) || typeof raw !== 'string') return text;
  if (GOOD.has(raw)) return ansi('32', text);
  if (PENDING.has(raw)) return ansi('33', text);
  return ansi('31', text);
}

function listTable(rows: readonly unknown[], color: boolean, hints: TableHints, indent: string): string {
  if (rows.length === 0) return `${indent}${hints.empty ?? '(no results)'}\n`;
  if (!rows.every(isRecord)) return rows.map((r) => `${indent}${cell(r, Infinity)}\n`).join('');
  const records = rows as ReadonlyArray<Record<string, unknown>>;
  let columns = hints.columns;
  if (columns === undefined) {
    const seen = new Set<string>();
    for (const r of records) for (const [k, v] of Object.entries(r)) if (isScalar(v) || (Array.isArray(v) && v.every(isScalar))) seen.add(k);
    columns = [...seen];
  }
  const header = columns.map((c) => c.toUpperCase());
  const body = records.map((r) => columns.map((c) => cell(r[c], MAX_LIST_CELL)));
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: readonly string[], style: (text: string, i: number) => string): string =>
    `${indent}${cells.map((c, i) => style(i === cells.length - 1 ? c : c.padEnd(widths[i]!), i)).join('  ')}`.trimEnd();
  const out = [line(header, (t) => (color ? ansi('1', t) : t))];
  records.forEach((r, ri) => out.push(line(body[ri]!, (t, i) => paint(columns[i]!, t, r[columns[i]!], color))));
  return `${out.join('\n')}\n`;
}

function recordTable(data: Record<string, unknown>, color: boolean): string {
  const lines: Array<{ key: string; text: string; raw: unknown }> = [];
  const lists: Array<{ key: string; rows: unknown[] }> = [];
  const walk = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(obj)) {
      if (v === undefined) continue;
      const key = `${prefix}${k}`;
      if (isRecord(v)) {
        if (Object.keys(v).length === 0) lines.push({ key, text: '{}', raw: v });
        else walk(v, `${key}.`);
      } else if (Array.isArray(v) && v.length > 0 && !v.every(isScalar)) {
        lists.push({ key, rows: v });
      } else {
        lines.push({ key, text: cell(v, Infinity), raw: v });
      }
    }
  };
  walk(data, '');
  if (lines.length === 0 && lists.length === 0) return '(nothing to show)\n';
  const width = Math.max(0, ...lines.map((l) => l.key.length));
  const out = lines.map((l) => {
    const key = `${l.key}:`.padEnd(width + 1);
    const leaf = l.key.slice(l.key.lastIndexOf('.') + 1);
    return `${color ? ansi('1', key) : key}  ${paint(leaf, l.text, l.raw, color)}`;
  });
  let text = out.length > 0 ? `${out.join('\n')}\n` : '';
  for (const l of lists) {
    const title = `${l.key} (${l.rows.length}):`;
    text += `\n${color ? ansi('1', title) : title}\n${listTable(l.rows, color, {}, '  ')}`;
  }
  return text;
}
