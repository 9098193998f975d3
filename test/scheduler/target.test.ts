import { createHash } from 'node:crypto';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dedupKey, keyDigest, paramsDigest, resolveTarget } from '../../src/scheduler/target.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

describe('targets under the scripts root', () => {
  let dir: TempDir;
  let root: string;
  beforeEach(async () => {
    dir = await makeTempDir('targets');
    root = join(dir.path, 'scripts');
    await mkdir(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'sub', 'detail.ts'), 'export default 1;\n');
    await writeFile(join(dir.path, 'outside.ts'), 'export default 2;\n');
  });
  afterEach(() => dir.remove());

  it('resolves a target relative to the root, with a /-separated path and the file\'s SHA-256', async () => {
    const r = await resolveTarget(root, './sub/../sub/detail.ts');
    expect(r).toEqual({ ok: true, relPath: 'sub/detail.ts', absPath: join(root, 'sub', 'detail.ts'), sha256: createHash('sha256').update('export default 1;\n').digest('hex') });
    expect(await resolveTarget(root, join(root, 'sub', 'detail.ts'))).toMatchObject({ ok: true, relPath: 'sub/detail.ts' });
  });

  it('fails a target that is missing, a folder, or outside the root (symlinks included) as target_not_found', async () => {
    await symlink(join(dir.path, 'outside.ts'), join(root, 'escape.ts'));
    const cases: [string, RegExp][] = [
      ['./nope.ts', /does not exist/], ['sub', /is not a file/], ['../outside.ts', /outside the scripts root/],
      ['escape.ts', /outside the scripts root/], [join(dir.path, 'outside.ts'), /outside the scripts root/], ['', /not a file path/],
    ];
    for (const [target, why] of cases) {
      const r = await resolveTarget(root, target);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.reason).toBe('target_not_found');
        expect(r.detail).toMatch(why);
        expect(r.detail).toContain(`scripts root ${root}`);
      }
    }
    expect(await resolveTarget(root, '../outside.ts')).toMatchObject({ relPath: '../outside.ts' });
  });
});

describe('dedup key', () => {
  it('is the root-relative path plus canonical params: key order and number spelling do not matter', () => {
    expect(dedupKey('sub/detail.ts', { b: 1, a: [1.0, 'x'] })).toBe('["sub/detail.ts",{"a":[1,"x"],"b":1}]');
    expect(dedupKey('d.ts', { a: 1, b: 2 })).toBe(dedupKey('d.ts', JSON.parse('{"b":2.0,"a":1e0}')));
    expect(dedupKey('d.ts', undefined)).toBe(dedupKey('d.ts', {}));
    expect(dedupKey('d.ts', { id: 1 })).not.toBe(dedupKey('e.ts', { id: 1 }));
    // A path cannot pose as params: the two halves are one JSON array.
    expect(dedupKey('a.ts",{"x":1}', {})).not.toBe(dedupKey('a.ts', { x: 1 }));
  });

  it('digests params and keys as SHA-256 hex', () => {
    expect(paramsDigest({ b: 1, a: 2 })).toBe(createHash('sha256').update('{"a":2,"b":1}').digest('hex'));
    expect(keyDigest('k')).toMatch(/^[0-9a-f]{64}$/);
  });
});
