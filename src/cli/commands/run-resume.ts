/**
 * `quarry run --resume <tree_id>` (SPEC §10): continues a crawl tree whose
 * invocation was interrupted or killed, with the options stored in its
 * frontier. Accepted beside it: `--state-dir` and the flags that locate the
 * tree or supply secrets and machine paths (`--storage-*`, `--config`,
 * `--proxy-config`, `--ledger`, `--chromium-path`) — those that identify the
 * tree must match what was stored — and `--parallel`, `--quiet`, `--report`,
 * `--run-timeout`, which may be given again. Any other run flag is a usage
 * error naming it.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RUN_ID_RE } from '../../storage/layout.js';
import { SqliteFrontier } from '../../scheduler/sqlite-frontier.js';
import { frontierPaths } from '../../scheduler/state-dir.js';
import type { PolicyConfig } from '../../runtime/policies/index.js';
import type { JsonValue } from '../../scheduler/canonical-json.js';
import { UsageError, type ParsedFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { parseLedgerTarget } from './ledger-target.js';
import { checkReportTarget, compileStorage, type RunPlan } from './run.js';
import { runTreeInvocation, stateDirFor, type TreeInvocation } from './run-tree.js';
import { ledgerIdentity, parseStoredSettings } from './tree-settings.js';
import { loadProxyPools, proxyPlanFromStored, type ConfigPools, type PreparedProxy } from './proxy-setup.js';

/** Flags `--resume` accepts; every other run flag given with it is refused. */
export const RESUME_FLAGS: readonly string[] = [
  'resume', 'state-dir', 'storage-backend', 'storage-path', 'storage-dataset', 'storage-region', 'storage-endpoint', 'storage-s3-path-style',
  'config', 'proxy-config', 'ledger', 'chromium-path', 'parallel', 'quiet', 'report', 'run-timeout',
];

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** Entry of `quarry run --resume`: returns the tree's exit code. */
export async function resumeCommand(p: ParsedFlags, io: CliIO, config?: ConfigPools): Promise<number> {
  const v = p.values;
  const treeId = str(v.resume) ?? '';
  if (!RUN_ID_RE.test(treeId)) throw new UsageError(`--resume ${JSON.stringify(treeId)}: a tree id matches [A-Za-z0-9._-]{1,128} (the tree's first root run_id, printed when it stopped)`);
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(p.positionals[0])} (flags start with --)`);
  const stray = [...p.explicit].filter((f) => !RESUME_FLAGS.includes(f));
  if (stray.length > 0) {
    throw new UsageError(`--${stray[0]} cannot be given with --resume: the tree keeps the options it was started with (only --state-dir, --storage-*, --config, --proxy-config, --ledger, --chromium-path, --parallel, --quiet, --report and --run-timeout are accepted)`);
  }
  const given = compileStorage(v, io.cwd);
  const stateDir = stateDirFor(str(v['state-dir']), given, io);
  const paths = frontierPaths(stateDir, treeId);
  if (!existsSync(paths.db)) {
    throw new UsageError(`--resume ${treeId}: no such tree under the state dir ${stateDir}; give the --state-dir (or --storage-path) the tree was started with (a tree submitted with --queue: quarry run --resume ${treeId} --queue URL)`);
  }
  const frontier = SqliteFrontier.open(paths.db);
  const options = await frontier.options().finally(() => frontier.close());
  const s = parseStoredSettings(options.run, treeId);

  // What identifies the tree must match; what was left out is taken from the tree.
  const named = (f: string): boolean => p.explicit.has(f) || (v[f] !== undefined && f !== 'storage-path' && f !== 'storage-backend' && f !== 'storage-dataset');
  if (p.explicit.has('storage-backend') && given.backend !== s.storage.backend) throw mismatch('--storage-backend', given.backend, s.storage.backend);
  if (p.explicit.has('storage-path') && given.path !== s.storage.path) throw mismatch('--storage-path', given.path, s.storage.path);
  const dataset = str(v['storage-dataset']);
  if (p.explicit.has('storage-dataset') && dataset !== s.partition.dataset) throw mismatch('--storage-dataset', dataset ?? '', s.partition.dataset);
  let ledger = s.ledger;
  const ledgerGiven = str(v.ledger);
  if (ledgerGiven !== undefined) {
    const target = parseLedgerTarget(ledgerGiven, io.cwd);
    if (ledgerIdentity(target) !== s.ledger) throw mismatch('--ledger', ledgerIdentity(target), s.ledger);
    ledger = target;
  }
  const report = str(v.report);
  if (report) checkReportTarget(report, io.cwd);
  const parallel = p.explicit.has('parallel') ? v.parallel as number : options.parallel;
  if (parallel < 1) throw new UsageError(`--parallel must be 1 or more (the root counts), got ${parallel}`);
  const runTimeout = named('run-timeout') ? v['run-timeout'] as number | undefined : s.run_timeout_ms;
  if (runTimeout !== undefined && runTimeout <= 0) throw new UsageError(`--run-timeout must be more than 0, e.g. 10m, got ${runTimeout}ms`);
  const chromiumPath = str(v['chromium-path']) ?? str(io.env.QUARRY_CHROMIUM_PATH) ?? s.chromium_path;
  const proxy = s.proxy ? await resumedProxy(s.proxy, v, config, io) : undefined;
  const storage: RunPlan['storage'] = {
    backend: s.storage.backend, path: s.storage.path, s3PathStyle: s.storage.s3_path_style,
    ...(s.storage.region ? { region: s.storage.region } : {}),
    ...(s.storage.endpoint ? { endpoint: s.storage.endpoint } : {}),
  };

  const inv: TreeInvocation = {
    treeId,
    resume: true,
    scriptPath: join(s.scripts_root, s.script),
    scriptsRoot: s.scripts_root,
    job: s.job as JsonValue,
    partition: s.partition,
    policy: s.policy as PolicyConfig,
    storage,
    ledger,
    ...(s.ledger_given ? { ledgerGiven: ledgerGiven ?? s.ledger } : {}),
    tree: { depth: options.max_depth, maxRuns: options.max_runs, parallel, allowFailedChildren: s.allow_failed_children },
    retries: options.retries,
    ...(runTimeout !== undefined ? { runTimeoutMs: runTimeout } : {}),
    ...(s.executor ? { executorPath: s.executor } : {}),
    ...(chromiumPath ? { chromiumPath } : {}),
    ...(s.browser_ws_endpoint ? { browserWsEndpoint: s.browser_ws_endpoint } : {}),
    ...(s.no_browser_reuse === true ? { noBrowserReuse: true } : {}),
    ...(s.job_id ? { jobId: s.job_id } : {}),
    ...(s.parent_run_id ? { parentRunId: s.parent_run_id } : {}),
    stateDir,
    quiet: v.quiet === true,
    ...(report ? { report } : {}),
    ...(proxy ? { proxy } : {}),
  };
  return runTreeInvocation(inv, io);
}

/**
 * The tree's proxy pool, its pools reloaded with their secrets: from
 * `--config`/`--proxy-config` when given again, else from the files the
 * tree was started with.
 */
async function resumedProxy(stored: Record<string, string>, v: ParsedFlags['values'], config: ConfigPools | undefined, io: CliIO): Promise<PreparedProxy> {
  const plan = proxyPlanFromStored(stored);
  const givenFile = str(v['proxy-config']);
  if (givenFile) plan.proxyConfigFile = resolve(io.cwd, givenFile);
  let pools = config;
  if (pools === undefined && plan.configFile !== undefined) {
    const { loadRunConfig } = await import('../config.js');
    const c = await loadRunConfig(plan.configFile, io.cwd, io.env);
    pools = { file: plan.configFile, ...(c.proxies !== undefined ? { proxies: c.proxies } : {}) };
  }
  return { plan, pools: await loadProxyPools(plan, pools, io.cwd) };
}

function mismatch(flag: string, given: string, stored: string): UsageError {
  return new UsageError(`${flag} ${given} does not match the tree, which was started with ${stored}; leave ${flag} out or give the same value`);
}
