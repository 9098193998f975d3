// A crawl, level 2 (no browser): one book's detail page → a `book` item, and
// its author's page enqueued (several books share an author: the tree runs it once).
import * as cheerio from 'cheerio';
import type { HttpContext, ScriptOptions } from 'quarry/sdk';

export const options: ScriptOptions = { browser: false };

export default async function book(ctx: HttpContext<{ url: string }>): Promise<void> {
  const res = await ctx.http.get(ctx.job.url);
  const $ = cheerio.load(res.text());
  const author = $('a.author');
  await ctx.emit.item({
    item_type: 'book',
    data: { url: res.url, title: $('h1').text().trim(), price: $('p.price').text().trim(), author: author.text().trim() },
  });
  const href = author.attr('href');
  if (href !== undefined) await ctx.emit.enqueue({ target: './author.ts', params: { url: new URL(href, res.url).href } });
}
