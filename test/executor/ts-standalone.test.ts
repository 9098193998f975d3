import { describe, expect, it } from 'vitest';
import { importsNothing } from '../../src/executor/ts-hooks.js';

// A compiled script that imports nothing loads from its cache file without the hooks thread;
// one that imports anything must not, since its imports would resolve from the cache folder.
describe('importsNothing (which compiled scripts may load from the cache file as they are)', () => {
  it('accepts a module whose only statements are its own exports', () => {
    expect(importsNothing('export const options = { browser: false };\nexport default async function run(ctx) {\n  await ctx.emit.item({ item_type: "a", data: { n: Array.from([1]) } });\n}\n')).toBe(true);
  });

  it('refuses static, dynamic and meta imports, require and re-exports', () => {
    for (const code of [
      'import { load } from "cheerio";\nexport default async function run() {}\n',
      'import "./side.js";\nexport default async function run() {}\n',
      'export default async function run() { await import("./x.js"); }\n',
      'export default async function run() { return import.meta.url; }\n',
      'export default function run() { return require("x"); }\n',
      'export * from "./x.js";\nexport default function run() {}\n',
      'export { helper } from "./x.js";\nexport default function run() {}\n',
    ]) {
      expect(importsNothing(code), code).toBe(false);
    }
  });

  it('ignores the inline source map, whose base64 may spell anything', () => {
    const code = `export default async function run() {}\n//# sourceMappingURL=data:application/json;base64,${Buffer.from('import x from "y"').toString('base64')}import\n`;
    expect(importsNothing(code)).toBe(true);
  });
});
