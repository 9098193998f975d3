// A crawl, level 3 (no browser): an author's page → an `author` item.
import * as cheerio from 'cheerio';
import type { HttpContext, ScriptOptions } from 'quarry/sdk';

export const options: ScriptOptions = { browser: false };

export default async function author(ctx: HttpContext<{ url: string }>): Promise<void> {
  const res = await ctx.http.get(ctx.job.url);
  const $ = cheerio.load(res.text());
  await ctx.emit.item({ item_type: 'author', data: { name: $('h1').text().trim(), books: Number($('p.books').attr('data-count')) } });
}
