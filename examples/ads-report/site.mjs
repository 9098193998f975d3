// A fixture "ads dashboard" served on 127.0.0.1 for the ads-report example, the demo and the tests.
// Customers × days of campaign stats behind a login form, paginated, deterministic.
// Some (customer, day) report pages answer 500 until the site "recovers" (POST /_fixture/recover,
// or recover() in-process): a partner API that was down on those days, then came back.
//
// Run alone: ADS_USER=analyst ADS_PASSWORD=s3cret node examples/ads-report/site.mjs [port]
//   ADS_FAIL="globex/2026-11-03,hooli/2026-11-05" picks the failing pages (default: none).
import { randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

export const CUSTOMERS = ['acme', 'globex', 'hooli', 'initech', 'umbrella'];
export const PAGE_SIZE = 5;

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const layout = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;margin:2rem}table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #ddd}</style>
</head><body><h1>${esc(title)}</h1>${body}</body></html>`;

/** FNV-1a: stable numbers from (customer, day, campaign), so every run sees the same stats. */
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The campaign rows of one customer on one day: 6 to 12 of them, so 2 or 3 pages. */
export function campaignsOf(customer, day) {
  const n = 6 + (hash(`${customer}|${day}`) % 7);
  return Array.from({ length: n }, (_, i) => {
    const h = hash(`${customer}|${day}|${i}`);
    const impressions = 1000 + (h % 50_000);
    const clicks = Math.floor(impressions * ((h >>> 8) % 60) / 1000);
    return { campaign_id: `${customer}-c${String(i + 1).padStart(2, '0')}`, name: `${customer} campaign ${i + 1}`, impressions, clicks, cost_cents: clicks * (20 + ((h >>> 16) % 80)) };
  });
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Starts the dashboard. `user`/`password` are the only credentials it accepts;
 * `failing` lists "customer/day" pairs whose report pages (from page 2) answer 500 until recover().
 */
export function startAdsSite({ port = 0, user, password, failing = [] } = {}) {
  if (!user || !password) throw new Error('startAdsSite needs user and password (the dashboard login)');
  const down = new Set(failing);
  const sessions = new Set();
  let recovered = false;
  const loggedIn = (req) => (req.headers.cookie ?? '').split(/;\s*/).some((c) => sessions.has(c.replace(/^sid=/, '')));

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const send = (status, html, headers = {}) => res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers }).end(html);
    const loginForm = (next, error = '') => layout('Sign in', `${error ? `<p class="error">${esc(error)}</p>` : ''}
<form method="post" action="/login"><input type="hidden" name="next" value="${esc(next)}">
<label>User <input id="username" name="username" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button type="submit">Sign in</button></form>`);

    if (url.pathname === '/healthz') return send(200, 'ok');
    if (url.pathname === '/_fixture/recover' && req.method === 'POST') {
      recovered = true;
      return send(204, '');
    }
    if (url.pathname === '/login' && req.method === 'POST') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const next = form.get('next')?.startsWith('/') ? form.get('next') : '/';
        if (form.get('username') !== user || form.get('password') !== password) return send(401, loginForm(next, 'Wrong user or password'));
        const sid = randomBytes(12).toString('hex');
        sessions.add(sid);
        send(302, '', { location: next, 'set-cookie': `sid=${sid}; HttpOnly; Path=/` });
      });
      return undefined;
    }
    if (url.pathname === '/login') return send(200, loginForm(url.searchParams.get('next') ?? '/'));
    if (!loggedIn(req)) return send(302, '', { location: `/login?next=${encodeURIComponent(url.pathname + url.search)}` });

    if (url.pathname === '/') {
      const links = CUSTOMERS.map((c) => `<li><a class="customer" data-customer="${c}" href="/customers/${c}">${c}</a></li>`).join('');
      return send(200, layout('Customers', `<ul id="customers">${links}</ul>`));
    }
    const m = /^\/customers\/([a-z]+)\/days\/([0-9-]+)$/.exec(url.pathname);
    if (m && CUSTOMERS.includes(m[1]) && DAY.test(m[2])) {
      const [, customer, day] = m;
      const rows = campaignsOf(customer, day);
      const pages = Math.ceil(rows.length / PAGE_SIZE);
      const page = Number(url.searchParams.get('page') ?? '1');
      if (!Number.isInteger(page) || page < 1 || page > pages) return send(404, layout('Not found', '<p>No such page.</p>'));
      // Page 1 works, so a failing run has already emitted items when it fails: strict keeps
      // them in its own run partition, and the ledger never promotes them.
      if (page > 1 && down.has(`${customer}/${day}`) && !recovered) return send(500, layout('Internal Server Error', '<p>The reporting backend timed out.</p>'));
      const body = rows.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE).map((r) => `<tr data-campaign="${r.campaign_id}">
<td class="name">${esc(r.name)}</td><td class="impressions">${r.impressions}</td><td class="clicks">${r.clicks}</td><td class="cost">${(r.cost_cents / 100).toFixed(2)}</td></tr>`).join('');
      const next = page < pages ? `<a class="next" href="?page=${page + 1}">next</a>` : '';
      return send(200, layout(`${customer}, ${day}, page ${page} of ${pages}`, `<table id="campaigns"><tr><th>campaign</th><th>impressions</th><th>clicks</th><th>cost</th></tr>${body}</table><nav>${next}</nav>`));
    }
    return send(404, layout('Not found', '<p>No such page.</p>'));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address();
      resolve({
        url: `http://127.0.0.1:${bound}/`,
        recover: () => void (recovered = true),
        close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
      });
    });
  });
}

// Started as a program (also through a symlink, e.g. node_modules/quarry/examples/…), not imported.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  const failing = (process.env.ADS_FAIL ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const site = await startAdsSite({ port: Number(process.argv[2] ?? 8090), user: process.env.ADS_USER, password: process.env.ADS_PASSWORD, failing });
  process.stdout.write(`ads dashboard fixture at ${site.url}${failing.length ? ` (failing until POST /_fixture/recover: ${failing.join(', ')})` : ''}\n`);
}
