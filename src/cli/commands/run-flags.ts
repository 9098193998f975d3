/**
 * `quarry run` flags: the original's names and defaults (SPEC §9) plus ours.
 * Flags of features not built yet are recognised and refused with a clear
 * message rather than ignored, so a command line never half-works silently.
 */
import { STORAGE_FLAGS } from '../common-flags.js';
import type { FlagSpec } from '../flags.js';

const LATER_SINK = 'live event sinks are not built yet';
const LATER_QUEUE = 'distributed mode is not built yet';

export const RUN_FLAGS: readonly FlagSpec[] = [
  { name: 'script', type: 'string', arg: 'PATH', help: 'Script to run (.ts or .js, default export async (ctx) => {})', group: 'Run' },
  { name: 'config', type: 'string', arg: 'FILE', help: 'YAML file of defaults for these flags (CLI beats config beats default)', group: 'Run' },
  { name: 'run-id', type: 'string', arg: 'ID', help: 'Run id, [A-Za-z0-9._-]{1,128}; generated (ULID) when absent; must not exist yet', group: 'Run' },
  { name: 'attempt', type: 'int', default: 1, help: 'Attempt number, from 1', group: 'Run' },
  { name: 'job-id', type: 'string', arg: 'ID', help: 'Job id (groups the attempts of one job)', group: 'Run' },
  { name: 'parent-run-id', type: 'string', arg: 'ID', help: 'Run this one retries or was spawned by', group: 'Run' },
  { name: 'job', type: 'string', arg: 'JSON', help: 'Job payload as inline JSON', group: 'Run' },
  { name: 'job-json', type: 'string', arg: 'FILE', help: 'Path to a JSON file holding the job payload', group: 'Run' },
  { name: 'run-timeout', type: 'duration', help: 'End a run (hooks included) still going after this long: script_error, error_type timeout (e.g. 10m)', group: 'Run' },
  { name: 'source', type: 'string', arg: 'NAME', help: 'Source partition key (required)', group: 'Partition' },
  { name: 'category', type: 'string', arg: 'NAME', default: 'default', help: 'Category partition key', group: 'Partition' },
  { name: 'day', type: 'string', arg: 'YYYY-MM-DD', help: 'Logical day partition key (default: the run start day, UTC)', group: 'Partition' },
  { name: 'policy', type: 'string', arg: 'strict|buffered|streaming', default: 'strict', choices: ['strict', 'buffered', 'streaming'], help: 'Ingestion policy', group: 'Policy' },
  { name: 'flush-mode', type: 'string', arg: 'MODE', default: 'at_least_once', choices: ['at_least_once', 'chunks_first', 'two_phase'], help: 'What a failed flush keeps and rewrites (buffered, streaming)', group: 'Policy' },
  { name: 'buffer-events', type: 'int', default: 0, help: 'Buffered: most events held in memory', group: 'Policy' },
  { name: 'buffer-bytes', type: 'int', default: 0, help: 'Buffered: most bytes held in memory', group: 'Policy' },
  { name: 'flush-count', type: 'int', default: 0, help: 'Streaming: flush every N events', group: 'Policy' },
  { name: 'flush-interval', type: 'duration', help: 'Streaming: flush at least this often (e.g. 5s)', group: 'Policy' },
  ...STORAGE_FLAGS,
  { name: 'ledger', type: 'string', arg: 'PATH|URL', help: 'Ledger: postgres:// URL, sqlite:PATH, file:PATH or a .sqlite/.db file (default <storage-path>/ledger.sqlite for fs)', group: 'Ledger' },
  { name: 'retries', type: 'int', default: 0, help: 'Re-run a failed run up to N times (new run, attempt+1)', group: 'Ledger' },
  { name: 'executor', type: 'string', arg: 'PATH', help: 'Executor entry (advanced; the bundled one by default)', group: 'Browser' },
  { name: 'browser-ws-endpoint', type: 'string', arg: 'URL', help: 'Connect to a running browser instead of launching one', group: 'Browser' },
  { name: 'chromium-path', type: 'string', arg: 'PATH', help: 'Chromium binary (default $QUARRY_CHROMIUM_PATH or /usr/bin/chromium)', group: 'Browser' },
  { name: 'no-browser-reuse', type: 'bool', help: 'Launch a browser per run (the default for a single run)', group: 'Browser' },
  { name: 'depth', type: 'int', default: 0, help: 'Fan-out: enqueued items become runs of the tree down to this depth (0 = no fan-out; > 0 needs --max-runs)', group: 'Crawl' },
  { name: 'max-runs', type: 'int', arg: 'N', help: 'Fan-out: cap on distinct work items admitted to the tree, root included', group: 'Crawl' },
  { name: 'parallel', type: 'int', default: 1, help: 'Fan-out: runs of the tree executing at once, root included', group: 'Crawl' },
  { name: 'allow-failed-children', type: 'int', default: 0, help: 'Fan-out: failed work items tolerated before the tree is not authoritative', group: 'Crawl' },
  { name: 'state-dir', type: 'string', arg: 'DIR', help: 'Fan-out: folder of the tree frontiers (default <storage-path>/.quarry for fs, else $XDG_STATE_HOME/quarry)', group: 'Crawl' },
  { name: 'resume', type: 'string', arg: 'TREE_ID', help: 'Continue an interrupted or killed crawl tree from its frontier (options come from the tree)', group: 'Crawl' },
  { name: 'proxy-config', type: 'string', arg: 'FILE', help: 'JSON file of proxy pools (keyed by name, or a list with names), beside the config file\'s proxies:', group: 'Proxy' },
  { name: 'proxy-pool', type: 'string', arg: 'NAME', help: 'Pool each run takes its proxy from (selected at run start; state kept in the state dir)', group: 'Proxy' },
  { name: 'proxy-strategy', type: 'string', arg: 'round_robin|random|sticky', choices: ['round_robin', 'random', 'sticky'], help: 'Replace the pool\'s strategy', group: 'Proxy' },
  { name: 'proxy-sticky-key', type: 'string', arg: 'KEY', help: 'Sticky: use this key instead of the scope\'s (job, domain, origin)', group: 'Proxy' },
  { name: 'proxy-domain', type: 'string', arg: 'DOMAIN', help: 'Sticky scope domain: the domain when the job has no url', group: 'Proxy' },
  { name: 'proxy-origin', type: 'string', arg: 'ORIGIN', help: 'Sticky scope origin: scheme://host:port when the job has no url', group: 'Proxy' },
  { name: 'report', type: 'string', arg: 'PATH|-', help: 'Write the exit report JSON to a file, or - for stderr', group: 'Output' },
  { name: 'dry-run', type: 'bool', help: 'Load and validate the script only: no browser, no storage', group: 'Output' },
  { name: 'quiet', type: 'bool', help: 'No summary line and no executor stderr passthrough', group: 'Output' },
  { name: 'resolve-from', type: 'string', help: 'Module resolution base for the script', planned: 'scripts resolve modules from their own folder' },
  { name: 'queue', type: 'string', help: 'Submit to a BullMQ queue on Redis', planned: LATER_QUEUE },
  { name: 'adapter', type: 'string', arg: 'webhook|redis', choices: ['webhook', 'redis'], help: 'Send one run_completed (or tree_completed) notification per run or tree, through the ledger outbox', group: 'Notifications' },
  { name: 'adapter-url', type: 'string', arg: 'URL', help: 'Webhook URL to POST to, or redis:// server for PUBLISH (credentials and query are never recorded)', group: 'Notifications' },
  { name: 'adapter-header', type: 'list', arg: 'K=V', help: 'Webhook header (repeatable); never recorded', group: 'Notifications' },
  { name: 'adapter-channel', type: 'string', arg: 'CHANNEL', default: 'quarry:run_completed', help: 'Redis PUBLISH channel', group: 'Notifications' },
  { name: 'adapter-timeout', type: 'duration', arg: 'DURATION', help: 'Timeout of EACH attempt, not of all retries together (default 10s)', group: 'Notifications' },
  { name: 'adapter-retries', type: 'int', default: 3, help: 'Retries after a failed attempt (backoff 1s/2s/4s + jitter; none after a 4xx)', group: 'Notifications' },
  { name: 'event-sink', type: 'string', help: 'lode|redis', planned: LATER_SINK },
  { name: 'event-sink-lode-delivery', type: 'string', help: 'Delivery mode', planned: LATER_SINK },
  { name: 'event-sink-redis-url', type: 'string', help: 'Redis URL', planned: LATER_SINK },
  { name: 'event-sink-redis-stream', type: 'string', help: 'Stream key', planned: LATER_SINK },
  { name: 'event-sink-redis-maxlen', type: 'int', help: 'XADD MAXLEN', planned: LATER_SINK },
  { name: 'event-sink-redis-ttl', type: 'duration', help: 'Stream TTL', planned: LATER_SINK },
  { name: 'event-sink-redis-delivery', type: 'string', help: 'mandatory|best_effort', planned: LATER_SINK },
];
