// The volume-first root: every customer the dashboard lists, each handed to extract.ts as a
// run of one crawl tree (one tree per day). The customer becomes the child run's --category
// (a per-enqueue override), so extract.ts runs unchanged and each (customer, day) is its own
// partition; the tree's data becomes authoritative as one (or not at all).
//
//   quarry run --script customers.ts --source ads --category customers --day 2026-11-03 \
//     --job '{"url":"http://127.0.0.1:8090/"}' --depth 1 --max-runs 100 --parallel 4 \
//     --policy buffered --buffer-events 1000
import type { HttpContext, ScriptOptions } from 'quarry/sdk';
import * as cheerio from 'cheerio';

export const options: ScriptOptions = { browser: false };

export default async function customers(ctx: HttpContext<{ url: string }>): Promise<void> {
  const { ADS_USER: username, ADS_PASSWORD: password } = process.env;
  if (!username || !password) throw new Error('set ADS_USER and ADS_PASSWORD to the dashboard login');
  const login = await ctx.http.post(new URL('/login', ctx.job.url), { form: { username, password }, throwOnHttpError: false });
  if (login.status !== 200) throw new Error(`the dashboard refused the login (HTTP ${login.status}): check ADS_USER and ADS_PASSWORD`);

  const $ = cheerio.load(await ctx.http.getText(new URL('/', ctx.job.url).href));
  const names = $('a.customer').map((_, a) => $(a).attr('data-customer')).get();
  if (names.length === 0) throw new Error('the dashboard listed no customers');
  for (const customer of names) {
    // The customer is in the params too: they make the dedup key, so each customer is one item of the tree.
    await ctx.emit.enqueue({ target: './extract.ts', params: { url: ctx.job.url, customer }, category: customer });
    await ctx.emit.item({ item_type: 'customer', data: { customer } });
  }
}
