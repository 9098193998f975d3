// storage.put writes a sidecar file into the run's partition (files/<name>) and returns its key.
import type { QuarryContext } from 'quarry/sdk';

export default async function sidecar(ctx: QuarryContext<{ url: string }>): Promise<void> {
  await ctx.page.goto(ctx.job.url, { waitUntil: 'domcontentloaded' });
  const html = await ctx.page.content();
  const { key } = await ctx.storage.put({ filename: 'front-page.html', content_type: 'text/html', data: Buffer.from(html) });
  await ctx.emit.item({ item_type: 'raw_page', data: { url: ctx.job.url, storage_key: key, bytes: html.length } });
}
