/**
 * The run settings a crawl tree stores in its frontier (SPEC §10), so
 * `quarry run --resume` takes them back: sources, never secrets — a ledger or
 * browser URL without its password and query, paths as resolved.
 */
import { UsageError } from '../flags.js';

/** `TreeOptions.run` as the CLI writes it (beside `script`, `job`, `partition`, `policy`, which `runTree` adds). */
export interface StoredTreeSettings {
  scripts_root: string;
  /** When the tree's first invocation started (the tree manifest's `started_at`). */
  started_at: string;
  storage: { backend: 'fs' | 's3'; path: string; s3_path_style: boolean; region?: string; endpoint?: string };
  /** The ledger's identity: a SQLite path, or a PostgreSQL URL without password or options. */
  ledger: string;
  /** True when `--ledger` was given (resume must then be given it again if it held a secret). */
  ledger_given: boolean;
  allow_failed_children: number;
  run_timeout_ms?: number;
  executor?: string;
  chromium_path?: string;
  browser_ws_endpoint?: string;
  /** `--no-browser-reuse`: each run launches its own browser (absent: the runs share the invocation's). */
  no_browser_reuse?: boolean;
  job_id?: string;
  parent_run_id?: string;
  /** `--proxy-pool` and the files its pools came from (paths, never the pools: they hold passwords). */
  proxy?: Record<string, string>;
}

/**
 * A URL without what may be secret (password, query, fragment), or a path as
 * it is: what identifies a ledger or an endpoint and may be stored or printed.
 */
export function ledgerIdentity(target: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) return target;
  try {
    const u = new URL(target);
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.toString();
  } catch {
    return '(unparseable url)';
  }
}

/** Reads back what {@link StoredTreeSettings} stored. @throws UsageError when the tree was not started by this CLI. */
export function parseStoredSettings(run: { readonly [key: string]: unknown }, treeId: string): StoredTreeSettings & { script: string; job: unknown; partition: { dataset: string; source: string; category: string; day: string }; policy: unknown } {
  const need = ['scripts_root', 'storage', 'ledger', 'script', 'partition', 'policy'];
  const missing = need.filter((k) => run[k] === undefined);
  if (missing.length > 0) throw new UsageError(`tree ${treeId} was not started by quarry run (its frontier lacks ${missing.join(', ')}); it cannot be resumed from the command line`);
  return run as unknown as ReturnType<typeof parseStoredSettings>;
}
