/**
 * Temporary folders for tests: unique, under the OS temp dir, removed by
 * `remove()` (or `await using`). Never inside the repository.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  readonly path: string;
  /** Removes the folder and everything in it; safe to call twice. */
  remove(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Creates a fresh folder named `quarry-<label>-XXXXXX` in the OS temp dir. */
export async function makeTempDir(label = 'test'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), `quarry-${label}-`));
  const remove = (): Promise<void> => rm(path, { recursive: true, force: true });
  return { path, remove, [Symbol.asyncDispose]: remove };
}
