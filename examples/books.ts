// List page → items. Job: { "url": "http://127.0.0.1:8080/" }
// quarry run --script examples/books.ts --source bookshop --job '{"url":"http://127.0.0.1:8080/"}'
import type { QuarryContext } from 'quarry/sdk';

interface Job {
  url: string;
}

export default async function books(ctx: QuarryContext<Job>): Promise<void> {
  await ctx.page.goto(ctx.job.url, { waitUntil: 'domcontentloaded' });
  const books = await ctx.page.$$eval('li.book', (lis) =>
    lis.map((li) => ({
      id: li.getAttribute('data-id'),
      title: li.querySelector('.title')?.textContent?.trim() ?? '',
      price: li.querySelector('.price')?.textContent?.trim() ?? '',
      in_stock: li.querySelector('.stock')?.textContent?.includes('in stock') ?? false,
    })),
  );
  for (const book of books) await ctx.emit.item({ item_type: 'book', data: book });
  await ctx.emit.info('list page scraped', { count: books.length });
}
