// extract.ts in a browser: the same items, the login form filled in and submitted in Chromium.
// Use it when the dashboard needs JavaScript; it costs a browser per run (or one shared through
// QUARRY_BROWSER_ENDPOINT). The login comes from the environment (ADS_USER, ADS_PASSWORD), never the job.
//
//   quarry run --script examples/ads-report/extract-browser.ts --source ads --category acme --day 2026-11-03 \
//     --job '{"url":"http://127.0.0.1:8090/"}'
import type { QuarryContext } from 'quarry/sdk';

export default async function extract(ctx: QuarryContext<{ url: string }>): Promise<void> {
  const { category: customer, day } = ctx.run.partition!;
  const { ADS_USER: user, ADS_PASSWORD: password } = process.env;
  if (!user || !password) throw new Error('set ADS_USER and ADS_PASSWORD to the dashboard login');
  const page = ctx.page;

  await page.goto(new URL('/login', ctx.job.url).href);
  await page.type('#username', user);
  await page.type('#password', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  if (await page.$('p.error')) throw new Error('the dashboard refused the login: check ADS_USER and ADS_PASSWORD');

  let url: string | null = new URL(`/customers/${customer}/days/${day}`, ctx.job.url).href;
  let pages = 0;
  let rows = 0;
  while (url) {
    const res = await page.goto(url);
    if (!res?.ok()) throw new Error(`${url} answered HTTP ${res?.status()}`);
    pages++;
    const campaigns = await page.$$eval('tr[data-campaign]', (trs) => trs.map((tr) => ({
      campaign_id: tr.getAttribute('data-campaign'),
      name: tr.querySelector('.name')?.textContent ?? '',
      impressions: Number(tr.querySelector('.impressions')?.textContent),
      clicks: Number(tr.querySelector('.clicks')?.textContent),
      cost_cents: Math.round(Number(tr.querySelector('.cost')?.textContent) * 100),
    })));
    for (const c of campaigns) await ctx.emit.item({ item_type: 'campaign_day', data: c });
    rows += campaigns.length;
    url = await page.$eval('a.next', (a) => (a as HTMLAnchorElement).href).catch(() => null);
  }
  // A day with no campaigns is a broken page, not a quiet day: fail rather than publish nothing.
  if (rows === 0) throw new Error(`no campaigns found for ${customer} on ${day}`);
  await ctx.emit.runComplete({ summary: { customer, day, pages, campaigns: rows } });
}
