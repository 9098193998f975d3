// The references of bench/crawl.mjs: a bare puppeteer-core crawl of the same
// site at the same parallelism, one Chromium, extracting what detail.mjs does.
//   node bench/scripts/crawl-loop.mjs <base> <parallel> context|tab|context-flags
// `context`: a new BrowserContext (and page) per URL, closed after it, as
// quarry gives each run; `tab`: one page per worker, reused for every URL;
// `context-flags`: `context` with Chromium started on quarry's own flags
// (dist/runtime/chromium.js, which disables the spare renderer and the
// omnibox popups), to tell quarry's flags apart from its run slots.
// Prints {"pages": N, "items": N} on stdout.
import puppeteer from 'puppeteer-core';
import { CHROMIUM_FLAGS } from '../../dist/runtime/chromium.js';

const [base, parallelArg, mode] = process.argv.slice(2);
const parallel = Number(parallelArg);
const browser = await puppeteer.launch({
  executablePath: process.env.QUARRY_CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: true,
  pipe: true,
  args: mode === 'context-flags'
    ? [...CHROMIUM_FLAGS]
    : ['--no-sandbox', '--headless', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
});
const items = [];
try {
  const first = await browser.newPage();
  await first.goto(`${base}/list`, { waitUntil: 'domcontentloaded' });
  const urls = await first.$$eval('a.detail', (as) => as.map((a) => a.href));
  await first.close();
  const extract = async (page, url) => {
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    const price = Number(await page.$eval('p.price', (p) => p.textContent));
    items.push({ id: Number(/\/detail\/(\d+)$/.exec(url)[1]), price });
  };
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    const tab = mode === 'tab' ? await browser.newPage() : undefined;
    while (next < urls.length) {
      const url = urls[next++];
      if (tab) {
        await extract(tab, url);
      } else {
        const context = await browser.createBrowserContext();
        try {
          await extract(await context.newPage(), url);
        } finally {
          await context.close();
        }
      }
    }
  }));
  process.stdout.write(`${JSON.stringify({ pages: urls.length + 1, items: items.length })}\n`);
} finally {
  await browser.close();
}
