// Root of the fast no-browser crawl (bench/crawl-http.mjs): GETs /list, parses it with cheerio, enqueues every detail page.
import { load } from 'cheerio';

export const options = { browser: false };

export default async function listing({ job, http, emit }) {
  const $ = load(await http.getText(`${job.base}/list`));
  const hrefs = $('a.detail').map((_, a) => $(a).attr('href')).get();
  for (const href of hrefs) await emit.enqueue({ target: './crawl-detail.mjs', params: { url: `${job.base}${href}` } });
  await emit.item({ item_type: 'listing', data: { links: hrefs.length } });
}
