/**
 * `quarry run` sends its own notifications (SPEC §11): after validation wrote
 * the outbox rows, the invocation's final one is delivered and marked so; the
 * rows of earlier `--retries` attempts are marked superseded. Whatever fails
 * here, the row stays pending in the outbox for `quarry adapter drain`, and
 * the exit code never changes.
 */
import type { Ledger } from '../../ledger/ledger.js';
import { ADAPTER_DEFAULTS, type AdapterOptions } from '../../notify/adapter-config.js';
import { deliverPending } from '../../notify/deliver.js';
import { closePublishers } from '../../notify/send.js';
import type { NotificationReport } from '../../runtime/report.js';

export type { NotificationReport } from '../../runtime/report.js';

/**
 * Supersedes all but the last of `ids`, then delivers the last. Never throws.
 * `adapter` (the live options) is used for rows whose recorded target it names.
 */
export async function sendOwnNotifications(ledger: Ledger, ids: readonly string[], adapter: AdapterOptions | undefined, signal: AbortSignal): Promise<NotificationReport> {
  const last = ids[ids.length - 1]!;
  const earlier = ids.slice(0, -1);
  const report: NotificationReport = { notification_id: last, target: '', status: 'pending', attempts: 0, error: null, superseded: earlier };
  try {
    if (earlier.length > 0) await ledger.supersedeNotifications(earlier, last, new Date());
    const done = await deliverPending(ledger, {
      ids: [last],
      ...(adapter ? { adapter } : {}),
      defaults: { headers: adapter?.headers ?? {}, timeoutMs: adapter?.timeoutMs ?? ADAPTER_DEFAULTS.timeoutMs, retries: adapter?.retries ?? ADAPTER_DEFAULTS.retries },
      signal,
    });
    const d = done[0];
    if (d === undefined) {
      report.error = 'not sent: another sender holds it (a drain running now), or it was delivered already';
      return report;
    }
    report.target = d.row.adapter.target;
    report.status = d.result.delivered ? 'delivered' : 'pending';
    report.attempts = d.result.attempts;
    report.error = d.result.error;
  } catch (err) {
    report.error = `the ledger could not be read or written: ${(err as Error).message.split('\n')[0]}`;
  } finally {
    await closePublishers();
  }
  return report;
}
