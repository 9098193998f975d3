// One customer's campaign stats for one day, from the ads dashboard behind its login form.
// The customer is the run's --category and the date its --day; the job only says where the site is.
// The login comes from the environment (ADS_USER, ADS_PASSWORD), never from the job, which is stored.
// The dashboard is server-rendered HTML, so no browser: the form is posted, the session cookie kept.
//
//   quarry run --script extract.ts --source ads --category acme --day 2026-11-03 \
//     --job '{"url":"http://127.0.0.1:8090/"}'
import type { HttpContext, ScriptOptions } from 'quarry/sdk';
import * as cheerio from 'cheerio';

export const options: ScriptOptions = { browser: false };

export default async function extract(ctx: HttpContext<{ url: string }>): Promise<void> {
  const { category: customer, day } = ctx.run.partition!;
  const { ADS_USER: username, ADS_PASSWORD: password } = process.env;
  if (!username || !password) throw new Error('set ADS_USER and ADS_PASSWORD to the dashboard login');

  const login = await ctx.http.post(new URL('/login', ctx.job.url), { form: { username, password }, throwOnHttpError: false });
  if (login.status !== 200) throw new Error(`the dashboard refused the login (HTTP ${login.status}): check ADS_USER and ADS_PASSWORD`);

  let url: string | undefined = new URL(`/customers/${customer}/days/${day}`, ctx.job.url).href;
  let pages = 0;
  let campaigns = 0;
  while (url) {
    const $ = cheerio.load(await ctx.http.getText(url)); // a 500 fails the run, after ctx.http's retries
    pages++;
    for (const tr of $('tr[data-campaign]')) {
      const cell = (name: string) => $(tr).find(`td.${name}`).text();
      await ctx.emit.item({
        item_type: 'campaign_day',
        data: {
          campaign_id: $(tr).attr('data-campaign'),
          name: cell('name'),
          impressions: Number(cell('impressions')),
          clicks: Number(cell('clicks')),
          cost_cents: Math.round(Number(cell('cost')) * 100),
        },
      });
      campaigns++;
    }
    const next = $('a.next').attr('href');
    url = next ? new URL(next, url).href : undefined;
  }
  // A day without campaigns is a broken page, not a quiet day: fail rather than publish nothing.
  if (campaigns === 0) throw new Error(`no campaigns found for ${customer} on ${day}`);
  await ctx.emit.runComplete({ summary: { customer, day, pages, campaigns } });
}
