import type { Browser, BrowserContext, Page } from 'puppeteer-core';
import { describe, expectTypeOf, it } from 'vitest';
import {
  createBatcher,
  createEmitAPI,
  createStorageAPI,
  createStorageBatcher,
  type ArtifactId,
  type EmitAPI,
  type MemoryPressureLevel,
  type PrepareHook,
  type PrepareResult,
  type QuarryContext,
  type QuarryScript,
  type QuarryScriptModule,
  type RunId,
  type RunMeta,
  type StorageAPI,
  type TerminalSignal,
} from '../../src/sdk/index.js';

describe('public SDK types', () => {
  it('QuarryContext carries the job type and real Puppeteer objects, all readonly', () => {
    type Ctx = QuarryContext<{ url: string }>;
    expectTypeOf<Ctx['job']>().toEqualTypeOf<{ url: string }>();
    expectTypeOf<Ctx['page']>().toEqualTypeOf<Page>();
    expectTypeOf<Ctx['browser']>().toEqualTypeOf<Browser>();
    expectTypeOf<Ctx['browserContext']>().toEqualTypeOf<BrowserContext>();
    expectTypeOf<Ctx['emit']>().toEqualTypeOf<EmitAPI>();
    expectTypeOf<Ctx['storage']>().toEqualTypeOf<StorageAPI>();
    expectTypeOf<Readonly<Ctx>>().toEqualTypeOf<Ctx>();
  });

  it('RunMeta has a branded run_id, optional lineage and a numeric attempt', () => {
    expectTypeOf<RunMeta['run_id']>().toEqualTypeOf<RunId>();
    expectTypeOf<RunId>().toMatchTypeOf<string>();
    expectTypeOf<string>().not.toMatchTypeOf<RunId>();
    expectTypeOf<RunMeta['attempt']>().toEqualTypeOf<number>();
    expectTypeOf<RunMeta>().toHaveProperty('parent_run_id');
  });

  it('emit methods return promises; artifact returns its id', () => {
    expectTypeOf<EmitAPI['item']>().returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<EmitAPI['artifact']>().returns.toEqualTypeOf<Promise<ArtifactId>>();
    expectTypeOf<EmitAPI['log']>().parameter(0).toHaveProperty('level').toEqualTypeOf<'debug' | 'info' | 'warn' | 'error'>();
    expectTypeOf<EmitAPI['rotateProxy']>().parameters.toEqualTypeOf<[options?: { readonly reason?: string }]>();
    expectTypeOf<StorageAPI['put']>().returns.resolves.toEqualTypeOf<{ readonly key: string }>();
  });

  it('an async function of the context is a script, and a module needs a default export', () => {
    const script = async (ctx: QuarryContext<{ id: number }>): Promise<void> => {
      await ctx.emit.item({ item_type: 'x', data: { id: ctx.job.id } });
    };
    expectTypeOf(script).toMatchTypeOf<QuarryScript<{ id: number }>>();
    expectTypeOf<{ prepare: PrepareHook }>().not.toMatchTypeOf<QuarryScriptModule>();
    expectTypeOf<{ default: typeof script }>().toMatchTypeOf<QuarryScriptModule<{ id: number }>>();
  });

  it('prepare decides continue (optionally with a job) or skip (optionally with a reason)', () => {
    expectTypeOf<{ action: 'continue' }>().toMatchTypeOf<PrepareResult>();
    expectTypeOf<{ action: 'continue'; job: number }>().toMatchTypeOf<PrepareResult<number>>();
    expectTypeOf<{ action: 'skip'; reason: string }>().toMatchTypeOf<PrepareResult>();
    expectTypeOf<{ action: 'stop' }>().not.toMatchTypeOf<PrepareResult>();
    expectTypeOf<TerminalSignal>().toEqualTypeOf<{ readonly outcome: 'completed' } | { readonly outcome: 'error'; readonly error: unknown }>();
  });

  it('memory levels are a closed string union', () => {
    expectTypeOf<MemoryPressureLevel>().toEqualTypeOf<'low' | 'moderate' | 'high' | 'critical'>();
  });

  it('helpers accept the APIs they wrap', () => {
    expectTypeOf(createBatcher).parameter(0).toEqualTypeOf<Pick<EmitAPI, 'enqueue'>>();
    expectTypeOf(createStorageBatcher).parameter(0).toEqualTypeOf<Pick<StorageAPI, 'put'>>();
    expectTypeOf(createStorageAPI).returns.toEqualTypeOf<StorageAPI>();
    expectTypeOf(createEmitAPI).returns.toEqualTypeOf<EmitAPI>();
  });
});
