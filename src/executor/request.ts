/**
 * The run request line (SPEC §3, stdin phase 1): parsing and validation. Pure.
 */
import type { RunRequest, RunRequestStorage } from '../protocol/index.js';
import { assertProxyEndpoint, ProxyValidationError } from '../sdk/index.js';

/** The request line is not a valid run request; the executor exits 3. */
export class RunRequestError extends Error {
  override readonly name = 'RunRequestError';
}

/** Longest request line accepted, so a runtime that never sends a newline cannot grow memory without bound. */
export const MAX_REQUEST_LINE_BYTES = 16 * 1024 * 1024;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const absent = (v: unknown): boolean => v === undefined || v === null;

function optString(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  if (absent(v)) return undefined;
  if (typeof v !== 'string' || v === '') throw new RunRequestError(`${key} must be a non-empty string when present, got ${JSON.stringify(v)}`);
  return v;
}

function parseStorage(v: unknown): RunRequestStorage {
  if (!isObj(v)) throw new RunRequestError('storage must be an object { dataset, source, category, day, run_id }');
  const out: Record<string, string> = {};
  for (const key of ['dataset', 'source', 'category', 'day', 'run_id'] as const) {
    const s = v[key];
    if (typeof s !== 'string' || s === '') throw new RunRequestError(`storage.${key} must be a non-empty string, got ${JSON.stringify(s)}`);
    out[key] = s;
  }
  return out as unknown as RunRequestStorage;
}

/**
 * Parses one request line. Absent optional fields (missing or null) are left
 * out of the result; unknown fields are ignored (additive contract changes).
 * @throws RunRequestError naming the first bad field.
 */
export function parseRunRequest(line: string): RunRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new RunRequestError(`the run request line is not JSON: ${(err as Error).message}`);
  }
  return parseRunRequestValue(value);
}

/**
 * Checks a decoded run request: the request line's JSON, or the `request` of a
 * run slot's `run_request` frame (SPEC §10).
 * @throws RunRequestError naming the first bad field.
 */
export function parseRunRequestValue(value: unknown): RunRequest {
  if (!isObj(value)) throw new RunRequestError('the run request must be a JSON object');
  const { run_id, attempt } = value;
  if (typeof run_id !== 'string' || run_id === '') throw new RunRequestError(`run_id must be a non-empty string, got ${JSON.stringify(run_id)}`);
  if (typeof attempt !== 'number' || !Number.isInteger(attempt) || attempt < 1) throw new RunRequestError(`attempt must be an integer >= 1, got ${JSON.stringify(attempt)}`);
  if (!('job' in value)) throw new RunRequestError('job is missing (send "job": null for a script without a job)');
  const job_id = optString(value, 'job_id');
  const parent_run_id = optString(value, 'parent_run_id');
  const browser_ws_endpoint = optString(value, 'browser_ws_endpoint');
  if (browser_ws_endpoint !== undefined && !/^wss?:\/\//.test(browser_ws_endpoint)) {
    throw new RunRequestError(`browser_ws_endpoint must be a ws:// or wss:// URL, got ${JSON.stringify(browser_ws_endpoint)}`);
  }
  const chromium_path = optString(value, 'chromium_path');
  const script = optString(value, 'script');
  let proxy;
  if (!absent(value.proxy)) {
    try {
      proxy = assertProxyEndpoint(value.proxy);
    } catch (err) {
      if (err instanceof ProxyValidationError) throw new RunRequestError(err.message);
      throw err;
    }
  }
  const storage = absent(value.storage) ? undefined : parseStorage(value.storage);
  if (!absent(value.shared_browser) && typeof value.shared_browser !== 'boolean') throw new RunRequestError(`shared_browser must be a boolean when present, got ${JSON.stringify(value.shared_browser)}`);
  if (!absent(value.slots) && typeof value.slots !== 'boolean') throw new RunRequestError(`slots must be a boolean when present, got ${JSON.stringify(value.slots)}`);
  return {
    run_id,
    attempt,
    job: value.job,
    ...(job_id !== undefined ? { job_id } : {}),
    ...(parent_run_id !== undefined ? { parent_run_id } : {}),
    ...(proxy !== undefined ? { proxy } : {}),
    ...(browser_ws_endpoint !== undefined ? { browser_ws_endpoint } : {}),
    ...(storage !== undefined ? { storage } : {}),
    ...(chromium_path !== undefined ? { chromium_path } : {}),
    ...(script !== undefined ? { script } : {}),
    ...(value.slots === true ? { slots: true } : {}),
    ...(value.shared_browser === true ? { shared_browser: true } : {}),
  };
}
