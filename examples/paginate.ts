// Follows "next" links; a checkpoint after each page says how far the run got.
// quarry run --script examples/paginate.ts --source bookshop --job '{"url":"http://127.0.0.1:8080/"}'
import type { QuarryContext } from 'quarry/sdk';

interface Job {
  url: string;
  max_pages?: number;
}

export default async function paginate(ctx: QuarryContext<Job>): Promise<void> {
  let url: string | null = ctx.job.url;
  let page = 0;
  const max = ctx.job.max_pages ?? 10;
  while (url && page < max) {
    page++;
    await ctx.page.goto(url, { waitUntil: 'domcontentloaded' });
    const rows = await ctx.page.$$eval('li.book', (lis) =>
      lis.map((li) => ({ id: li.getAttribute('data-id'), title: li.querySelector('.title')?.textContent?.trim() ?? '' })),
    );
    for (const row of rows) await ctx.emit.item({ item_type: 'book', data: { ...row, page } });
    await ctx.emit.checkpoint({ checkpoint_id: `page-${page}`, note: `${rows.length} books` });
    url = await ctx.page.$eval('a.next', (a) => (a as HTMLAnchorElement).href).catch(() => null);
  }
  await ctx.emit.runComplete({ summary: { pages: page } });
}
