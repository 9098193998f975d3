/**
 * The cookie jar of one run's `ctx.http` (SPEC §13), after RFC 6265 §5: domain
 * and path matching, host-only cookies, Expires/Max-Age, Secure. It lives in
 * memory only, so cookies never outlive the run that received them.
 */
import type { HttpCookie, HttpCookieJar } from './http-types.js';

interface Stored extends HttpCookie {
  /** Creation order, for the order cookies are sent in. */
  readonly created: number;
}

const isIp = (host: string): boolean => /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');

/** RFC 6265 §5.1.3. */
function domainMatches(host: string, domain: string): boolean {
  return host === domain || (!isIp(host) && host.endsWith(`.${domain}`));
}

/** RFC 6265 §5.1.4: the directory of the request path. */
function defaultPath(pathname: string): string {
  if (!pathname.startsWith('/')) return '/';
  const i = pathname.lastIndexOf('/');
  return i <= 0 ? '/' : pathname.slice(0, i);
}

/** RFC 6265 §5.1.4. */
function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

/** A host as URL gives it, IPv6 brackets removed. */
const hostOf = (u: URL): string => u.hostname.replace(/^\[|\]$/g, '').toLowerCase();

/** An in-memory jar; `now` is the clock for expiry. */
export class CookieJar implements HttpCookieJar {
  readonly #cookies = new Map<string, Stored>();
  readonly #now: () => number;
  #created = 0;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Stores one `Set-Cookie` value received from `url`; a value that is malformed or for another domain is ignored, as browsers do. */
  set(url: string | URL, setCookie: string): void {
    const u = new URL(url);
    const host = hostOf(u);
    const [pair = '', ...attrs] = setCookie.split(';');
    const eq = pair.indexOf('=');
    if (eq < 1) return;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    if (name === '') return;
    let domain: string | undefined;
    let path: string | undefined;
    let expiresAt: number | undefined;
    let maxAgeSeen = false;
    let secure = false;
    let httpOnly = false;
    for (const attr of attrs) {
      const i = attr.indexOf('=');
      const key = (i < 0 ? attr : attr.slice(0, i)).trim().toLowerCase();
      const val = i < 0 ? '' : attr.slice(i + 1).trim();
      if (key === 'domain' && val !== '') domain = val.replace(/^\./, '').toLowerCase();
      else if (key === 'path') path = val.startsWith('/') ? val : undefined;
      else if (key === 'secure') secure = true;
      else if (key === 'httponly') httpOnly = true;
      else if (key === 'max-age' && /^-?\d+$/.test(val)) {
        maxAgeSeen = true; // Max-Age wins over Expires (§5.3 step 3)
        const seconds = Number(val);
        expiresAt = seconds <= 0 ? 0 : this.#now() + seconds * 1000;
      } else if (key === 'expires' && !maxAgeSeen) {
        const at = Date.parse(val);
        if (!Number.isNaN(at)) expiresAt = at;
      }
    }
    // A Domain attribute must cover the host that set it, and must not be a bare top-level name.
    if (domain !== undefined && (!domainMatches(host, domain) || (!domain.includes('.') && domain !== host))) return;
    const cookie: Stored = {
      name,
      value,
      domain: domain ?? host,
      hostOnly: domain === undefined,
      path: path ?? defaultPath(u.pathname),
      secure,
      httpOnly,
      ...(expiresAt !== undefined ? { expiresAt } : {}),
      created: this.#created++,
    };
    const key = `${cookie.domain};${cookie.path};${name}`;
    const old = this.#cookies.get(key);
    this.#cookies.delete(key);
    if (expiresAt !== undefined && expiresAt <= this.#now()) return; // an expiry in the past deletes the cookie
    this.#cookies.set(key, old ? { ...cookie, created: old.created } : cookie);
  }

  /** Cookies to send to `url`, longest path first (RFC 6265 §5.4); every cookie when no URL is given. */
  list(url?: string | URL): HttpCookie[] {
    const now = this.#now();
    const out: Stored[] = [];
    const u = url === undefined ? undefined : new URL(url);
    for (const [key, c] of this.#cookies) {
      if (c.expiresAt !== undefined && c.expiresAt <= now) {
        this.#cookies.delete(key);
        continue;
      }
      if (u) {
        const host = hostOf(u);
        if (c.hostOnly ? host !== c.domain : !domainMatches(host, c.domain)) continue;
        if (!pathMatches(u.pathname || '/', c.path)) continue;
        if (c.secure && u.protocol !== 'https:') continue;
      }
      out.push(c);
    }
    out.sort((a, b) => b.path.length - a.path.length || a.created - b.created);
    return out.map(({ created: _created, ...c }) => c);
  }

  /** The `cookie` request header for `url`, or undefined when no cookie applies. */
  header(url: string | URL): string | undefined {
    const cookies = this.list(url);
    return cookies.length === 0 ? undefined : cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  }

  clear(): void {
    this.#cookies.clear();
  }
}
