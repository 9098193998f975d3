/**
 * `memory`: pressure probes across the executor's heap, the run's browser page
 * and the container (SPEC §2). Levels: low < 0.5 ≤ moderate < 0.7 ≤ high < 0.9 ≤ critical.
 */
import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import type { Page } from 'puppeteer-core';
import type { MemoryAPI, MemoryPressureLevel, MemorySnapshot, MemoryUsage } from './types.js';

/** Pressure levels in increasing order. */
export const MEMORY_PRESSURE_LEVELS: readonly MemoryPressureLevel[] = ['low', 'moderate', 'high', 'critical'];

/** Lower bounds of the levels above `low` (SPEC §2). */
const THRESHOLDS = { moderate: 0.5, high: 0.7, critical: 0.9 } as const;

/** Where each source is read from; every reader may be replaced (a container without /sys, a test). */
export interface MemorySources {
  node(): MemoryUsage;
  cgroup(): MemoryUsage | null;
  browser(page: Page): Promise<MemoryUsage | null>;
}

/** Options of {@link createMemoryAPI}. */
export interface MemoryOptions {
  /** The run's page: its JS heap is the browser source. */
  readonly page?: Page;
  /** Readers to use instead of the defaults. */
  readonly sources?: Partial<MemorySources>;
  /** Clock for `ts`. */
  readonly now?: () => Date;
}

/** The level of one usage ratio. */
export function classifyPressure(ratio: number): MemoryPressureLevel {
  if (ratio >= THRESHOLDS.critical) return 'critical';
  if (ratio >= THRESHOLDS.high) return 'high';
  if (ratio >= THRESHOLDS.moderate) return 'moderate';
  return 'low';
}

function usage(used: number, limit: number): MemoryUsage {
  return Object.freeze({ used, limit, ratio: limit > 0 ? used / limit : 0 });
}

/** V8 heap of this process. */
export function readNodeMemory(): MemoryUsage {
  const h = getHeapStatistics();
  return usage(h.used_heap_size, h.heap_size_limit);
}

/** A limit at or above this is "no limit" (cgroup v1 reports one as a huge page-aligned number). */
const UNLIMITED = 2 ** 60;

function readNumber(path: string): number | 'max' | undefined {
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (text === 'max') return 'max';
    const n = Number(text);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The container's memory from cgroup v2 (`memory.current`/`memory.max`), else
 * cgroup v1 (`memory/memory.usage_in_bytes`/`memory.limit_in_bytes`), under `root`.
 * Null when neither exists or the limit is unlimited.
 */
export function readCgroupMemory(root = '/sys/fs/cgroup'): MemoryUsage | null {
  const current = readNumber(`${root}/memory.current`);
  const max = readNumber(`${root}/memory.max`);
  if (typeof current === 'number' && max !== undefined) {
    return max === 'max' || max >= UNLIMITED ? null : usage(current, max);
  }
  const used = readNumber(`${root}/memory/memory.usage_in_bytes`);
  const limit = readNumber(`${root}/memory/memory.limit_in_bytes`);
  if (typeof used === 'number' && typeof limit === 'number') {
    return limit >= UNLIMITED ? null : usage(used, limit);
  }
  return null;
}

/**
 * JS heap of `page` through CDP (`page.metrics()`), against the heap limit the
 * page reports (`performance.memory`), else against the allocated heap. Null on failure.
 */
export async function readBrowserMemory(page: Page): Promise<MemoryUsage | null> {
  try {
    const m = await page.metrics();
    const used = m.JSHeapUsedSize ?? 0;
    let limit = m.JSHeapTotalSize ?? 0;
    const reported: unknown = await page.evaluate('globalThis.performance && performance.memory ? performance.memory.jsHeapSizeLimit : 0').catch(() => 0);
    if (typeof reported === 'number' && reported > 0) limit = reported;
    return usage(used, limit);
  } catch {
    return null;
  }
}

/** Creates the memory API of a run. */
export function createMemoryAPI(options: MemoryOptions = {}): MemoryAPI {
  const sources: MemorySources = {
    node: options.sources?.node ?? readNodeMemory,
    cgroup: options.sources?.cgroup ?? (() => readCgroupMemory()),
    browser: options.sources?.browser ?? readBrowserMemory,
  };
  const now = options.now ?? (() => new Date());
  const page = options.page;

  async function snapshot(o: { browser?: boolean } = {}): Promise<MemorySnapshot> {
    const node = sources.node();
    const browser = page && o.browser !== false ? await sources.browser(page) : null;
    const cgroup = sources.cgroup();
    let top = 0;
    for (const u of [node, browser, cgroup]) {
      if (u) top = Math.max(top, MEMORY_PRESSURE_LEVELS.indexOf(classifyPressure(u.ratio)));
    }
    return Object.freeze({ node, browser, cgroup, pressure: MEMORY_PRESSURE_LEVELS[top] ?? 'low', ts: now().toISOString() });
  }

  return Object.freeze({
    snapshot,
    async isAbove(level: MemoryPressureLevel): Promise<boolean> {
      const wanted = MEMORY_PRESSURE_LEVELS.indexOf(level);
      if (wanted < 0) throw new RangeError(`memory.isAbove: level must be one of ${MEMORY_PRESSURE_LEVELS.join('|')}, got ${JSON.stringify(level)}`);
      const snap = await snapshot();
      return MEMORY_PRESSURE_LEVELS.indexOf(snap.pressure) >= wanted;
    },
  });
}
