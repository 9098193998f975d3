/**
 * The crawl fixture site (issue 12): a listing that links `details` detail
 * pages, each twice; each detail page answers after `detailDelayMs` (300 ms)
 * and links two asset pages (its own and its neighbour's, so every asset is
 * found twice). The server counts requests per path, keeps a timestamped
 * request log, and tracks the peak of requests in flight at once.
 *
 * `barrier: P` additionally holds a detail answer (after the delay) until P
 * detail requests are in flight at once, or `barrierMaxMs` passes: on a loaded
 * machine, runs that each take longer to start than to fetch would otherwise
 * rarely overlap, and the peak could not show that `--parallel P` runs do.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CrawlSiteOptions {
  details: number;
  detailDelayMs?: number;
  barrier?: number;
  barrierMaxMs?: number;
}

export interface CrawlSite {
  readonly url: string;
  /** Requests per path (`/list`, `/detail/3`, `/asset/7` …). */
  readonly requests: Map<string, number>;
  /** Every request: path and arrival time (ms since the epoch). */
  readonly log: { path: string; at: number }[];
  /** The most requests in flight at once since the start (or the last `resetPeak`). */
  peak(): number;
  /** The most detail requests in flight at once. */
  detailPeak(): number;
  close(): Promise<void>;
}

const page = (title: string, body: string): string => `<!doctype html><html><head><title>${title}</title></head><body><h1>${title}</h1>${body}</body></html>`;

/** Starts the site on 127.0.0.1 (a free port). */
export async function startCrawlSite(o: CrawlSiteOptions): Promise<CrawlSite> {
  const delay = o.detailDelayMs ?? 300;
  const requests = new Map<string, number>();
  const log: { path: string; at: number }[] = [];
  let inFlight = 0;
  let peak = 0;
  let detailsInFlight = 0;
  let detailPeak = 0;
  const waiters = new Set<() => void>();
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.set(path, (requests.get(path) ?? 0) + 1);
    log.push({ path, at: Date.now() });
    inFlight++;
    peak = Math.max(peak, inFlight);
    const send = (status: number, html: string): void => {
      inFlight--;
      res.writeHead(status, { 'content-type': 'text/html' }).end(html);
    };
    const detail = /^\/detail\/(\d+)$/.exec(path);
    const asset = /^\/asset\/(\d+)$/.exec(path);
    if (path === '/list') {
      const links = Array.from({ length: o.details }, (_, i) => `<a class="detail" href="/detail/${i + 1}">Detail ${i + 1}</a>`).join('\n');
      // Every detail is linked twice: once in the list, once among the "featured".
      send(200, page('Listing', `<ul>${links}</ul><aside>${links}</aside>`));
    } else if (detail && Number(detail[1]) >= 1 && Number(detail[1]) <= o.details) {
      const i = Number(detail[1]);
      detailsInFlight++;
      detailPeak = Math.max(detailPeak, detailsInFlight);
      for (const w of waiters) w();
      const started = Date.now();
      const answer = (): void => {
        detailsInFlight--;
        const next = (i % o.details) + 1;
        send(200, page(`Detail ${i}`, `<p class="price">${i * 100}</p><a class="asset" href="/asset/${i}">a</a><a class="asset" href="/asset/${next}">b</a>`));
      };
      setTimeout(() => {
        if (o.barrier === undefined) return answer();
        const until = started + (o.barrierMaxMs ?? 3000);
        const check = (): void => {
          if (detailsInFlight >= o.barrier! || Date.now() >= until) {
            waiters.delete(check);
            clearTimeout(timer);
            answer();
          }
        };
        const timer = setTimeout(check, Math.max(0, until - Date.now()));
        waiters.add(check);
        check();
      }, delay);
    } else if (asset) {
      send(200, page(`Asset ${asset[1]}`, `<p class="size">${Number(asset[1]) * 7}</p>`));
    } else {
      send(404, page('Not found', ''));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url, requests, log,
    peak: () => peak,
    detailPeak: () => detailPeak,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
