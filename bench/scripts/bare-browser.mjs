// The reference for bench/browser-run.mjs: a bare puppeteer-core script that
// launches Chromium (the flags quarry uses), opens one page and exits.
//   node bench/scripts/bare-browser.mjs <url> [chromium]
import puppeteer from 'puppeteer-core';

const [url, executablePath = process.env.QUARRY_CHROMIUM_PATH ?? '/usr/bin/chromium'] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  pipe: true,
  args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.title();
} finally {
  await browser.close();
}
