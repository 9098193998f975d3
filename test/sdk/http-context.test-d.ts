import type { Browser, BrowserContext, Page } from 'puppeteer-core';
import { describe, expectTypeOf, it } from 'vitest';
import type { EmitAPI, HttpClient, HttpContext, HttpResponse, HttpScript, MemoryAPI, QuarryContext, RunMeta, ScriptOptions, StorageAPI } from '../../src/sdk/index.js';

describe('HttpContext (SPEC §13)', () => {
  it('is QuarryContext without page, browser and browserContext, with http', () => {
    type Ctx = HttpContext<{ url: string }>;
    expectTypeOf<Ctx['job']>().toEqualTypeOf<{ url: string }>();
    expectTypeOf<Ctx['run']>().toEqualTypeOf<RunMeta>();
    expectTypeOf<Ctx['emit']>().toEqualTypeOf<EmitAPI>();
    expectTypeOf<Ctx['storage']>().toEqualTypeOf<StorageAPI>();
    expectTypeOf<Ctx['memory']>().toEqualTypeOf<MemoryAPI>();
    expectTypeOf<Ctx['http']>().toEqualTypeOf<HttpClient>();
    expectTypeOf<Ctx>().not.toHaveProperty('page');
    expectTypeOf<Ctx>().not.toHaveProperty('browser');
    expectTypeOf<Ctx>().not.toHaveProperty('browserContext');
    // A browser script's context is usable wherever an HttpContext is expected.
    expectTypeOf<QuarryContext<{ url: string }>>().toMatchTypeOf<Ctx>();
    expectTypeOf<QuarryContext['page']>().toEqualTypeOf<Page>();
  });

  it('a no-browser script that touches ctx.page, ctx.browser or ctx.browserContext does not compile; the rest does', () => {
    const script: HttpScript<{ url: string }> = async (ctx) => {
      // @ts-expect-error no page in a run without a browser
      const page: Page = ctx.page;
      // @ts-expect-error no browser in a run without a browser
      const browser: Browser = ctx.browser;
      // @ts-expect-error no browser context in a run without a browser
      const context: BrowserContext = ctx.browserContext;
      void [page, browser, context];
      const res: HttpResponse = await ctx.http.get(ctx.job.url, { headers: { accept: 'text/html' }, timeoutMs: 5_000, retries: 1 });
      const posted = await ctx.http.post(ctx.job.url, { json: { q: 1 } });
      const data = await ctx.http.getJson<{ n: number }>(ctx.job.url);
      await ctx.emit.item({ item_type: 'page', data: { status: res.status, text: res.text(), n: data.n, ok: posted.status } });
      await ctx.storage.put({ filename: 'page.html', content_type: 'text/html', data: res.body });
      ctx.http.cookies.set(ctx.job.url, 'a=1');
      await ctx.memory.isAbove('high');
      void ctx.run.run_id;
    };
    expectTypeOf(script).parameter(0).toEqualTypeOf<HttpContext<{ url: string }>>();
  });

  it('options is an object with an optional boolean browser', () => {
    expectTypeOf<{ browser: false }>().toMatchTypeOf<ScriptOptions>();
    expectTypeOf<{ browser: 'no' }>().not.toMatchTypeOf<ScriptOptions>();
    expectTypeOf<ScriptOptions['browser']>().toEqualTypeOf<boolean | undefined>();
  });
});
