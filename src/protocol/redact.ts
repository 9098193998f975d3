/**
 * The one redaction rule for secrets carried in URLs (SPEC §8, §10: no secret
 * in any output): a password in the user info, and query parameters whose
 * name says they hold a secret (`?password=`, `?token=`, signed-URL
 * signatures …). Used for ledger and warehouse URLs, browser endpoints, job
 * payloads shown by the read commands, and error messages. Pure; it lives
 * beside the wire types because every layer may import it.
 */

/** Query parameter names (lower case, `-` and `_` ignored) whose values are secrets. */
const SECRET_PARAMS = new Set([
  'password', 'pass', 'passwd', 'pwd', 'secret', 'token', 'accesstoken', 'refreshtoken', 'idtoken', 'apikey', 'key',
  'auth', 'authorization', 'credential', 'credentials', 'sig', 'signature', 'clientsecret', 'sessiontoken',
  'xamzsignature', 'xamzcredential', 'xamzsecuritytoken', 'sslpassword', 'sslkey',
]);

const MASK = '***';

/** True when a query parameter of this name holds a secret. */
export function isSecretParam(name: string): boolean {
  return SECRET_PARAMS.has(name.toLowerCase().replace(/[-_]/g, ''));
}

/**
 * The URL with its password and secret query values replaced by `***`
 * (user name, host, path and other parameters kept, so the message still
 * says where). An unparseable URL becomes `<scheme>://(unparseable url)`: its
 * text could hold anything.
 */
export function redactUrl(url: string | URL): string {
  try {
    const u = new URL(url.toString());
    const secretParams = [...new Set(u.searchParams.keys())].filter(isSecretParam);
    // A user name alone in a web URL is usually a token (https://TOKEN@host/); a database user name is not.
    const tokenUser = u.password === '' && u.username !== '' && /^(https?|wss?):$/.test(u.protocol);
    // Nothing to hide: the text stays exactly as given (no normalised trailing slash).
    if (u.password === '' && !tokenUser && secretParams.length === 0) return url.toString();
    if (u.password !== '') u.password = MASK;
    if (tokenUser) u.username = MASK;
    for (const name of secretParams) u.searchParams.set(name, MASK);
    return u.toString();
  } catch {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url.toString())?.[1];
    return `${scheme ?? 'postgres'}://(unparseable url)`;
  }
}

/** Anything that looks like `scheme://…` inside free text. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi;

/** Free text (an error message, a log line) with every URL in it redacted by {@link redactUrl}. */
export function redactUrlsIn(text: string): string {
  return text.replace(URL_IN_TEXT, (m) => {
    // Trailing punctuation belongs to the sentence, not the URL.
    const tail = /[.,;:)\]]+$/.exec(m)?.[0] ?? '';
    const core = tail ? m.slice(0, -tail.length) : m;
    return redactUrl(core) + tail;
  });
}

/**
 * A JSON value (a job payload) with every string redacted by
 * {@link redactUrlsIn}: for display only. The stored job stays verbatim,
 * because a retry must run with the real one.
 */
export function redactJson(value: unknown): unknown {
  if (typeof value === 'string') return redactUrlsIn(value);
  if (Array.isArray(value)) return value.map(redactJson);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactJson(v)]));
  return value;
}
