/**
 * Proxy pools as configured (SPEC §11): `proxies:` in the config file (keyed
 * by pool name) and `--proxy-config`, a JSON file of the same pools — keyed
 * by name, or a list of pools with `name` as the original Quarry's file is.
 * Pure but for reading the file.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { ProxyPool } from '../sdk/proxy-pool.js';
import { validateProxyPool, assertProxyPool } from '../sdk/proxy-pool.js';
import type { ProxyIssue } from '../sdk/proxy.js';

/** The pools cannot be used; the message names the file and the field, never a password. */
export class ProxyConfigError extends Error {
  override readonly name = 'ProxyConfigError';
}

/** Pools by name, with the validation warnings to print once. */
export interface LoadedPools {
  readonly pools: ReadonlyMap<string, ProxyPool>;
  readonly warnings: readonly string[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const issue = (i: ProxyIssue): string => `${i.field}: ${i.message}`;

/**
 * Pools from a parsed value: an object keyed by pool name (each pool's own
 * `name`, if given, must match its key) or a list of pools with names.
 * @param where `config quarry.yaml` or `--proxy-config pools.json`, for messages.
 * @throws ProxyConfigError naming every problem of the first bad pool.
 */
export function parsePools(value: unknown, where: string, prefix: string): LoadedPools {
  const entries: Array<[string, unknown, string]> = [];
  if (Array.isArray(value)) {
    value.forEach((p, i) => entries.push([isObj(p) && typeof p.name === 'string' ? p.name : '', p, `${prefix}[${i}]`]));
  } else if (isObj(value)) {
    for (const [name, p] of Object.entries(value)) {
      if (isObj(p) && p.name !== undefined && p.name !== name) throw new ProxyConfigError(`${where}: ${prefix}.${name}.name is ${JSON.stringify(p.name)} but the pool is keyed ${JSON.stringify(name)}; drop name or make them equal`);
      entries.push([name, isObj(p) ? { ...p, name } : p, `${prefix}.${name}`]);
    }
  } else {
    throw new ProxyConfigError(`${where}: ${prefix} must be an object of pools keyed by name (or a list of pools with names)`);
  }
  const pools = new Map<string, ProxyPool>();
  const warnings: string[] = [];
  for (const [name, raw, at] of entries) {
    const r = validateProxyPool(raw, at);
    if (!r.valid) throw new ProxyConfigError(`${where}: ${r.errors.map(issue).join('; ')}`);
    if (pools.has(name)) throw new ProxyConfigError(`${where}: pool ${JSON.stringify(name)} is defined twice`);
    pools.set(name, assertProxyPool(raw, at));
    warnings.push(...r.warnings.map((w) => `${where}: ${issue(w)}`));
  }
  return { pools, warnings };
}

/**
 * Reads a `--proxy-config` JSON file (relative to `cwd`).
 * @throws ProxyConfigError for an unreadable file, bad JSON or bad pools.
 */
export async function loadPoolsFile(file: string, cwd: string): Promise<LoadedPools> {
  const where = `--proxy-config ${file}`;
  let text: string;
  try {
    text = await readFile(resolve(cwd, file), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ProxyConfigError(`${where}: ${code === 'ENOENT' ? 'no such file' : `cannot read the file (${code ?? (err as Error).message})`}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // JSON.parse quotes the text near the error, which may be a password: say where only.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    throw new ProxyConfigError(`${where}: not valid JSON${at !== undefined ? ` (near character ${at})` : ''}`);
  }
  if (isObj(value) && isObj(value.proxies) && Object.keys(value).length === 1) value = value.proxies;
  return parsePools(value, where, 'pools');
}

/** Pools of both sources; a name in both is an error (which one is meant would be a guess). */
export function mergePools(a: LoadedPools | undefined, b: LoadedPools | undefined): LoadedPools {
  const pools = new Map<string, ProxyPool>(a?.pools ?? []);
  for (const [name, p] of b?.pools ?? []) {
    if (pools.has(name)) throw new ProxyConfigError(`proxy pool ${JSON.stringify(name)} is defined both in the config file and in --proxy-config; keep one`);
    pools.set(name, p);
  }
  return { pools, warnings: [...(a?.warnings ?? []), ...(b?.warnings ?? [])] };
}
