import { describe, expect, it } from 'vitest';
import * as src from '../../src/sdk/index.js';

describe('SDK errors', () => {
  it('match instanceof across two copies of the SDK (a script may import its own copy)', async () => {
    // dist/ is compiled by the test setup: a separate module instance with its own classes.
    const distPath = '../../dist/sdk/index.js';
    const dist = (await import(distPath)) as typeof src;
    expect(dist.TerminalEventError).not.toBe(src.TerminalEventError);
    const fromDist = new dist.TerminalEventError('item', 'run_complete');
    expect(fromDist).toBeInstanceOf(src.TerminalEventError);
    expect(fromDist).toBeInstanceOf(src.QuarryError);
    expect(fromDist).not.toBeInstanceOf(src.SinkFailedError);
    expect(new src.SinkFailedError('item', new Error('x'))).toBeInstanceOf(dist.SinkFailedError);
  });

  it('do not match unrelated values', () => {
    expect(new Error('x')).not.toBeInstanceOf(src.QuarryError);
    expect(null as unknown).not.toBeInstanceOf(src.QuarryError);
    expect({ name: 'TerminalEventError' }).not.toBeInstanceOf(src.TerminalEventError);
  });

  it('carry their context in readonly fields and the root cause in cause', () => {
    const cause = new Error('EPIPE');
    const e = new src.SinkFailedError('item', cause);
    expect(e.cause).toBe(cause);
    expect(e.message).toContain('EPIPE');
    expect(e.name).toBe('SinkFailedError');
    const t = new src.TerminalEventError('storage.put', 'run_error');
    expect(t.message).toMatch(/^storage\.put\(\) called after run_error/);
    expect(new src.StorageFilenameError('a/b', 'must not contain "/"').message).toContain('"a/b"');
  });
});
