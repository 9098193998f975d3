// One page in the browser, one item: the cheapest useful browser run (bench/browser-run.mjs).
import type { QuarryContext } from 'quarry/sdk';

export default async function browserOne(ctx: QuarryContext<{ url: string }>): Promise<void> {
  await ctx.page.goto(ctx.job.url, { waitUntil: 'domcontentloaded' });
  await ctx.emit.item({ item_type: 'page', data: { url: ctx.job.url, title: await ctx.page.title() } });
}
