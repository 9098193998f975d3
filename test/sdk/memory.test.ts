import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyPressure, createMemoryAPI, readCgroupMemory, readNodeMemory, type MemoryUsage } from '../../src/sdk/index.js';

const u = (ratio: number): MemoryUsage => ({ used: ratio * 100, limit: 100, ratio });
const dirs: string[] = [];
function cgroupDir(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'quarry-cg-'));
  dirs.push(d);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(d, name, '..'), { recursive: true });
    writeFileSync(join(d, name), text);
  }
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('memory pressure', () => {
  it('classifies ratios: low < 0.5 <= moderate < 0.7 <= high < 0.9 <= critical', () => {
    expect([0, 0.4999, 0.5, 0.6999, 0.7, 0.8999, 0.9, 1.2].map(classifyPressure)).toEqual(['low', 'low', 'moderate', 'moderate', 'high', 'high', 'critical', 'critical']);
  });

  it('reports the highest level among node, browser and cgroup', async () => {
    const mem = createMemoryAPI({ page: {} as never, sources: { node: () => u(0.1), cgroup: () => u(0.75), browser: () => Promise.resolve(u(0.55)) } });
    const snap = await mem.snapshot();
    expect(snap.pressure).toBe('high');
    expect(snap.browser?.ratio).toBe(0.55);
    expect(await mem.isAbove('moderate')).toBe(true);
    expect(await mem.isAbove('high')).toBe(true);
    expect(await mem.isAbove('critical')).toBe(false);
  });

  it('skips the browser when asked to or when there is no page', async () => {
    let browserReads = 0;
    const sources = { node: () => u(0.1), cgroup: () => null, browser: () => (browserReads++, Promise.resolve(u(0.95))) };
    expect((await createMemoryAPI({ page: {} as never, sources }).snapshot({ browser: false })).pressure).toBe('low');
    expect((await createMemoryAPI({ sources }).snapshot()).browser).toBeNull();
    expect(browserReads).toBe(0);
  });

  it('rejects an unknown level', async () => {
    await expect(createMemoryAPI().isAbove('extreme' as never)).rejects.toThrow(RangeError);
  });

  it('reads the real V8 heap with a positive limit', () => {
    const n = readNodeMemory();
    expect(n.used).toBeGreaterThan(0);
    expect(n.limit).toBeGreaterThan(n.used);
    expect(n.ratio).toBeCloseTo(n.used / n.limit);
  });

  it('reads cgroup v2 memory.current/memory.max and treats "max" as no limit', () => {
    expect(readCgroupMemory(cgroupDir({ 'memory.current': '300\n', 'memory.max': '1000\n' }))).toEqual({ used: 300, limit: 1000, ratio: 0.3 });
    expect(readCgroupMemory(cgroupDir({ 'memory.current': '300\n', 'memory.max': 'max\n' }))).toBeNull();
  });

  it('falls back to cgroup v1 and treats its huge sentinel limit as no limit', () => {
    expect(readCgroupMemory(cgroupDir({ 'memory/memory.usage_in_bytes': '800', 'memory/memory.limit_in_bytes': '1000' }))).toEqual({ used: 800, limit: 1000, ratio: 0.8 });
    expect(readCgroupMemory(cgroupDir({ 'memory/memory.usage_in_bytes': '800', 'memory/memory.limit_in_bytes': '9223372036854771712' }))).toBeNull();
    expect(readCgroupMemory(cgroupDir({}))).toBeNull();
  });
});
