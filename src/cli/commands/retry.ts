/**
 * `quarry retry` (SPEC §8 state-driven retry): re-runs `failed` partitions
 * with the script and job their last run recorded, as new runs (same job id,
 * attempt + 1, parent = that run). `--expect-days FROM..TO` adds the days that
 * never ran (`pending`), which take `--script` and a `--job` template whose
 * `{day}` is replaced; `--reprocess` adds `success` partitions, explicitly.
 * Nothing stored is touched: every retry writes its own run partition, and
 * the validator decides whether it becomes authoritative.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Ledger, LedgerReader } from '../../ledger/ledger.js';
import { policyFromRecord } from '../../runtime/settings.js';
import type { StorageBackend } from '../../storage/backend.js';
import type { LogicalPartition } from '../../storage/layout.js';
import { ManifestError } from '../../storage/manifest.js';
import { readManifest, readRunClaim } from '../../storage/reader.js';
import type { RunSettings } from '../../storage/run-settings.js';
import type { LoadedPools } from '../../proxy/pools-config.js';
import { PROXY_STRATEGIES, type ProxyStrategy } from '../../sdk/proxy-pool.js';
import type { PartitionFilters, RunHistoryRow } from '../../ledger/types.js';
import { STORAGE_FLAGS, OUTPUT_FLAGS } from '../common-flags.js';
import { parseFlags, renderFlagHelp, UsageError, type FlagSpec, type ParsedFlags } from '../flags.js';
import { beforeStart, InterruptedBeforeStart } from '../interruptible.js';
import type { CliIO } from '../io.js';
import { render, renderOptionsFrom } from '../render.js';
import { daysOf } from './completeness.js';
import { expectedDays, LEDGER_FLAG, ledgerFilters, ledgerTargetFrom, requireLedgerFile, OLD_RANGE_ALIASES } from './ledger-common.js';
import { PARTITION_FILTER_FLAGS, ReadCommandError, stringFlag, EXIT_NOT_FOUND } from './read-common.js';
import { openProxyRouter, type PreparedProxy } from './proxy-setup.js';
import { stateDirFor } from './state-dir-flag.js';
import { checkScript, compileStorage, type RunPlan } from './run.js';

export const RETRY_FLAGS: readonly FlagSpec[] = [
  ...STORAGE_FLAGS,
  LEDGER_FLAG,
  ...PARTITION_FILTER_FLAGS,
  ...OLD_RANGE_ALIASES,
  { name: 'expect-all', type: 'bool', help: 'Also run the days of --from-day/--to-day that never ran (need --source, --script, --job)', group: 'Retry' },
  { name: 'expect-days', type: 'string', arg: 'FROM..TO', help: 'Same as --from-day FROM --to-day TO --expect-all', group: 'Retry' },
  { name: 'script', type: 'string', arg: 'PATH', help: 'Script for pending days (and, if given, for every retry)', group: 'Retry' },
  { name: 'job', type: 'string', arg: 'JSON', help: 'Job template for pending days; {day} is replaced by the day', group: 'Retry' },
  { name: 'include-skipped', type: 'bool', help: 'Also re-run pending partitions whose only runs were skipped by prepare', group: 'Retry' },
  { name: 'reprocess', type: 'bool', help: 'Also re-run success partitions (a new run; the old one stays until the new one validates)', group: 'Retry' },
  { name: 'limit', type: 'int', help: 'At most N runs', group: 'Retry' },
  { name: 'dry-run', type: 'bool', help: 'List what would run, run nothing', group: 'Retry' },
  { name: 'quiet', type: 'bool', help: 'No per-run summary lines', group: 'Retry' },
  { name: 'chromium-path', type: 'string', arg: 'PATH', help: 'Chromium binary (default $QUARRY_CHROMIUM_PATH or /usr/bin/chromium)', group: 'Retry' },
  { name: 'run-timeout', type: 'duration', help: 'Bound each run (default: the run-timeout the retried run recorded)', group: 'Retry' },
  { name: 'retries', type: 'int', help: 'Re-run a failed run up to N times (default: the retries the retried run recorded)', group: 'Retry' },
  { name: 'browser-ws-endpoint', type: 'string', arg: 'URL', help: 'Browser to connect to; needed again when the retried run used one (its credentials are never recorded)', group: 'Retry' },
  { name: 'config', type: 'string', arg: 'FILE', help: 'quarry run config file whose proxies: define the pool a retried run used (its endpoints are never recorded)', group: 'Proxy' },
  { name: 'proxy-config', type: 'string', arg: 'FILE', help: 'JSON file of proxy pools defining the pool a retried run used', group: 'Proxy' },
  { name: 'state-dir', type: 'string', arg: 'DIR', help: 'Where the proxy selection state is (default: as quarry run)', group: 'Proxy' },
  ...OUTPUT_FLAGS,
];

const USAGE = `Usage: quarry retry [filters] [--from-day FROM --to-day TO --expect-all --script S --job '{"day":"{day}"}'] [--reprocess] [--include-skipped] [--dry-run]

Re-runs failed partitions (and pending days, and with --reprocess success
ones) as new runs, each validated into the ledger, under the settings the
retried run recorded (policy and its options, run-timeout, retries, browser,
proxy pool: each retry selects a fresh endpoint from it, so give the pool
again with --proxy-config or --config; its endpoints are never recorded).
A partition whose only runs were skipped by prepare stays pending and is left
alone unless --include-skipped. Exit 0 when every run succeeded, else the
highest exit code of the runs.`;

/** One run retry would start. */
export interface RetryTarget {
  source: string;
  category: string;
  day: string;
  reason: 'failed' | 'pending' | 'skipped' | 'reprocess';
  script: string;
  job: unknown;
  job_id: string | null;
  /** SHA-256 the last run recorded for `script`, checked before re-running it; null when `--script` was given (or none was recorded). */
  script_sha256: string | null;
  attempt: number;
  parent_run_id: string | null;
  /** What the retried run (`parent_run_id`) recorded it ran with; null when it recorded none (older runs, a day that never ran). */
  settings: RunSettings | null;
  /**
   * Set when the partition's last attempt came from a fan-out tree (SPEC §8
   * retry): the tree is re-run as a whole — a new tree whose root's
   * `parent_run_id` is the old root — never one member alone. `script`,
   * `job` and `parent_run_id` are then the tree root's.
   */
  tree_id?: string;
}

/**
 * The fan-out tree a partition's last attempt came from, or undefined: the
 * partition's last recorded entry is a validated tree, or its last run is a
 * tree member (a tree not validated yet, e.g. interrupted).
 */
async function lastTreeOf(ledger: LedgerReader, lastRunId: string | null, last: RunHistoryRow | undefined): Promise<string | undefined> {
  if (lastRunId !== null && (await ledger.getTree(lastRunId)) !== undefined) return lastRunId;
  if (last !== undefined && (last.fanout || last.root_run_id !== last.run_id || last.depth > 0)) return last.root_run_id;
  return undefined;
}

/** The `--run-timeout`, `--retries` and `--browser-ws-endpoint` given to `retry`. @throws UsageError */
function retryOverrides(v: ParsedFlags['values']): RetryOverrides {
  const runTimeoutMs = v['run-timeout'] as number | undefined;
  if (runTimeoutMs !== undefined && runTimeoutMs <= 0) throw new UsageError(`--run-timeout must be more than 0, e.g. 10m, got ${runTimeoutMs}ms`);
  const retries = v.retries as number | undefined;
  if (retries !== undefined && retries < 0) throw new UsageError(`--retries must be 0 or more, got ${retries}`);
  const browserWsEndpoint = stringFlag(v, 'browser-ws-endpoint');
  return {
    ...(runTimeoutMs !== undefined ? { runTimeoutMs } : {}),
    ...(retries !== undefined ? { retries } : {}),
    ...(browserWsEndpoint !== undefined ? { browserWsEndpoint } : {}),
  };
}

/** Replaces `{day}` in every string of a job template. */
export function fillTemplate(template: unknown, day: string): unknown {
  if (typeof template === 'string') return template.replaceAll('{day}', day);
  if (Array.isArray(template)) return template.map((v) => fillTemplate(v, day));
  if (template && typeof template === 'object') return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, fillTemplate(v, day)]));
  return template;
}

/** What to run, from the ledger: pure but for ledger reads. @throws UsageError */
export async function planRetries(ledger: LedgerReader, filters: PartitionFilters, opts: { days?: string[]; script?: string; job?: unknown; reprocess: boolean; includeSkipped?: boolean; limit?: number }): Promise<RetryTarget[]> {
  const targets: RetryTarget[] = [];
  const statuses: Array<'failed' | 'success'> = opts.reprocess ? ['failed', 'success'] : ['failed'];
  const rows: Array<LogicalPartition & { status: 'failed' | 'success' | 'skipped'; current_run_id: string | null; last_run_id?: string }> =
    (await Promise.all(statuses.map((status) => ledger.listPartitions({ ...filters, status })))).flat();
  // A skip leaves its partition pending; retry leaves it alone unless asked (SPEC §8 skip rule).
  const skips = await ledger.pendingSkips(filters);
  const skipped = new Set(skips.map((k) => `${k.source}\u0000${k.category}\u0000${k.day}`));
  if (opts.includeSkipped) rows.push(...skips.map((k) => ({ ...k, status: 'skipped' as const, current_run_id: null })));
  for (const p of rows.sort((a, b) => (a.source + a.category + a.day < b.source + b.category + b.day ? -1 : 1))) {
    if (opts.days && !opts.days.includes(p.day)) continue;
    const history = await ledger.runsOfPartition(p);
    const last: RunHistoryRow | undefined = history[history.length - 1];
    const treeId = await lastTreeOf(ledger, p.last_run_id ?? null, last);
    if (treeId !== undefined) {
      // §8: a partition whose last attempt came from a tree is retried by re-running the tree, once per tree.
      if (targets.some((t) => t.tree_id === treeId)) continue;
      const roots = (await ledger.listRuns({ root_run_id: treeId })).filter((r) => r.depth === 0);
      const root = roots[roots.length - 1];
      const script = opts.script ?? root?.script_path ?? undefined;
      if (!script) throw new UsageError(`partition ${p.source}/${p.category}/${p.day}: tree ${treeId} recorded no root script; give --script`);
      targets.push({
        source: p.source, category: p.category, day: p.day,
        reason: p.status === 'success' ? 'reprocess' : p.status,
        script, job: root?.job ?? {}, job_id: null,
        script_sha256: opts.script === undefined ? (root?.script_sha256 ?? null) : null,
        attempt: 1, parent_run_id: root?.run_id ?? treeId, settings: null, tree_id: treeId,
      });
      continue;
    }
    const script = opts.script ?? last?.script_path ?? undefined;
    if (!script) throw new UsageError(`partition ${p.source}/${p.category}/${p.day}: its last run recorded no script; give --script`);
    const parent = p.status === 'success' ? p.current_run_id : last?.run_id ?? null;
    targets.push({
      source: p.source,
      category: p.category,
      day: p.day,
      reason: p.status === 'success' ? 'reprocess' : p.status,
      script,
      job: last?.job ?? {},
      // §5: a retry keeps the job id of the run it retries, or none when that run had none.
      job_id: last?.job_id ?? null,
      script_sha256: opts.script === undefined ? (last?.script_sha256 ?? null) : null,
      attempt: Math.max(0, ...history.map((h) => h.attempt ?? 0)) + 1,
      parent_run_id: parent,
      settings: null,
    });
  }
  if (opts.days) {
    if (!filters.source) throw new UsageError('--expect-all (or --expect-days) needs --source (and --category unless it is default): which partitions are expected');
    if (!opts.script) throw new UsageError('--expect-all (or --expect-days) needs --script: a day that never ran has no recorded script');
    if (opts.job === undefined) throw new UsageError('--expect-all (or --expect-days) needs --job: a template in which {day} is replaced, e.g. --job \'{"date":"{day}"}\'');
    const category = filters.category ?? 'default';
    for (const day of opts.days) {
      const state = await ledger.getPartition({ dataset: filters.dataset!, source: filters.source, category, day });
      if (state || skipped.has(`${filters.source}\u0000${category}\u0000${day}`)) continue;
      targets.push({ source: filters.source, category, day, reason: 'pending', script: opts.script, job: fillTemplate(opts.job, day), job_id: null, script_sha256: null, attempt: 1, parent_run_id: null, settings: null });
    }
  }
  return opts.limit !== undefined ? targets.slice(0, opts.limit) : targets;
}

/**
 * The settings the run a target replaces recorded: from its manifest, or from
 * its claim when it never finalized or its manifest is unreadable. Null when
 * it recorded none (a run written before settings were recorded) or the
 * target replaces no run.
 * @throws StorageError when the storage cannot be read.
 */
export async function recordedSettings(backend: StorageBackend, dataset: string, t: RetryTarget): Promise<RunSettings | null> {
  if (!t.parent_run_id) return null;
  try {
    const m = await readManifest(backend, { dataset, source: t.source, category: t.category, day: t.day, run_id: t.parent_run_id });
    if (m?.settings) return m.settings;
  } catch (err) {
    if (!(err instanceof ManifestError)) throw err;
  }
  try {
    return (await readRunClaim(backend, dataset, t.parent_run_id))?.settings ?? null;
  } catch (err) {
    if (err instanceof ManifestError) return null;
    throw err;
  }
}

/** Settings given on the `retry` command line: each beats what the retried run recorded. */
export interface RetryOverrides {
  runTimeoutMs?: number;
  retries?: number;
  browserWsEndpoint?: string;
}

/**
 * The run settings of one retry: recorded ones, overridden by the command
 * line; strict with no timeout and no retries when nothing was recorded. A
 * recorded browser endpoint lost its credentials when it was recorded, so it
 * is reused only when given again: without `--browser-ws-endpoint` the retry
 * is refused (a string saying so) rather than run against another browser.
 */
export function retrySettings(recorded: RunSettings | null, given: RetryOverrides): Pick<RunPlan, 'policy' | 'retries' | 'runTimeoutMs' | 'browserWsEndpoint'> | string {
  if (recorded?.browser.mode === 'endpoint' && given.browserWsEndpoint === undefined) {
    return `its last run used the browser at ${recorded.browser.endpoint}, whose credentials are never recorded; give --browser-ws-endpoint to reuse it`;
  }
  const runTimeoutMs = given.runTimeoutMs ?? recorded?.run_timeout_ms ?? undefined;
  return {
    policy: recorded ? policyFromRecord(recorded.policy) : { name: 'strict' },
    retries: given.retries ?? recorded?.retries ?? 0,
    ...(runTimeoutMs !== undefined ? { runTimeoutMs } : {}),
    ...(given.browserWsEndpoint !== undefined ? { browserWsEndpoint: given.browserWsEndpoint } : {}),
  };
}

/**
 * The proxy of one retry: a fresh selection from the pool the retried run
 * used (its strategy too), or a string saying why it is refused — the pool's
 * endpoints and passwords are never recorded, so it must be given again; a
 * retry never goes out without the proxy its run had.
 */
export function retryProxy(recorded: RunSettings | null, pools: LoadedPools | undefined): PreparedProxy | undefined | string {
  if (!recorded?.proxy) return undefined;
  const { pool, strategy } = recorded.proxy;
  if (!pools?.pools.has(pool)) {
    return `its last run took its proxy from pool ${JSON.stringify(pool)}, whose endpoints are never recorded; give --proxy-config FILE or --config FILE defining it${pools && pools.pools.size > 0 ? ` (given: ${[...pools.pools.keys()].join(', ')})` : ''}`;
  }
  return { plan: { pool, ...((PROXY_STRATEGIES as readonly string[]).includes(strategy) ? { strategy: strategy as ProxyStrategy } : {}) }, pools };
}

/** The pools `--config` and `--proxy-config` define; undefined when neither is given. @throws UsageError */
async function retryPools(values: ParsedFlags['values'], io: CliIO): Promise<LoadedPools | undefined> {
  const configFile = stringFlag(values, 'config');
  const proxyConfig = stringFlag(values, 'proxy-config');
  if (configFile === undefined && proxyConfig === undefined) return undefined;
  const { loadRunConfig } = await import('../config.js');
  const { loadPoolsFile, mergePools, parsePools, ProxyConfigError } = await import('../../proxy/pools-config.js');
  const cfg = configFile !== undefined ? await loadRunConfig(configFile, io.cwd, io.env) : undefined;
  const file = proxyConfig ?? (typeof cfg?.values['proxy-config'] === 'string' ? cfg.values['proxy-config'] : undefined);
  try {
    return mergePools(cfg?.proxies !== undefined ? parsePools(cfg.proxies, `config ${configFile!}`, 'proxies') : undefined, file !== undefined ? await loadPoolsFile(file, io.cwd) : undefined);
  } catch (err) {
    if (err instanceof ProxyConfigError) throw new UsageError(err.message);
    throw err;
  }
}

export async function retryCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const p = parseFlags(argv, RETRY_FLAGS);
  if (p.help) {
    io.stdout(`${USAGE}\n${renderFlagHelp(RETRY_FLAGS)}\n`);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(p.positionals[0])}`);
  const dataset = stringFlag(p.values, 'storage-dataset') ?? 'quarry';
  const filters = ledgerFilters(p.values, dataset);
  let days = expectedDays(stringFlag(p.values, 'expect-days'));
  if (p.values['expect-all'] === true) {
    if (days) throw new UsageError('use --expect-days FROM..TO or --from-day/--to-day --expect-all, not both');
    if (!filters.from || !filters.to) throw new UsageError('--expect-all needs --from-day and --to-day: the range of days that are expected');
    days = daysOf(filters.from, filters.to);
  }
  const rawScript = stringFlag(p.values, 'script');
  const script = rawScript ? resolve(io.cwd, rawScript) : undefined;
  if (script) checkScript(rawScript!, script);
  let job: unknown;
  const rawJob = stringFlag(p.values, 'job');
  if (rawJob !== undefined) {
    try {
      job = JSON.parse(rawJob) as unknown;
    } catch (err) {
      throw new UsageError(`--job is not valid JSON: ${(err as Error).message}`);
    }
  }
  const limit = p.values.limit as number | undefined;
  if (limit !== undefined && limit < 1) throw new UsageError(`--limit must be 1 or more, got ${limit}`);
  const overrides = retryOverrides(p.values);
  const options = renderOptionsFrom(p.values, io);
  const pools = await retryPools(p.values, io);
  const stateDir = stringFlag(p.values, 'state-dir');

  const { openRunLedger, openStorage, runWithRetries, LedgerUnreachableError } = await import('./run-execute.js');
  const storageOpts = compileStorage(p.values, io.cwd);
  let ledger: Ledger | undefined;
  let backend: StorageBackend | undefined;
  try {
    const target = ledgerTargetFrom(p.values, io.cwd);
    // A retry writes: it opens the ledger as a writer (SPEC §8 "Binding and writers"), but never creates one.
    requireLedgerFile(target);
    // Nothing started yet: a signal while the ledger or storage opens stops at once.
    ledger = await beforeStart(openRunLedger(target), io.signal);
    const targets = await planRetries(ledger, filters, { ...(days ? { days } : {}), ...(script ? { script } : {}), ...(job !== undefined ? { job } : {}), reprocess: p.values.reprocess === true, includeSkipped: p.values['include-skipped'] === true, ...(limit !== undefined ? { limit } : {}) });
    const columns = ['source', 'category', 'day', 'reason', 'attempt', 'parent_run_id', 'script', 'tree_id'];
    if (targets.length === 0) {
      io.stdout(render(targets, options, { columns, empty: '(nothing to retry)' }));
      return 0;
    }
    const store = await beforeStart(openStorage({ storage: storageOpts }), io.signal);
    backend = store;
    for (const t of targets) t.settings = await recordedSettings(store, dataset, t);
    if (p.values['dry-run'] === true) {
      io.stdout(render(targets, options, { columns }));
      return 0;
    }
    let worst = 0;
    let succeeded = 0;
    for (const t of targets) {
      if (io.signal.aborted) break;
      const where = `${t.source}/${t.category}/${t.day}`;
      const proxy = retryProxy(t.settings, pools);
      if (typeof proxy === 'string') {
        io.stderr(`quarry retry: ${where}: not re-run: ${proxy}\n`);
        worst = Math.max(worst, 2);
        continue;
      }
      if (t.tree_id !== undefined) {
        // Never one member alone (SPEC §8): the whole tree again, as a new tree whose root's parent is the old root.
        const { retryTree } = await import('./retry-tree.js');
        const chromiumPath = stringFlag(p.values, 'chromium-path') ?? io.env.QUARRY_CHROMIUM_PATH;
        const given = stringFlag(p.values, 'ledger');
        const code = await retryTree(t.tree_id, t.parent_run_id ?? t.tree_id, {
          backend: store, dataset, storage: storageOpts, ledger: target, ...(given ? { ledgerGiven: given } : {}), quiet: p.values.quiet === true,
          ...(chromiumPath ? { chromiumPath } : {}),
          ...(overrides.runTimeoutMs !== undefined ? { runTimeoutMs: overrides.runTimeoutMs } : {}),
          ...(overrides.retries !== undefined ? { retries: overrides.retries } : {}),
          ...(proxy ? { proxy } : {}),
          ...(stateDir !== undefined ? { stateDir } : {}),
        }, io);
        if (code === 0) succeeded++;
        worst = Math.max(worst, code);
        continue;
      }
      if (!existsSync(t.script)) {
        io.stderr(`quarry retry: ${where}: recorded script ${t.script} no longer exists; give --script\n`);
        worst = Math.max(worst, 2);
        continue;
      }
      if (t.script_sha256 !== null) {
        const now = createHash('sha256').update(readFileSync(t.script)).digest('hex');
        if (now !== t.script_sha256) {
          io.stderr(`quarry retry: ${where}: recorded script ${t.script} changed since its last run (SHA-256 then ${t.script_sha256}, now ${now}); not re-run: give --script to run the current file\n`);
          worst = Math.max(worst, 2);
          continue;
        }
      }
      const settings = retrySettings(t.settings, overrides);
      if (typeof settings === 'string') {
        io.stderr(`quarry retry: ${where}: not re-run: ${settings}\n`);
        worst = Math.max(worst, 2);
        continue;
      }
      if (t.parent_run_id && !t.settings && p.values.quiet !== true) {
        io.stderr(`quarry retry: ${where}: run ${t.parent_run_id} recorded no settings (stored before Quarry recorded them); re-running under policy strict\n`);
      }
      const plan: RunPlan = {
        scriptPath: t.script, attempt: t.attempt, job: t.job, source: t.source, category: t.category, day: t.day, dataset,
        storage: storageOpts, dryRun: false, quiet: p.values.quiet === true, ...settings,
        ...(proxy ? { proxy } : {}),
        ...(t.job_id ? { jobId: t.job_id } : {}),
        ...(t.parent_run_id ? { parentRunId: t.parent_run_id } : {}),
        ...(stringFlag(p.values, 'chromium-path') ?? io.env.QUARRY_CHROMIUM_PATH ? { chromiumPath: (stringFlag(p.values, 'chromium-path') ?? io.env.QUARRY_CHROMIUM_PATH)! } : {}),
      };
      // Each retry selects afresh from the pool's persisted state (SPEC §11), as a run of quarry run would.
      const router = proxy ? openProxyRouter(proxy, stateDirFor(stateDir, storageOpts, io), (m) => io.stderr(`quarry retry: ${m}\n`)) : undefined;
      let report;
      try {
        report = await runWithRetries(plan, store, ledger, io, 'retry', undefined, router);
      } finally {
        await router?.close();
      }
      if (report.exit_code === 0) succeeded++;
      worst = Math.max(worst, report.exit_code);
    }
    io.stderr(`quarry retry: ${succeeded} of ${targets.length} run(s) succeeded\n`);
    return worst;
  } catch (err) {
    if (err instanceof ReadCommandError) {
      io.stderr(`quarry retry: ${err.message}\n`);
      return EXIT_NOT_FOUND;
    }
    if (err instanceof LedgerUnreachableError) {
      io.stderr(`quarry retry: ${err.message}\n`);
      return 3;
    }
    if (err instanceof InterruptedBeforeStart) {
      io.stderr(`quarry retry: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  } finally {
    await backend?.close();
    await ledger?.close();
  }
}
