/**
 * The browser of a run (SPEC §1.6, §2, §10): a system Chromium launched with
 * puppeteer-core (never downloaded), or an existing one reached through
 * `browser_ws_endpoint`; a fresh BrowserContext and page per run.
 *
 * A {@link BrowserSource} outlives runs, so one process can serve successive
 * runs with one browser (run slots); {@link openRunBrowser} is per run.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// Type-only: puppeteer-core (about 1 s to import) loads on first launch or connect, so a
// `browser: false` run never pays for it (SPEC §13).
import type { Browser, BrowserContext, ConnectionTransport, Page } from 'puppeteer-core';
import type { ProxyEndpoint } from '../protocol/index.js';
import { redactUrl, redactUrlsIn } from '../protocol/redact.js';
import { CHROMIUM_FLAGS, PROXY_BYPASS_NONE } from '../runtime/chromium.js';
import { CHROMIUM_PROFILE_PREFIX, ownerTag } from '../runtime/owner-tag.js';
import { asProcessWork } from './run-timers.js';
import { proxyServerUrl } from '../sdk/index.js';

export { CHROMIUM_FLAGS, DEFAULT_CHROMIUM_PATH } from '../runtime/chromium.js';

/** How long a browser gets to close before it is killed. */
const CLOSE_TIMEOUT_MS = 5_000;

/** A browser the executor holds, launched or connected. */
export interface BrowserHandle {
  readonly browser: Browser;
  /** The proxy applied with `--proxy-server` at launch, if any. */
  readonly launchProxy?: ProxyEndpoint;
  /** Closes a launched browser and deletes its profile, or disconnects from a remote one. Never rejects. */
  close(): Promise<void>;
  /** Right now, synchronously: SIGKILLs a launched browser and deletes its profile (the runtime is gone). Never throws. */
  killNow(): void;
}

export interface LaunchOptions {
  readonly executablePath: string;
  /** Applied as `--proxy-server`; credentials go through `page.authenticate`. */
  readonly proxy?: ProxyEndpoint;
  readonly extraArgs?: readonly string[];
  /**
   * Share the browser with other processes through a WebSocket endpoint
   * (`browser.wsEndpoint()`). Default false: the executor talks to it over a
   * pipe, so the browser exits when the executor dies, even by SIGKILL.
   */
  readonly shareable?: boolean;
}

/** Profiles created by this process and not yet removed, including one whose browser is still starting. */
const liveProfiles = new Set<string>();

/** Removes every live profile synchronously (the process is about to exit). Never throws; a later run sweeps what stays. */
function removeLiveProfilesNow(): void {
  for (const p of liveProfiles) {
    try {
      rmSync(p, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
      liveProfiles.delete(p);
    } catch {
      // A browser still writing into it: left for the sweep.
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * Launches Chromium with a fresh temporary profile.
 * @throws Error naming the executable when it cannot start; the profile is removed.
 */
export async function launchBrowser(options: LaunchOptions): Promise<BrowserHandle> {
  // The owner's pid and host in the name let a later `quarry run` sweep a profile left by a SIGKILL.
  const profile = await mkdtemp(join(tmpdir(), `${CHROMIUM_PROFILE_PREFIX}${ownerTag()}-`));
  liveProfiles.add(profile);
  const args = [...CHROMIUM_FLAGS, ...(options.proxy ? [`--proxy-server=${proxyServerUrl(options.proxy)}`, `--proxy-bypass-list=${PROXY_BYPASS_NONE}`] : []), ...(options.extraArgs ?? [])];
  let browser: Browser;
  try {
    browser = await (await import('puppeteer-core')).launch({
      executablePath: options.executablePath,
      headless: true,
      userDataDir: profile,
      // Talk over a pipe, not a port: when the executor dies (even by SIGKILL),
      // the pipe closes and Chromium exits instead of living on as an orphan.
      pipe: options.shareable !== true,
      args,
      // The executor's entry point owns signals; the browser is closed on its way out.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true, maxRetries: 3 });
    liveProfiles.delete(profile);
    throw new Error(`cannot start Chromium at ${options.executablePath}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`, { cause: err });
  }
  let closed: Promise<void> | undefined;
  return {
    browser,
    ...(options.proxy ? { launchProxy: options.proxy } : {}),
    close() {
      closed ??= (async () => {
        const r = await withTimeout(browser.close().catch(() => undefined), CLOSE_TIMEOUT_MS);
        if (r === 'timeout') browser.process()?.kill('SIGKILL');
        await rm(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }).catch(() => undefined);
        liveProfiles.delete(profile);
      })();
      return closed;
    },
    killNow() {
      try {
        browser.process()?.kill('SIGKILL');
      } catch {
        // Already gone.
      }
      removeLiveProfilesNow();
    },
  };
}

/**
 * A transport that asks Chromium to dispose of every BrowserContext this
 * connection creates when the connection ends (CDP `Target.createBrowserContext`
 * `disposeOnDetach`, which puppeteer does not send): the contexts of a slot
 * killed mid-run, or of one that exited with a context prepared ahead, go with
 * its WebSocket instead of lingering in the shared browser until the
 * invocation ends.
 */
function disposingContexts(inner: ConnectionTransport): ConnectionTransport {
  const outer: ConnectionTransport = {
    send(message: string) {
      if (message.includes('"Target.createBrowserContext"')) {
        const m = JSON.parse(message) as { method?: string; params?: Record<string, unknown> };
        if (m.method === 'Target.createBrowserContext') message = JSON.stringify({ ...m, params: { ...m.params, disposeOnDetach: true } });
      }
      inner.send(message);
    },
    close: () => inner.close(),
  };
  inner.onmessage = (m) => outer.onmessage?.(m);
  inner.onclose = () => outer.onclose?.();
  return outer;
}

/**
 * Connects to a browser someone else runs; closing only disconnects.
 * `ownContexts`: the contexts opened through this connection end with it (see {@link disposingContexts}).
 * @throws Error naming the endpoint when it cannot be reached.
 */
export async function connectBrowser(browserWSEndpoint: string, opts: { ownContexts?: boolean } = {}): Promise<BrowserHandle> {
  let browser: Browser;
  try {
    const puppeteer = await import('puppeteer-core');
    if (opts.ownContexts === true) {
      const { NodeWebSocketTransport } = await import('puppeteer-core/internal/node/NodeWebSocketTransport.js');
      browser = await puppeteer.connect({ transport: disposingContexts(await NodeWebSocketTransport.create(browserWSEndpoint)) });
    } else {
      browser = await puppeteer.connect({ browserWSEndpoint });
    }
  } catch (err) {
    // Puppeteer may reject with a WebSocket ErrorEvent, not an Error; its text can echo the endpoint, token included.
    const why = err instanceof Error ? err.message : (err as { message?: unknown; error?: { message?: unknown } } | undefined)?.error?.message ?? (err as { message?: unknown } | undefined)?.message;
    throw new Error(`cannot connect to the browser at ${redactUrl(browserWSEndpoint)}: ${redactUrlsIn(typeof why === 'string' && why !== '' ? why : 'connection failed')}`);
  }
  let closed: Promise<void> | undefined;
  return {
    browser,
    close() {
      closed ??= withTimeout(browser.disconnect().catch(() => undefined), CLOSE_TIMEOUT_MS).then(() => undefined);
      return closed;
    },
    killNow() {
      // Not ours to kill: the connection ends with the process.
    },
  };
}

/** The browser objects of one run. */
export interface RunBrowser {
  readonly browser: Browser;
  readonly browserContext: BrowserContext;
  readonly page: Page;
  /** Closes the run's context (and its pages). Never rejects. */
  close(): Promise<void>;
  /** True when the browser went away under the run (crashed, killed), not closed by us. */
  lost(): boolean;
}

const sameEndpoint = (a: ProxyEndpoint | undefined, b: ProxyEndpoint | undefined): boolean =>
  a?.protocol === b?.protocol && a?.host === b?.host && a?.port === b?.port;

/**
 * Opens a fresh BrowserContext and page for one run. A proxy the browser was
 * not launched with is set on the context (`proxyServer`), so a shared browser
 * can serve runs with different proxies; credentials go through `page.authenticate`.
 */
export async function openRunBrowser(handle: BrowserHandle, proxy?: ProxyEndpoint): Promise<RunBrowser> {
  const { browser } = handle;
  const contextProxy = proxy && !sameEndpoint(proxy, handle.launchProxy) ? { proxyServer: proxyServerUrl(proxy), proxyBypassList: [PROXY_BYPASS_NONE] } : {};
  const browserContext = await browser.createBrowserContext(contextProxy);
  try {
    const page = await browserContext.newPage();
    if (proxy?.username && proxy.password) await page.authenticate({ username: proxy.username, password: proxy.password });
    let closed: Promise<void> | undefined;
    return {
      browser,
      browserContext,
      page,
      close() {
        closed ??= withTimeout(browserContext.close().catch(() => undefined), CLOSE_TIMEOUT_MS).then(() => undefined);
        return closed;
      },
      lost: () => !browser.connected,
    };
  } catch (err) {
    await browserContext.close().catch(() => undefined);
    throw err;
  }
}

/** Where runs get their browser. Lazily started, so `prepare` runs before any browser exists. */
export interface BrowserSource {
  /** Starts or reuses the browser and opens a fresh context and page for one run. */
  openRun(proxy?: ProxyEndpoint): Promise<RunBrowser>;
  /** Closes (or disconnects) the browser if it was started. Never rejects. */
  close(): Promise<void>;
  /** Kills a launched browser now, synchronously (see {@link BrowserHandle.killNow}). Never throws. */
  killNow(): void;
}

export interface BrowserSourceOptions {
  readonly executablePath: string;
  /** Connect here instead of launching. */
  readonly browserWSEndpoint?: string;
  /** Proxy applied at launch (the run request's proxy, for a one-run process). */
  readonly launchProxy?: ProxyEndpoint;
}

/** A source that launches (or connects) on the first `openRun` and keeps the browser for later runs. */
export function createBrowserSource(options: BrowserSourceOptions): BrowserSource {
  let handle: Promise<BrowserHandle> | undefined;
  let started: BrowserHandle | undefined;
  return {
    async openRun(proxy) {
      handle ??= (
        options.browserWSEndpoint
          ? connectBrowser(options.browserWSEndpoint)
          : launchBrowser({ executablePath: options.executablePath, ...(options.launchProxy ? { proxy: options.launchProxy } : {}) })
      ).then((h) => (started = h));
      return openRunBrowser(await handle, proxy);
    },
    killNow() {
      started?.killNow();
      // A browser still starting has a profile but no handle yet: it dies with our pipe.
      removeLiveProfilesNow();
    },
    async close() {
      if (!handle) return;
      const h = await handle.catch(() => undefined);
      await h?.close();
    },
  };
}

/** Same proxy, credentials included: a context prepared for one proxy serves only a run with the same. */
const sameProxy = (a: ProxyEndpoint | undefined, b: ProxyEndpoint | undefined): boolean =>
  sameEndpoint(a, b) && a?.username === b?.username && a?.password === b?.password;

/**
 * Runs on the invocation's shared browser (SPEC §10 browser reuse), which the
 * runtime owns: `ask` gets its endpoint for each run (the runtime launches or
 * relaunches it), the connection is kept while the endpoint stays the same,
 * and each run gets a fresh BrowserContext with its own proxy.
 *
 * While a run works, the context and page of the next run are prepared ahead
 * for the same proxy; the next run takes them only if its proxy and the
 * browser are the same, else they are closed and a fresh context opened.
 * Closing (or a killed slot) only disconnects: the browser is not ours.
 */
export function createSharedBrowserSource(ask: () => Promise<string>): BrowserSource {
  let conn: { endpoint: string; handle: Promise<BrowserHandle> } | undefined;
  let ahead: { endpoint: string; proxy: ProxyEndpoint | undefined; run: Promise<RunBrowser | undefined> } | undefined;

  const connection = (endpoint: string): Promise<BrowserHandle> => {
    if (conn && conn.endpoint === endpoint) return conn.handle;
    const old = conn;
    // The slot's contexts die with its connection: a killed slot leaves none behind in the shared browser.
    conn = { endpoint, handle: asProcessWork(() => connectBrowser(endpoint, { ownContexts: true })) };
    if (old) void old.handle.then((h) => h.close(), () => undefined);
    // A failed connection is not kept: the next run tries again.
    const mine = conn;
    conn.handle.catch(() => {
      if (conn === mine) conn = undefined;
    });
    return conn.handle;
  };

  const dropAhead = async (): Promise<void> => {
    const a = ahead;
    ahead = undefined;
    await a?.run.then((rb) => rb?.close());
  };

  return {
    async openRun(proxy) {
      const endpoint = await ask();
      const handle = await connection(endpoint);
      if (!handle.browser.connected) {
        // The browser died and came back at the same address (unlikely), or the socket broke: reconnect.
        conn = undefined;
        return this.openRun(proxy);
      }
      let rb: RunBrowser | undefined;
      if (ahead && ahead.endpoint === endpoint && sameProxy(ahead.proxy, proxy)) {
        const a = ahead;
        ahead = undefined;
        rb = await a.run;
        if (rb && (rb.lost() || rb.page.isClosed())) rb = undefined;
      } else {
        void dropAhead();
      }
      rb ??= await asProcessWork(() => openRunBrowser(handle, proxy));
      // The next run's context is opened while this one works (most runs of a crawl share a proxy).
      ahead = { endpoint, proxy, run: asProcessWork(() => openRunBrowser(handle, proxy).catch(() => undefined)) };
      const run = rb;
      return { ...run, close: () => asProcessWork(() => run.close()) };
    },
    killNow() {
      // Not ours: the connection ends with the process.
    },
    async close() {
      await dropAhead();
      const c = conn;
      conn = undefined;
      const h = await c?.handle.catch(() => undefined);
      await h?.close();
    },
  };
}
