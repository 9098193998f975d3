import { describe, expect, it } from 'vitest';
import { parseRunRequest, RunRequestError } from '../../src/executor/request.js';

const line = (v: unknown) => JSON.stringify(v);

describe('parseRunRequest', () => {
  it('accepts the minimal request and keeps job as given, null included', () => {
    expect(parseRunRequest(line({ run_id: 'r1', attempt: 1, job: null }))).toEqual({ run_id: 'r1', attempt: 1, job: null });
  });

  it('accepts every field of SPEC §3 and drops unknown ones', () => {
    const storage = { dataset: 'd', source: 's', category: 'c', day: '2024-01-01', run_id: 'r1' };
    const proxy = { protocol: 'http', host: 'p', port: 8080, username: 'u', password: 'pw' };
    expect(
      parseRunRequest(line({ run_id: 'r1', attempt: 2, job_id: 'j', parent_run_id: 'r0', job: { a: 1 }, proxy, browser_ws_endpoint: 'ws://127.0.0.1:9222/devtools/browser/x', storage, chromium_path: '/c', future_field: 1 })),
    ).toEqual({ run_id: 'r1', attempt: 2, job_id: 'j', parent_run_id: 'r0', job: { a: 1 }, proxy, browser_ws_endpoint: 'ws://127.0.0.1:9222/devtools/browser/x', storage, chromium_path: '/c' });
  });

  it('treats null optional fields as absent', () => {
    expect(parseRunRequest(line({ run_id: 'r', attempt: 1, job: 1, job_id: null, proxy: null, storage: null }))).toEqual({ run_id: 'r', attempt: 1, job: 1 });
  });

  const bad: [string, string, RegExp][] = [
    ['not JSON', '{run_id', /not JSON/],
    ['an array', '[]', /must be a JSON object/],
    ['an empty run_id', line({ run_id: '', attempt: 1, job: null }), /run_id must be a non-empty string, got ""/],
    ['attempt 0', line({ run_id: 'r', attempt: 0, job: null }), /attempt must be an integer >= 1, got 0/],
    ['a fractional attempt', line({ run_id: 'r', attempt: 1.5, job: null }), /got 1\.5/],
    ['attempt as a string', line({ run_id: 'r', attempt: '1', job: null }), /got "1"/],
    ['no job', line({ run_id: 'r', attempt: 1 }), /job is missing/],
    ['an http browser endpoint', line({ run_id: 'r', attempt: 1, job: null, browser_ws_endpoint: 'http://x' }), /ws:\/\/ or wss:\/\//],
    ['storage without day', line({ run_id: 'r', attempt: 1, job: null, storage: { dataset: 'd', source: 's', category: 'c', run_id: 'r' } }), /storage\.day must be a non-empty string/],
    ['a numeric job_id', line({ run_id: 'r', attempt: 1, job: null, job_id: 5 }), /job_id must be a non-empty string/],
  ];
  for (const [what, input, message] of bad) {
    it(`rejects ${what} with RunRequestError`, () => {
      expect(() => parseRunRequest(input)).toThrow(RunRequestError);
      expect(() => parseRunRequest(input)).toThrow(message);
    });
  }

  it('rejects a bad proxy naming the fields and never echoing the password', () => {
    let err: unknown;
    try {
      parseRunRequest(line({ run_id: 'r', attempt: 1, job: null, proxy: { protocol: 'http', host: 'h', port: 0, username: 'u', password: 'topsecret' } }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RunRequestError);
    expect((err as Error).message).toMatch(/port: must be an integer in 1\.\.65535, got 0/);
    expect((err as Error).message).not.toContain('topsecret');
  });
});
