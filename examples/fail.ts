// An intentional failure: the throw becomes a run_error event (error_type script_error), exit code 1.
// Everything emitted before the throw is still stored, and the run is never authoritative.
import type { QuarryContext } from 'quarry/sdk';

export default async function fail(ctx: QuarryContext<{ url: string }>): Promise<void> {
  await ctx.page.goto(ctx.job.url, { waitUntil: 'domcontentloaded' });
  await ctx.emit.item({ item_type: 'book', data: { id: 'partial' } });
  const missing = await ctx.page.$('#does-not-exist');
  if (!missing) throw new Error('expected #does-not-exist on the page; the site changed');
}
