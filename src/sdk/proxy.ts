/**
 * Proxy endpoint validation and redaction (SPEC §2, §10). A password never
 * leaves through a redacted endpoint, an error message or a browser flag.
 */
import type { ProxyEndpoint, ProxyEndpointRedacted } from '../protocol/index.js';
import { ProxyValidationError } from './errors.js';

export type { ProxyEndpoint, ProxyEndpointRedacted };

/** Protocols Chromium can use as a proxy. */
export const PROXY_PROTOCOLS = ['http', 'https', 'socks5'] as const;
export type ProxyProtocol = (typeof PROXY_PROTOCOLS)[number];

/** One problem with one field. */
export interface ProxyIssue {
  readonly field: string;
  readonly message: string;
}

/** Result of {@link validateProxyEndpoint}: errors reject, warnings only inform. */
export interface ProxyValidationResult {
  readonly valid: boolean;
  readonly errors: readonly ProxyIssue[];
  readonly warnings: readonly ProxyIssue[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks a proxy endpoint: protocol http|https|socks5, a non-empty host without
 * scheme or port, an integer port 1..65535, username and password together.
 * Messages quote the bad value, never a password.
 * @param prefix field prefix for nested endpoints, e.g. `endpoints[2]`.
 */
export function validateProxyEndpoint(value: unknown, prefix = ''): ProxyValidationResult {
  const f = (name: string): string => (prefix ? `${prefix}.${name}` : name);
  const errors: ProxyIssue[] = [];
  const warnings: ProxyIssue[] = [];
  if (!isObj(value)) {
    errors.push({ field: prefix || 'proxy', message: 'must be an object { protocol, host, port, username?, password? }' });
    return { valid: false, errors, warnings };
  }
  const { protocol, host, port, username, password } = value;
  if (typeof protocol !== 'string' || !(PROXY_PROTOCOLS as readonly string[]).includes(protocol)) {
    errors.push({ field: f('protocol'), message: `must be one of ${PROXY_PROTOCOLS.join('|')}, got ${JSON.stringify(protocol)}` });
  }
  if (typeof host !== 'string' || host.trim() === '') {
    errors.push({ field: f('host'), message: `must be a non-empty host name or IP, got ${JSON.stringify(host)}` });
  } else if (/[\s/@]|:\/\//.test(host)) {
    errors.push({ field: f('host'), message: `must be a bare host name or IP (no scheme, path, spaces or credentials), got ${JSON.stringify(host)}` });
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    errors.push({ field: f('port'), message: `must be an integer in 1..65535, got ${JSON.stringify(port)}` });
  }
  if (username !== undefined && typeof username !== 'string') errors.push({ field: f('username'), message: 'must be a string' });
  if (password !== undefined && typeof password !== 'string') errors.push({ field: f('password'), message: 'must be a string' });
  const hasUser = typeof username === 'string' && username !== '';
  const hasPass = typeof password === 'string' && password !== '';
  if (hasUser !== hasPass) errors.push({ field: f('username/password'), message: 'must be given together' });
  if (protocol === 'socks5' && hasUser) {
    warnings.push({ field: f('protocol'), message: 'Chromium does not authenticate to socks5 proxies; the credentials will not be used' });
  }
  return { valid: errors.length === 0, errors, warnings };
}

/**
 * Returns `value` as a ProxyEndpoint (a copy without unknown fields), or throws.
 * @throws ProxyValidationError listing every problem.
 */
export function assertProxyEndpoint(value: unknown): ProxyEndpoint {
  const r = validateProxyEndpoint(value);
  if (!r.valid) throw new ProxyValidationError(r.errors);
  const v = value as ProxyEndpoint;
  return {
    protocol: v.protocol,
    host: v.host,
    port: v.port,
    ...(v.username ? { username: v.username } : {}),
    ...(v.password ? { password: v.password } : {}),
  };
}

/** The endpoint without its password, safe for logs, reports and `run_result.proxy_used`. */
export function redactProxyEndpoint(endpoint: ProxyEndpoint): ProxyEndpointRedacted {
  return {
    protocol: endpoint.protocol,
    host: endpoint.host,
    port: endpoint.port,
    ...(endpoint.username ? { username: endpoint.username } : {}),
  };
}

/** `protocol://host:port`, the value of Chromium's `--proxy-server` (credentials go through `page.authenticate`). */
export function proxyServerUrl(endpoint: ProxyEndpointRedacted): string {
  const host = endpoint.host.includes(':') && !endpoint.host.startsWith('[') ? `[${endpoint.host}]` : endpoint.host;
  return `${endpoint.protocol}://${host}:${endpoint.port}`;
}
