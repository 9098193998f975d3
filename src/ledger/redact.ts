/** A PostgreSQL URL without its password, for every message and report (SPEC §10: no secret in any output). */
export function redactUrl(url: string | URL): string {
  try {
    const u = new URL(url.toString());
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparseable url)';
  }
}
