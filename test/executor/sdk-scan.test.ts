// Whether a JavaScript script needs the module-hooks thread (loader.ts
// mayNameSdk): only when it, or a file it imports by a relative path, may name
// the SDK. A script that never does loads without a second node environment.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mayNameSdk } from '../../src/executor/loader.js';

const dir = mkdtempSync(join(tmpdir(), 'quarry-sdk-scan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  return path;
};

describe('mayNameSdk', () => {
  it('is false for a script that imports packages, node: modules and local files that never name the SDK', () => {
    file('plain/lib/util.js', "const { join } = require('node:path');\nmodule.exports = { join };\n");
    file('plain/lib/parse.mjs', "import { load } from 'cheerio';\nexport * from './more.mjs';\nexport const parse = load;\n");
    file('plain/lib/more.mjs', "export const more = 1; // imports from 'somewhere' in a comment\n");
    const main = file('plain/main.mjs', "import { load } from 'cheerio';\nimport './lib/parse.mjs';\nimport util from './lib/util';\nimport data from './data.json' with { type: 'json' };\nexport default async function run({ emit }) { await emit.item({ item_type: 'x', data: {} }); }\n");
    expect(mayNameSdk(main)).toBe(false);
  });

  it('is true when the script, or a file it reaches through relative imports, names quarry/sdk or the original package', () => {
    expect(mayNameSdk(file('direct/main.mjs', "import { createBatcher } from 'quarry/sdk';\nexport default async function run() {}\n"))).toBe(true);
    file('deep/a/b.mjs', "export { TerminalEventError } from '@pithecene-io/quarry-sdk';\n");
    file('deep/a.mjs', "export * from './a/b.mjs';\n");
    expect(mayNameSdk(file('deep/main.mjs', "import * as a from './a.mjs';\nexport default async function run() {}\n"))).toBe(true);
    file('dyn/late.cjs', "module.exports = () => import('quarry/sdk');\n");
    expect(mayNameSdk(file('dyn/main.js', "const late = require('./late.cjs');\nmodule.exports = async () => late();\n"))).toBe(true);
  });

  it('is true when where an import leads cannot be read off: computed, absolute, file: and # specifiers, or a missing entry', () => {
    expect(mayNameSdk(file('computed/main.mjs', "const name = 'x';\nexport default async function run() { await import(name); }\n"))).toBe(true);
    expect(mayNameSdk(file('abs/main.mjs', `import x from '${join(dir, 'plain/lib/more.mjs')}';\nexport default async function run() {}\n`))).toBe(true);
    expect(mayNameSdk(file('url/main.mjs', "import x from 'file:///nowhere/x.mjs';\nexport default async function run() {}\n"))).toBe(true);
    expect(mayNameSdk(file('hash/main.mjs', "import x from '#lib/x.mjs';\nexport default async function run() {}\n"))).toBe(true);
    expect(mayNameSdk(join(dir, 'missing.mjs'))).toBe(true);
  });

  it('follows an import cycle once', () => {
    file('cycle/a.mjs', "import './b.mjs';\nexport const a = 1;\n");
    file('cycle/b.mjs', "import './a.mjs';\nexport const b = 1;\n");
    expect(mayNameSdk(file('cycle/main.mjs', "import './a.mjs';\nexport default async function run() {}\n"))).toBe(false);
  });
});
