// `quarry run` starts its executor before opening the ledger and claiming the
// run (src/runtime/executor-process.ts), so the executor's start overlaps that
// work. The script must still load only after the claim, and an executor
// whose run is refused must not be left running.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

let tmp: TempDir;
let script: string;
let marker: string;

beforeAll(async () => {
  tmp = await makeTempDir('early-executor');
  writeFileSync(join(tmp.path, 'package.json'), '{ "type": "module" }\n');
  marker = join(tmp.path, 'loaded.log');
  // Its top level records every load; a run emits one item.
  script = join(tmp.path, 'marks.ts');
  writeFileSync(
    script,
    `import { appendFileSync } from 'node:fs';
import type { HttpContext, ScriptOptions } from 'quarry/sdk';
appendFileSync(${JSON.stringify(marker)}, 'loaded\\n');
export const options: ScriptOptions = { browser: false };
export default async function run(ctx: HttpContext): Promise<void> {
  await ctx.emit.item({ item_type: 'x', data: { ok: true } });
}
`,
  );
});
afterAll(async () => {
  await tmp.remove();
});

/** Live processes whose command line names `path`. */
function processesNaming(path: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(path)) out.push(`${pid}: ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const loads = (): number => (existsSync(marker) ? readFileSync(marker, 'utf8').split('\n').filter(Boolean).length : 0);

describe('the executor started before the claim', () => {
  it('runs the script once the run is claimed', async () => {
    const r = await quarry(['run', '--script', script, '--source', 'early', '--run-id', 'early-1', '--storage-path', join(tmp.path, 'data'), '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(loads()).toBe(1);
  });

  it('never loads the script of a run refused before its claim, and leaves no executor behind', async () => {
    const r = await quarry(['run', '--script', script, '--source', 'early', '--run-id', 'early-1', '--storage-path', join(tmp.path, 'data'), '--quiet']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('already used');
    expect(loads()).toBe(1);
    expect(processesNaming(script)).toEqual([]);
  });

  it('leaves no executor behind when the ledger cannot be opened', async () => {
    const notAFolder = join(tmp.path, 'file-not-folder');
    writeFileSync(notAFolder, 'x');
    const r = await quarry(['run', '--script', script, '--source', 'early', '--storage-path', join(tmp.path, 'data'), '--ledger', join(notAFolder, 'ledger.sqlite'), '--quiet']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('cannot reach the ledger');
    expect(loads()).toBe(1);
    expect(processesNaming(script)).toEqual([]);
  });
});
