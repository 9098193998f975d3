// The fast no-browser crawl's fixture site (issue 16 item 3): /list links
// `pages` detail pages; each detail page is ~1 KB of HTML answered after
// `delayMs` (50 ms), with a title, a price and a description.
import { createServer } from 'node:http';

export async function startCrawlSite({ pages, delayMs = 50 }) {
  const filler = 'Quarry fixture text. '.repeat(36);
  const server = createServer((req, res) => {
    const send = (status, html) => res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    if (req.url === '/list') {
      send(200, `<!doctype html><html><body>${Array.from({ length: pages }, (_, i) => `<a class="detail" href="/detail/${i + 1}">Detail ${i + 1}</a>`).join('\n')}</body></html>`);
      return;
    }
    const m = /^\/detail\/(\d+)$/.exec(req.url ?? '');
    if (!m || Number(m[1]) < 1 || Number(m[1]) > pages) {
      send(404, 'not found');
      return;
    }
    const id = Number(m[1]);
    setTimeout(() => send(200, `<!doctype html><html><head><title>Detail ${id}</title></head><body><h1>Detail ${id}</h1><span class="price">${100 + id}</span><p class="desc">${filler}</p></body></html>`), delayMs);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}
