// A small bookshop served on 127.0.0.1 for the examples, the demo and the tests.
// Deterministic content: 3 list pages of 8 books, a detail page per book.
// Run alone: node examples/site/server.mjs [port]
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

const TITLES = [
  'A Field Guide to Ferns', 'The Quiet Compiler', 'Rivers of Basalt', 'Notes on Cartography', 'The Glass Orchard',
  'Small Engines', 'An Atlas of Tides', 'The Lantern Keeper', 'Weather for Sailors', 'Salt and Iron',
  'The Paper Observatory', 'Migrations', 'Brief History of Bridges', 'The Copper Kettle', 'Letters from the Delta',
  'The Last Ferry', 'Granite Songs', 'A Year of Moths', 'The Clockmaker\u2019s Daughter', 'Harbor Lights',
  'Maps of Nowhere', 'The Orchard Ledger', 'Winter Bees', 'Under the Viaduct',
];
export const PAGE_SIZE = 8;
export const BOOKS = TITLES.map((title, i) => ({
  id: `b${String(i + 1).padStart(3, '0')}`,
  title,
  price_cents: 899 + ((i * 137) % 2100),
  in_stock: i % 5 !== 3,
  rating: 1 + (i % 5),
}));
export const PAGES = Math.ceil(BOOKS.length / PAGE_SIZE);
// A third level for the crawl example: every book has an author page, each linked from several books.
export const AUTHORS = ['Ada Lindqvist', 'Bram Okafor', 'Chen Wei', 'Dalia Haddad', 'Emil Varga', 'Farah Quint'];
const slug = (name) => name.toLowerCase().replace(/[^a-z]+/g, '-');
const authorOf = (i) => AUTHORS[i % AUTHORS.length];

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const layout = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;margin:2rem;background:#fbfaf7}li.book{margin:.4rem 0}.price{color:#0a6}</style></head>
<body><h1>${esc(title)}</h1>${body}</body></html>`;

function listPage(page) {
  const books = BOOKS.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
  const items = books.map((b) => `<li class="book" data-id="${b.id}"><a class="title" href="/book/${b.id}">${esc(b.title)}</a>
    <span class="price">$${(b.price_cents / 100).toFixed(2)}</span>
    <span class="stock">${b.in_stock ? 'in stock' : 'sold out'}</span>
    <span class="rating" data-rating="${b.rating}">${'\u2605'.repeat(b.rating)}</span></li>`).join('\n');
  const next = page < PAGES ? `<a class="next" href="/?page=${page + 1}">next</a>` : '';
  return layout(`Books, page ${page} of ${PAGES}`, `<ul id="books">${items}</ul><nav>${next}</nav>`);
}

function detailPage(id) {
  const b = BOOKS.find((x) => x.id === id);
  if (!b) return undefined;
  const author = authorOf(BOOKS.indexOf(b));
  return layout(b.title, `<p class="price">$${(b.price_cents / 100).toFixed(2)}</p><p class="description">${esc(b.title)} is book ${b.id}.</p>
    <p>by <a class="author" href="/author/${slug(author)}">${esc(author)}</a></p>`);
}

function authorPage(s) {
  const name = AUTHORS.find((a) => slug(a) === s);
  if (!name) return undefined;
  const books = BOOKS.filter((_, i) => authorOf(i) === name);
  return layout(name, `<p class="books" data-count="${books.length}">${books.length} books</p><ul>${books.map((b) => `<li>${esc(b.title)}</li>`).join('')}</ul>`);
}

/** Starts the site; resolves with its base URL and a close function. */
export function startSite(port = 0) {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let html;
    if (url.pathname === '/') {
      const page = Number(url.searchParams.get('page') ?? '1');
      if (Number.isInteger(page) && page >= 1 && page <= PAGES) html = listPage(page);
    } else if (url.pathname.startsWith('/book/')) {
      html = detailPage(url.pathname.slice('/book/'.length));
    } else if (url.pathname.startsWith('/author/')) {
      html = authorPage(url.pathname.slice('/author/'.length));
    } else if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    if (html === undefined) {
      res.writeHead(404, { 'content-type': 'text/html' }).end(layout('Not found', '<p>No such page.</p>'));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address();
      resolve({ url: `http://127.0.0.1:${bound}/`, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const site = await startSite(Number(process.argv[2] ?? 8080));
  process.stdout.write(`bookshop fixture at ${site.url}\n`);
}
