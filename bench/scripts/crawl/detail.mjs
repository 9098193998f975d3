// A detail page of bench/crawl.mjs, rendered in Chromium: its id and price as one item (as the reference loops extract).
export default async function detail({ job, page, emit }) {
  await page.goto(job.url, { waitUntil: 'domcontentloaded' });
  const price = Number(await page.$eval('p.price', (p) => p.textContent));
  await emit.item({ item_type: 'detail', data: { id: Number(/\/detail\/(\d+)$/.exec(job.url)[1]), price } });
}
