/**
 * `quarry adapter drain` (SPEC §11): sends every pending notification of the
 * ledger outbox to its recorded target, once each, and marks it delivered. A
 * notification that fails every retry stays pending for the next drain. Rows
 * carry no secrets: headers, and the credentials or query of a URL, come from
 * this command's own flags (or `--config`), for the rows whose recorded
 * target `--adapter-url` names.
 *
 * Exit 0 when nothing is left pending, 1 when a notification is still pending
 * after its retries (each printed with why), 2 for a usage error.
 */
import type { Ledger } from '../../ledger/ledger.js';
import { ADAPTER_DEFAULTS, AdapterConfigError, compileAdapter, parseHeaders, type AdapterOptions } from '../../notify/adapter-config.js';
import { deliverPending } from '../../notify/deliver.js';
import { closePublishers } from '../../notify/send.js';
import { STORAGE_FLAGS, OUTPUT_FLAGS } from '../common-flags.js';
import { parseFlags, renderFlagHelp, UsageError, type FlagSpec, type ParsedFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { render, renderOptionsFrom } from '../render.js';
import { LEDGER_FLAG, ledgerTargetFrom, openLedgerAt } from './ledger-common.js';
import { EXIT_NOT_FOUND, ReadCommandError, stringFlag } from './read-common.js';

const FLAGS: readonly FlagSpec[] = [
  ...STORAGE_FLAGS.filter((f) => ['storage-path', 'storage-backend', 'storage-dataset'].includes(f.name))
    .map((f) => (f.name === 'storage-dataset' ? { ...f, default: undefined, help: 'Only notifications of this dataset (default: every dataset of the ledger)' } : f)),
  LEDGER_FLAG,
  { name: 'config', type: 'string', arg: 'FILE', help: 'quarry run config file: its adapter and ledger/storage keys fill the flags not given', group: 'Run' },
  { name: 'adapter-url', type: 'string', arg: 'URL', help: 'The live URL (credentials, query) for rows whose recorded target it names', group: 'Notifications' },
  { name: 'adapter-header', type: 'list', arg: 'K=V', help: 'Webhook header (repeatable)', group: 'Notifications' },
  { name: 'adapter-timeout', type: 'duration', arg: 'DURATION', help: 'Timeout of each attempt (default 10s)', group: 'Notifications' },
  { name: 'adapter-retries', type: 'int', arg: 'N', help: 'Retries after a failed attempt (default 3)', group: 'Notifications' },
  ...OUTPUT_FLAGS,
];

const USAGE = `Usage: quarry adapter drain [--ledger L | --storage-path P] [--storage-dataset D] [--config F] [--adapter-header k=v …]

Sends every pending run_completed/tree_completed notification of the ledger
outbox (runs whose receiver was down, runs validated by quarry validate
--pending) to its recorded target, once each, and marks it delivered.
Receivers dedupe by notification_id. Exit 0 when nothing is left pending,
1 when a notification still failed after its retries (it stays pending).`;

interface DrainRow {
  notification_id: string;
  event_type: string;
  subject_id: string;
  target: string;
  status: 'delivered' | 'pending';
  attempts: number;
  error: string | null;
}

/** The flags the config file fills (adapter keys, ledger, storage), CLI first. */
async function withConfig(p: ParsedFlags, io: CliIO): Promise<ParsedFlags['values']> {
  const file = stringFlag(p.values, 'config');
  if (file === undefined) return p.values;
  const { loadRunConfig } = await import('../config.js');
  const cfg = await loadRunConfig(file, io.cwd, io.env);
  const values = { ...p.values };
  for (const k of ['ledger', 'storage-path', 'storage-backend', 'adapter-url', 'adapter-header', 'adapter-timeout', 'adapter-retries', 'adapter', 'adapter-channel']) {
    if (!p.explicit.has(k) && cfg.values[k] !== undefined) values[k] = cfg.values[k];
  }
  return values;
}

export async function adapterDrainCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const p = parseFlags(argv, FLAGS);
  if (p.help) {
    io.stdout(`${USAGE}\n${renderFlagHelp(FLAGS)}\n`);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(p.positionals[0])}`);
  const values = await withConfig(p, io);
  const options = renderOptionsFrom(values, io);
  let headers: Record<string, string>;
  let live: AdapterOptions | undefined;
  const timeoutMs = (values['adapter-timeout'] as number | undefined) ?? ADAPTER_DEFAULTS.timeoutMs;
  const retries = (values['adapter-retries'] as number | undefined) ?? ADAPTER_DEFAULTS.retries;
  try {
    headers = parseHeaders((values['adapter-header'] as string[] | undefined) ?? []);
    const url = stringFlag(values, 'adapter-url');
    if (url !== undefined) {
      const kind = /^rediss?:/i.test(url) ? 'redis' : 'webhook';
      live = compileAdapter({ kind, url, channel: stringFlag(values, 'adapter-channel'), headers: kind === 'webhook' ? ((values['adapter-header'] as string[] | undefined) ?? []) : [], timeoutMs, retries });
    } else {
      compileAdapter({ kind: 'webhook', url: 'http://x/', timeoutMs, retries });
    }
  } catch (err) {
    if (err instanceof AdapterConfigError) throw new UsageError(err.message);
    throw err;
  }
  let ledger: Ledger | undefined;
  try {
    // A writer: it writes delivery columns (the only ledger write outside the validator besides the binding, SPEC §8).
    ledger = await openLedgerAt(ledgerTargetFrom(values, io.cwd), true);
    const dataset = stringFlag(values, 'storage-dataset');
    const done = await deliverPending(ledger, {
      ...(dataset !== undefined ? { dataset } : {}),
      ...(live ? { adapter: live } : {}),
      defaults: { headers, timeoutMs, retries },
      signal: io.signal,
    });
    const rows: DrainRow[] = done.map((d) => ({
      notification_id: d.row.notification_id,
      event_type: d.row.payload.event_type,
      subject_id: d.row.subject_id,
      target: d.row.adapter.target,
      status: d.result.delivered ? 'delivered' : 'pending',
      attempts: d.result.attempts,
      error: d.result.error,
    }));
    io.stdout(render(rows, options, { columns: ['notification_id', 'event_type', 'subject_id', 'target', 'status', 'attempts', 'error'] }));
    const left = rows.filter((r) => r.status === 'pending');
    for (const r of left) io.stderr(`quarry adapter drain: notification ${r.notification_id} (${r.subject_id}) still pending: ${r.error ?? 'not sent'}; it stays in the outbox for the next drain\n`);
    if (rows.length === 0) io.stderr('quarry adapter drain: nothing pending\n');
    return left.length > 0 ? 1 : 0;
  } catch (err) {
    if (err instanceof ReadCommandError) {
      io.stderr(`quarry adapter drain: ${err.message}\n`);
      return EXIT_NOT_FOUND;
    }
    throw err;
  } finally {
    await closePublishers();
    await ledger?.close();
  }
}
