import { describe, expect, it } from 'vitest';
import { CookieJar } from '../../src/sdk/index.js';

const names = (jar: CookieJar, url: string): string => jar.list(url).map((c) => `${c.name}=${c.value}`).join('; ');

describe('the run cookie jar (RFC 6265)', () => {
  it('sends a host-only cookie to its host only, and a Domain cookie to subdomains too', () => {
    const jar = new CookieJar();
    jar.set('http://shop.example.com/', 'host=1');
    jar.set('http://shop.example.com/', 'wide=2; Domain=.example.com');
    expect(names(jar, 'http://shop.example.com/x')).toBe('host=1; wide=2');
    expect(names(jar, 'http://api.example.com/x')).toBe('wide=2');
    expect(names(jar, 'http://example.org/')).toBe('');
  });

  it('ignores a cookie for a domain the response did not come from, or for a bare top-level name', () => {
    const jar = new CookieJar();
    jar.set('http://shop.example.com/', 'evil=1; Domain=other.com');
    jar.set('http://shop.example.com/', 'tld=1; Domain=com');
    jar.set('http://shop.example.com/', 'noname');
    expect(jar.list()).toEqual([]);
  });

  it('matches paths by segment and defaults the path to the directory of the request', () => {
    const jar = new CookieJar();
    jar.set('http://h.test/docs/page', 'd=1');
    jar.set('http://h.test/', 'a=1; Path=/api');
    expect(names(jar, 'http://h.test/docs/other')).toBe('d=1');
    expect(names(jar, 'http://h.test/api/v1')).toBe('a=1');
    expect(names(jar, 'http://h.test/apiary')).toBe('');
  });

  it('expires by Max-Age over Expires, deletes with a past date, and keeps Secure cookies off http', () => {
    let now = Date.parse('2026-11-23T12:00:00Z');
    const jar = new CookieJar(() => now);
    jar.set('https://h.test/', 'short=1; Max-Age=60; Expires=Wed, 01 Jan 2031 00:00:00 GMT');
    jar.set('https://h.test/', 'safe=1; Secure');
    expect(names(jar, 'https://h.test/')).toBe('short=1; safe=1');
    expect(names(jar, 'http://h.test/')).toBe('short=1');
    now += 61_000;
    expect(names(jar, 'https://h.test/')).toBe('safe=1');
    jar.set('https://h.test/', 'safe=; Expires=Thu, 01 Jan 1970 00:00:00 GMT');
    expect(jar.list()).toEqual([]);
  });

  it('replaces a cookie of the same name, domain and path', () => {
    const jar = new CookieJar();
    jar.set('http://h.test/', 'sid=1');
    jar.set('http://h.test/', 'sid=2; HttpOnly');
    expect(jar.list('http://h.test/')).toMatchObject([{ name: 'sid', value: '2', httpOnly: true, hostOnly: true, domain: 'h.test', path: '/' }]);
  });
});
