// A crawl, level 1 (no browser): walks the bookshop's list pages and enqueues
// every book's detail page. Run from this folder (targets resolve here):
//   cd examples/crawl
//   quarry run --script listing.ts --source bookshop --category crawl \
//     --job '{"url":"http://127.0.0.1:8080/"}' --depth 2 --max-runs 100 --parallel 4
import * as cheerio from 'cheerio';
import type { HttpContext, ScriptOptions } from 'quarry/sdk';

export const options: ScriptOptions = { browser: false };

export default async function listing(ctx: HttpContext<{ url: string }>): Promise<void> {
  let url: string | undefined = ctx.job.url;
  let pages = 0;
  while (url !== undefined) {
    const res = await ctx.http.get(url);
    const $ = cheerio.load(res.text());
    pages++;
    for (const a of $('li.book a.title').toArray()) {
      // Level 2: one run per book, its URL as the job (the dedup key is target + params).
      await ctx.emit.enqueue({ target: './book.ts', params: { url: new URL($(a).attr('href') ?? '', res.url).href } });
    }
    const next = $('a.next').attr('href');
    url = next === undefined ? undefined : new URL(next, res.url).href;
  }
  await ctx.emit.item({ item_type: 'listing', data: { pages } });
}
