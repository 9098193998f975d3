// One GET of the job's URL with ctx.http, one item: the cheapest useful no-browser run (bench/no-browser-run.mjs).
import type { HttpContext, ScriptOptions } from 'quarry/sdk';

export const options: ScriptOptions = { browser: false };

export default async function getOne(ctx: HttpContext<{ url: string }>): Promise<void> {
  const html = await ctx.http.getText(ctx.job.url);
  await ctx.emit.item({ item_type: 'page', data: { url: ctx.job.url, bytes: html.length } });
}
