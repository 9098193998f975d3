import { describe, expect, it } from 'vitest';
import { assertProxyEndpoint, ProxyValidationError, proxyServerUrl, redactProxyEndpoint, validateProxyEndpoint } from '../../src/sdk/index.js';

describe('proxy endpoints', () => {
  it('accepts http, https and socks5 endpoints with optional credentials', () => {
    for (const protocol of ['http', 'https', 'socks5'] as const) {
      expect(validateProxyEndpoint({ protocol, host: 'proxy.local', port: 8080 }).valid).toBe(true);
    }
    expect(validateProxyEndpoint({ protocol: 'http', host: '10.0.0.1', port: 3128, username: 'u', password: 'p' }).valid).toBe(true);
  });

  it('names every bad field and quotes the bad value', () => {
    const r = validateProxyEndpoint({ protocol: 'ftp', host: 'http://x', port: 70000, username: 'u' });
    expect(r.valid).toBe(false);
    expect(r.errors.map((e) => e.field)).toEqual(['protocol', 'host', 'port', 'username/password']);
    expect(r.errors[0]!.message).toContain('"ftp"');
    expect(r.errors[2]!.message).toContain('70000');
  });

  it('warns that Chromium ignores socks5 credentials', () => {
    const r = validateProxyEndpoint({ protocol: 'socks5', host: 'h', port: 1080, username: 'u', password: 'p' });
    expect(r.valid).toBe(true);
    expect(r.warnings).toHaveLength(1);
  });

  it('assertProxyEndpoint throws ProxyValidationError with the issues and never the password', () => {
    const err = (() => {
      try {
        assertProxyEndpoint({ protocol: 'http', host: '', port: 1, password: 's3cret' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ProxyValidationError);
    expect((err as ProxyValidationError).issues.length).toBe(2);
    expect((err as Error).message).not.toContain('s3cret');
  });

  it('assertProxyEndpoint drops unknown fields and empty credentials', () => {
    expect(assertProxyEndpoint({ protocol: 'http', host: 'h', port: 1, username: '', password: '', extra: 1 })).toEqual({ protocol: 'http', host: 'h', port: 1 });
  });

  it('redaction drops the password and keeps the rest', () => {
    const red = redactProxyEndpoint({ protocol: 'https', host: 'h', port: 443, username: 'u', password: 'p' });
    expect(red).toEqual({ protocol: 'https', host: 'h', port: 443, username: 'u' });
    expect(JSON.stringify(red)).not.toContain('"p"');
  });

  it('builds the --proxy-server value without credentials, bracketing IPv6 hosts', () => {
    expect(proxyServerUrl({ protocol: 'socks5', host: 'h', port: 1080 })).toBe('socks5://h:1080');
    expect(proxyServerUrl({ protocol: 'http', host: '::1', port: 8080 })).toBe('http://[::1]:8080');
  });
});
