// Root of bench/crawl.mjs: opens the listing in Chromium and enqueues every detail page.
export default async function listing({ job, page, emit }) {
  await page.goto(`${job.base}/list`, { waitUntil: 'domcontentloaded' });
  const hrefs = await page.$$eval('a.detail', (as) => as.map((a) => a.href));
  for (const url of hrefs) await emit.enqueue({ target: './detail.mjs', params: { url } });
}
