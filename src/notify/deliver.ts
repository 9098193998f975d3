/**
 * Delivering outbox rows (SPEC §11): lease pending rows, send each to its
 * target, write the delivery columns. `quarry run` delivers the rows its own
 * validations inserted; `quarry adapter drain` delivers every pending row.
 * A row that fails every retry stays pending (never lost) for the next drain;
 * a delivered row is never sent again, and receivers dedupe by
 * `notification_id` should a crash fall between a send and its record.
 */
import type { Ledger } from '../ledger/ledger.js';
import { newLeaseOwner, type NotificationRow } from '../ledger/outbox.js';
import { resolveTarget, type AdapterOptions } from './adapter-config.js';
import { sendNotification, type SendOptions, type SendResult } from './send.js';

/** What to deliver and how. */
export interface DeliverOptions extends SendOptions {
  /** Only these rows (a run's own); absent: every pending row (a drain). */
  ids?: readonly string[];
  dataset?: string;
  /** The live adapter (credentials, query, headers) for rows whose recorded target it names. */
  adapter?: AdapterOptions;
  /** Headers, timeout and retries for rows it does not name. */
  defaults: { headers: Record<string, string>; timeoutMs: number; retries: number };
  /** Rows per lease. Default 50. */
  batch?: number;
  now?: () => Date;
}

/** One row's delivery. */
export interface Delivery {
  row: NotificationRow;
  result: SendResult;
  /** False when the lease was lost before the result could be recorded (another sender took the row). */
  recorded: boolean;
}

/** The longest one row's sending may take: every attempt's timeout and every backoff, with margin. */
function leaseMs(a: { timeoutMs: number; retries: number }): number {
  let ms = 60_000;
  for (let n = 0; n <= a.retries; n++) ms += a.timeoutMs + Math.min(30_000, 1000 * 2 ** n) * 1.25;
  return ms;
}

/**
 * Sends pending rows, one at a time in creation order, and records each result.
 * @throws LedgerError when the ledger cannot be read or written (rows stay pending).
 */
export async function deliverPending(ledger: Ledger, options: DeliverOptions): Promise<Delivery[]> {
  const now = options.now ?? (() => new Date());
  const owner = newLeaseOwner();
  const out: Delivery[] = [];
  const seen = new Set<string>();
  for (;;) {
    if (options.signal?.aborted) break;
    const batch = options.batch ?? 50;
    const span = leaseMs(options.adapter ?? options.defaults) * batch;
    const rows = await ledger.claimNotifications(
      // Rows this call already tried (and left pending) come back first: ask for enough to get past them.
      { ...(options.ids ? { ids: options.ids } : {}), ...(options.dataset ? { dataset: options.dataset } : {}), limit: batch + seen.size },
      { owner, until: new Date(now().getTime() + span) },
      now(),
    );
    let sent = 0;
    for (const row of rows) {
      if (seen.has(row.notification_id)) {
        // Tried once in this call: released untouched for the next drain.
        await ledger.recordDelivery(row.notification_id, owner, { delivered: false, attempts: 0, error: null }, now());
        continue;
      }
      seen.add(row.notification_id);
      sent++;
      if (options.signal?.aborted) {
        await ledger.recordDelivery(row.notification_id, owner, { delivered: false, attempts: 0, error: null }, now());
        continue;
      }
      const target = resolveTarget(row.adapter, options.adapter, options.defaults);
      const result = await sendNotification(target, JSON.stringify(row.payload), options);
      const recorded = await ledger.recordDelivery(row.notification_id, owner, { delivered: result.delivered, attempts: result.attempts, error: result.error }, now());
      out.push({ row, result, recorded });
    }
    if (sent === 0 || options.ids !== undefined) break;
  }
  return out;
}
