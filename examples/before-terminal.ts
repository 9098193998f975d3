// beforeTerminal runs with emit still open, on success and on error: a place for a last summary.
import type { QuarryContext } from 'quarry/sdk';

let seen = 0;

export async function beforeTerminal(signal: { outcome: 'completed' } | { outcome: 'error'; error: unknown }, ctx: QuarryContext<{ url: string }>) {
  await ctx.emit.item({ item_type: 'run_summary', data: { outcome: signal.outcome, books_seen: seen } });
}

export default async function run(ctx: QuarryContext<{ url: string }>): Promise<void> {
  await ctx.page.goto(ctx.job.url, { waitUntil: 'domcontentloaded' });
  seen = await ctx.page.$$eval('li.book', (lis) => lis.length);
}
