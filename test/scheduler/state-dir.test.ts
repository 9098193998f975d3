import { describe, expect, it } from 'vitest';
import { frontierPaths, resolveStateDir } from '../../src/scheduler/state-dir.js';

describe('state dir', () => {
  const base = { home: '/home/u', cwd: '/work' } as const;
  it('is --state-dir when given, resolved against the working directory', () => {
    expect(resolveStateDir({ ...base, stateDir: 'st', storageBackend: 'fs', storagePath: 'data' })).toBe('/work/st');
  });
  it('defaults to <storage-path>/.quarry for fs storage', () => {
    expect(resolveStateDir({ ...base, storageBackend: 'fs', storagePath: './data' })).toBe('/work/data/.quarry');
  });
  it('defaults to $XDG_STATE_HOME/quarry otherwise, or ~/.local/state/quarry when it is unset or relative', () => {
    expect(resolveStateDir({ ...base, storageBackend: 's3', xdgStateHome: '/xdg' })).toBe('/xdg/quarry');
    expect(resolveStateDir({ ...base, storageBackend: 's3' })).toBe('/home/u/.local/state/quarry');
    expect(resolveStateDir({ ...base, storageBackend: 's3', xdgStateHome: 'rel' })).toBe('/home/u/.local/state/quarry');
  });
  it('puts one frontier file and one lock per tree under trees/, apart from the ledger', () => {
    expect(frontierPaths('/s', 'T1')).toEqual({ db: '/s/trees/T1.frontier.sqlite', lock: '/s/trees/T1.lock' });
  });
});
