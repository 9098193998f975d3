// A detail page of the fast no-browser crawl: GET, parse with cheerio, one item.
import { load } from 'cheerio';

export const options = { browser: false };

export default async function detail({ job, http, emit }) {
  const $ = load(await http.getText(job.url));
  await emit.item({ item_type: 'detail', data: { url: job.url, title: $('h1').text(), price: Number($('.price').text()), desc_bytes: $('.desc').text().length } });
}
