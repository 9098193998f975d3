/**
 * How Quarry starts the system Chromium (SPEC §1.6): the flags every launch
 * uses and where the binary is. Light (no puppeteer), so the runtime can
 * launch the invocation's shared browser without loading puppeteer-core.
 */

/** Flags Chromium needs to run headless as root in a container, without phoning home. */
export const CHROMIUM_FLAGS: readonly string[] = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

/**
 * Proxies apply to loopback targets too (SPEC §11): Chromium bypasses its
 * proxy for localhost unless told otherwise, and local test sites must go
 * through the proxy a run was given.
 */
export const PROXY_BYPASS_NONE = '<-loopback>';

/** Default Chromium when neither the request nor `QUARRY_CHROMIUM_PATH` names one. */
export const DEFAULT_CHROMIUM_PATH = '/usr/bin/chromium';

/** The Chromium binary: the given path, else `QUARRY_CHROMIUM_PATH`, else {@link DEFAULT_CHROMIUM_PATH}. */
export function chromiumPath(given: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return given ?? (env.QUARRY_CHROMIUM_PATH || undefined) ?? DEFAULT_CHROMIUM_PATH;
}
