// No browser: list pages fetched with ctx.http and parsed with cheerio, "next" links followed.
// `options = { browser: false }` means no Chromium is started for this run (SPEC §13);
// `quarry run --dry-run --script examples/books-http.ts --source bookshop` checks it.
// quarry run --script examples/books-http.ts --source bookshop --job '{"url":"http://127.0.0.1:8080/"}'
import * as cheerio from 'cheerio';
import type { HttpContext, ScriptOptions } from 'quarry/sdk';

export const options: ScriptOptions = { browser: false };

interface Job {
  url: string;
  max_pages?: number;
}

export default async function booksHttp(ctx: HttpContext<Job>): Promise<void> {
  let url: string | undefined = ctx.job.url;
  let page = 0;
  const max = ctx.job.max_pages ?? 10;
  while (url !== undefined && page < max) {
    page++;
    const res = await ctx.http.get(url, { headers: { accept: 'text/html' } });
    const $ = cheerio.load(res.text());
    const books = $('li.book')
      .toArray()
      .map((li) => {
        const el = $(li);
        return {
          id: el.attr('data-id') ?? '',
          title: el.find('.title').text().trim(),
          price_cents: Math.round(Number(el.find('.price').text().replace(/[^0-9.]/g, '')) * 100),
          in_stock: el.find('.stock').text().includes('in stock'),
          rating: Number(el.find('.rating').attr('data-rating')),
          page,
        };
      });
    for (const book of books) await ctx.emit.item({ item_type: 'book', data: book });
    await ctx.emit.checkpoint({ checkpoint_id: `page-${page}`, note: `${books.length} books` });
    const next = $('a.next').attr('href');
    // Relative links resolve against the URL the page was finally served from.
    url = next === undefined ? undefined : new URL(next, res.url).href;
  }
  await ctx.emit.runComplete({ summary: { pages: page } });
}
