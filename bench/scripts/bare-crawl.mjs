// The bare reference for the fast no-browser crawl (bench/crawl-http.mjs):
// undici + cheerio, at most `parallel` pages at once; each page's item is
// written to its own file with fsync and one SQLite row per page is inserted
// with synchronous=FULL.
//   node bench/scripts/bare-crawl.mjs <base url> <out dir> <parallel>
import { openSync, writeSync, fsyncSync, closeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { load } from 'cheerio';
import { request } from 'undici';

const [base, out, parallelArg] = process.argv.slice(2);
const parallel = Number(parallelArg);
mkdirSync(out, { recursive: true });
const db = new Database(join(out, 'pages.db'));
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec('CREATE TABLE IF NOT EXISTS page (url TEXT PRIMARY KEY, title TEXT, price INTEGER)');
const insert = db.prepare('INSERT INTO page (url, title, price) VALUES (?, ?, ?)');

const getText = async (url) => {
  const r = await request(url);
  if (r.statusCode !== 200) throw new Error(`${url}: ${r.statusCode}`);
  return r.body.text();
};
const $list = load(await getText(`${base}/list`));
const urls = $list('a.detail').map((_, a) => `${base}${$list(a).attr('href')}`).get();
let next = 0;
async function worker() {
  while (next < urls.length) {
    const i = next++;
    const $ = load(await getText(urls[i]));
    const item = { url: urls[i], title: $('h1').text(), price: Number($('.price').text()), desc_bytes: $('.desc').text().length };
    const fd = openSync(join(out, `item-${i}.json`), 'w');
    writeSync(fd, JSON.stringify(item));
    fsyncSync(fd);
    closeSync(fd);
    insert.run(item.url, item.title, item.price);
  }
}
await Promise.all(Array.from({ length: parallel }, worker));
db.close();
