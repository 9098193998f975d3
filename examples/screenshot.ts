// A screenshot as an artifact: bytes travel as chunks, the artifact event commits them.
import type { QuarryContext } from 'quarry/sdk';

export default async function screenshot(ctx: QuarryContext<{ url: string }>): Promise<void> {
  await ctx.page.setViewport({ width: 800, height: 600 });
  await ctx.page.goto(ctx.job.url, { waitUntil: 'domcontentloaded' });
  const png = await ctx.page.screenshot({ type: 'png' });
  const artifactId = await ctx.emit.artifact({ name: 'front-page.png', content_type: 'image/png', data: Buffer.from(png) });
  await ctx.emit.item({ item_type: 'page_capture', data: { url: ctx.job.url, artifact_id: artifactId } });
}
