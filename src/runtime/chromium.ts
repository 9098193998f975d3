/**
 * How Quarry starts the system Chromium (SPEC §1.6): the flags every launch
 * uses and where the binary is. Light (no puppeteer), so the runtime can
 * launch the invocation's shared browser without loading puppeteer-core.
 */

/**
 * Chromium features that cost a fresh BrowserContext (one per run, SPEC §10)
 * renderer processes and change nothing a page sees (docs/benchmarks.md,
 * "What a BrowserContext costs"):
 * - `SpareRendererForSitePerProcess`: a spare renderer kept warm for the
 *   context of the last navigation; the next run's context cannot use it, so
 *   each run started and threw away about two and a half;
 * - `WebUIOmniboxPopup`, `WebUIOmniboxAimPopup`: the address bar's popups,
 *   WebUI pages in a renderer of their own preloaded for each new window, and
 *   a new context opens a new (headless, never shown) window.
 * Unknown names are ignored, so an older or newer Chromium starts the same.
 */
export const DISABLED_FEATURES: readonly string[] = ['SpareRendererForSitePerProcess', 'WebUIOmniboxPopup', 'WebUIOmniboxAimPopup'];

/**
 * Flags Chromium needs to run headless as root in a container, without phoning
 * home, and without the processes of {@link DISABLED_FEATURES}. Chromium takes
 * only the last `--disable-features`: a caller adding features merges them into
 * this one (puppeteer's launch merges its own).
 */
export const CHROMIUM_FLAGS: readonly string[] = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  `--disable-features=${DISABLED_FEATURES.join(',')}`,
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
