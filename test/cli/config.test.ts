import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileRunPlan, runCommand } from '../../src/cli/commands/run.js';
import { RUN_FLAGS } from '../../src/cli/commands/run-flags.js';
import { applyRunConfig, ConfigError, expandEnv, loadRunConfig, parseRunConfig } from '../../src/cli/config.js';
import { parseFlags, UsageError } from '../../src/cli/flags.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
import { recordingIO } from './fake-io.js';

const SCRIPT_FOR_PLAN = fileURLToPath(new URL('../fixtures/scripts/notify.mjs', import.meta.url));
const parse = (yaml: string, env: NodeJS.ProcessEnv = {}) => parseRunConfig(yaml, 'quarry.yaml', env).values;
const error = (yaml: string, env: NodeJS.ProcessEnv = {}): string => {
  try {
    parseRunConfig(yaml, 'quarry.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).not.toContain('\n');
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
};

const FULL = `
source: books
category: fiction
day: 2024-03-01
job_id: nightly
job:
  url: http://example.test/
  pages: [1, 2]
policy:
  name: buffered
  flush_mode: two_phase
  buffer_events: 1000
  buffer_bytes: 1048576
storage:
  dataset: shop
  backend: s3
  path: my-bucket/quarry
  region: eu-west-1
  endpoint: http://127.0.0.1:9000
  s3_path_style: true
ledger: postgres://db/quarry
retries: 2
executor: ./executor.js
browser_ws_endpoint: ws://127.0.0.1:9222/devtools/browser/x
chromium_path: /usr/bin/chromium
no_browser_reuse: true
report: ./report.json
quiet: true
`;

describe('config keys', () => {
  it('maps every key, nested as in the original, onto the run flag it defaults', () => {
    expect(parse(FULL)).toEqual({
      source: 'books',
      category: 'fiction',
      day: '2024-03-01',
      'job-id': 'nightly',
      job: '{"url":"http://example.test/","pages":[1,2]}',
      policy: 'buffered',
      'flush-mode': 'two_phase',
      'buffer-events': 1000,
      'buffer-bytes': 1048576,
      'storage-dataset': 'shop',
      'storage-backend': 's3',
      'storage-path': 'my-bucket/quarry',
      'storage-region': 'eu-west-1',
      'storage-endpoint': 'http://127.0.0.1:9000',
      'storage-s3-path-style': true,
      ledger: 'postgres://db/quarry',
      retries: 2,
      executor: './executor.js',
      'browser-ws-endpoint': 'ws://127.0.0.1:9222/devtools/browser/x',
      'chromium-path': '/usr/bin/chromium',
      'no-browser-reuse': true,
      report: './report.json',
      quiet: true,
    });
  });

  it('streaming durations take Go-style strings or whole milliseconds', () => {
    expect(parse('policy:\n  name: streaming\n  flush_count: 50\n  flush_interval: 1m30s\n')).toEqual({ policy: 'streaming', 'flush-count': 50, 'flush-interval': 90_000 });
    expect(parse('policy:\n  flush_interval: 250\n')['flush-interval']).toBe(250);
  });

  it('an empty file, an empty section and a key without value set nothing', () => {
    expect(parse('')).toEqual({});
    expect(parse('# only a comment\n')).toEqual({});
    expect(parse('policy:\nstorage:\nsource:\n')).toEqual({});
  });

  it('aliases resolve like any YAML value', () => {
    expect(parse('source: &s books\ncategory: *s\n')).toEqual({ source: 'books', category: 'books' });
  });
});

describe('config errors name the file, the key and what to do', () => {
  it('an unknown key, with the closest known key suggested', () => {
    expect(error('polcy:\n  name: strict\n')).toBe('config quarry.yaml: unknown key "polcy" (did you mean "policy"?)');
    expect(error('policy:\n  nmae: strict\n')).toBe('config quarry.yaml: unknown key "policy.nmae" (did you mean "policy.name"?)');
    expect(error('storage:\n  bucket: x\n')).toBe('config quarry.yaml: unknown key "storage.bucket"');
    expect(error('config: other.yaml\n')).toMatch(/^config quarry.yaml: unknown key "config"/);
  });

  it('a wrong type names the key, the expected type and the position', () => {
    expect(error('policy:\n  buffer_events: lots\n')).toBe('config quarry.yaml: policy.buffer_events must be a whole number, got "lots" (line 2, column 18)');
    expect(error('policy:\n  buffer_events: 1.5\n')).toMatch(/policy.buffer_events must be a whole number, got 1.5/);
    expect(error('source: 2024\n')).toBe('config quarry.yaml: source must be a string, got 2024 (quote it: "2024") (line 1, column 9)');
    expect(error('storage:\n  s3_path_style: yes\n')).toMatch(/storage.s3_path_style must be true or false, got "yes"/);
    expect(error('policy:\n  flush_interval: soon\n')).toMatch(/policy.flush_interval must be a duration like 500ms, 5s or 1m/);
    expect(error('policy:\n  name: fancy\n')).toMatch(/policy.name must be one of strict\|buffered\|streaming, got "fancy"/);
    expect(error('storage: fs\n')).toMatch(/storage must be a mapping of keys, got "fs"/);
    expect(error('job: "{}"\n')).toMatch(/job must be a mapping \(the job payload\)/);
    expect(error('retries: -1\n')).toMatch(/retries must be 0 or more, got -1/);
    expect(error('source: ../etc\n')).toMatch(/source "..\/etc" must be 1-128 characters/);
    expect(error('day: 2024-02-30\n')).toMatch(/is not a calendar date/);
  });

  it('malformed YAML gives the file, line and column', () => {
    expect(error('source: books\ncategory: [a\n')).toMatch(/^config quarry.yaml: malformed YAML at line 3, column 1: /);
    expect(error('policy:\n  name: strict\n  bad: :\n')).toMatch(/^config quarry.yaml: malformed YAML at line 3, column 8: /);
    expect(error('source: a\nsource: b\n')).toBe('config quarry.yaml: malformed YAML at line 2, column 1: Map keys must be unique');
    expect(error('- source\n')).toMatch(/the file must be a mapping of keys/);
  });

  it('script and run-id (and the other per-invocation flags) are refused', () => {
    expect(error('script: ./s.ts\n')).toBe('config quarry.yaml: "script" is per invocation and not accepted in a config file; pass --script on the command line (line 1, column 1)');
    expect(error('run_id: r1\n')).toMatch(/"run_id" is per invocation .* pass --run-id/);
    expect(error('attempt: 2\n')).toMatch(/"attempt" is per invocation/);
    expect(error('dry_run: true\n')).toMatch(/"dry_run" is per invocation/);
  });

  it('sections of features not built yet parse but are refused with the reason', () => {
    expect(error('resolve_from: ./x\n')).toMatch(/scripts resolve modules from their own folder/);
  });

  it('refuses the queue in a file: a submission or a worker names its queue on the command line', () => {
    expect(error('queue: redis://127.0.0.1\n')).toMatch(/"queue" is per invocation .* pass --queue/);
  });

  it('fills the adapter flags from its section (SPEC §11)', () => {
    expect(parse('adapter:\n  type: webhook\n  url: http://127.0.0.1:9/h\n  headers: ["X-A=1"]\n  timeout: 2s\n  retries: 1\n  channel: c\n'))
      .toMatchObject({ adapter: 'webhook', 'adapter-url': 'http://127.0.0.1:9/h', 'adapter-header': ['X-A=1'], 'adapter-timeout': 2000, 'adapter-retries': 1, 'adapter-channel': 'c' });
    expect(error('adapter:\n  type: carrier-pigeon\n')).toMatch(/adapter.type must be one of webhook\|redis/);
  });

  it('fills the event sink flags from events.sinks[] with the original\'s keys (SPEC §11)', () => {
    const yaml = 'events:\n  sinks:\n    - type: lode\n      delivery: mandatory\n    - type: redis\n      url: redis://127.0.0.1:6390\n      stream_key: q:ev\n      max_len: 5000\n      ttl: 1h\n      timeout: 500ms\n      retries: 4\n      delivery: mandatory\n';
    expect(parse(yaml)).toEqual({
      'event-sink': ['lode', 'redis'], 'event-sink-lode-delivery': 'mandatory', 'event-sink-redis-url': 'redis://127.0.0.1:6390', 'event-sink-redis-stream-key': 'q:ev',
      'event-sink-redis-max-len': 5000, 'event-sink-redis-ttl': 3_600_000, 'event-sink-redis-timeout': 500, 'event-sink-redis-retries': 4, 'event-sink-redis-delivery': 'mandatory',
    });
    expect(parse('events:\n  sinks: []\n')).toEqual({ 'event-sink': [] });
  });

  it('a bad events.sinks[] entry is refused with the key that is wrong', () => {
    const sink = (entry: string): string => error(`events:\n  sinks:\n    - ${entry}\n`);
    expect(sink('{type: redis, url: "redis://h:1", max_len: 0}')).toMatch(/^config quarry.yaml: events.sinks\[0\].max_len must be more than 0, got 0 \(line 3/);
    expect(sink('{type: redis, url: "redis://h:1", retries: -1}')).toMatch(/events.sinks\[0\].retries must be 0 or more, got -1/);
    expect(sink('{type: redis, url: "redis://h:1", ttl: soon}')).toMatch(/events.sinks\[0\].ttl must be a duration/);
    expect(sink('{type: redis, url: "redis://h:1", delivery: always}')).toMatch(/events.sinks\[0\].delivery must be one of mandatory\|best_effort, got "always"/);
    expect(sink('{type: redis, url: "http://h:1"}')).toMatch(/events.sinks\[0\].url must start with redis:\/\/ or rediss:\/\//);
    expect(sink('{type: redis, url: "redis://h:1/x"}')).toMatch(/events.sinks\[0\].url: the database \(the URL's path\) must be a number, got \/x/);
    expect(sink('{type: redis, url: "redis://h:1?password=pw"}')).toMatch(/events.sinks\[0\].url takes no query string: give the database as the path and credentials before the host \(redis:\/\/user:password@host:6379\/2\)/);
    expect(sink('{type: redis}')).toMatch(/a redis sink needs events.sinks\[0\].url/);
    expect(sink('{type: redis, url: "redis://h:1", stream: k}')).toMatch(/unknown key "events.sinks\[0\].stream" \(did you mean "events.sinks\[0\].stream_key"\?\)/);
    expect(sink('{type: kafka}')).toMatch(/events.sinks\[0\].type must be lode or redis, got "kafka"/);
    expect(sink('{url: "redis://h:1"}')).toMatch(/events.sinks\[0\] needs type: lode or redis/);
    expect(sink('{type: lode, url: "redis://h:1"}')).toMatch(/events.sinks\[0\].url has no effect with type lode/);
    expect(sink('redis')).toMatch(/events.sinks\[0\] must be a mapping like \{type: redis/);
    expect(error('events:\n  sinks:\n    - {type: redis, url: "redis://a:1"}\n    - {type: redis, url: "redis://b:1"}\n')).toMatch(/events.sinks\[1\] is a second redis sink; a run has one \(the first is events.sinks\[0\]\)/);
    expect(error('events:\n  sinks: {type: redis}\n')).toMatch(/events.sinks must be a list of sinks/);
    expect(error('events:\n  sink: []\n')).toMatch(/unknown key "events.sink" \(did you mean "events.sinks"\?\)/);
  });

  it('the command line beats events.sinks[]: its flags override each key, and --event-sink replaces the list', () => {
    const config = parseRunConfig('events:\n  sinks:\n    - {type: redis, url: "redis://127.0.0.1:6390", stream_key: from-config, retries: 4}\n', 'q.yaml', {});
    const plan = (argv: string[]) => compileRunPlan(applyRunConfig(parseFlags(['--script', SCRIPT_FOR_PLAN, '--source', 's', ...argv], RUN_FLAGS), config), {}, process.cwd(), new Date());
    expect(plan([]).redisSink).toMatchObject({ url: 'redis://127.0.0.1:6390', streamKey: 'from-config', retries: 4, delivery: 'best_effort' });
    expect(plan(['--event-sink-redis-stream-key', 'from-cli']).redisSink).toMatchObject({ streamKey: 'from-cli', retries: 4 });
    // The old placeholder names still work, as hidden aliases.
    expect(plan(['--event-sink-redis-stream', 'old-name', '--event-sink-redis-maxlen', '7']).redisSink).toMatchObject({ streamKey: 'old-name', maxLen: 7 });
    expect(plan(['--event-sink', 'lode']).redisSink).toBeUndefined();
  });

  it('reads proxy pools and the proxy section (SPEC §11), variables expanded', () => {
    const c = parseRunConfig('proxies:\n  main:\n    strategy: round_robin\n    endpoints:\n      - { protocol: http, host: h, port: 8080, username: u, password: "${PW}" }\nproxy:\n  pool: main\n  strategy: random\n', 'q.yaml', { PW: 'pw' });
    expect(c.values).toMatchObject({ 'proxy-pool': 'main', 'proxy-strategy': 'random' });
    expect(c.proxies).toEqual({ main: { strategy: 'round_robin', endpoints: [{ protocol: 'http', host: 'h', port: 8080, username: 'u', password: 'pw' }] } });
    expect(error('proxies: [a, b]\n')).toMatch(/proxies must be a mapping of pools keyed by name/);
    expect(error('proxy:\n  strategy: fastest\n')).toMatch(/proxy.strategy must be one of round_robin\|random\|sticky/);
  });

  it('fills the fan-out flags from the file', () => {
    expect(parse('depth: 2\nmax_runs: 50\nparallel: 3\nallow_failed_children: 1\nstate_dir: ./state\n')).toMatchObject({ depth: 2, 'max-runs': 50, parallel: 3, 'allow-failed-children': 1, 'state-dir': './state' });
    expect(error('depth: -1\n')).toMatch(/depth must be 0 or more/);
  });

  it('policy options that contradict the file’s own policy are refused', () => {
    expect(error('policy:\n  name: strict\n  buffer_events: 10\n')).toMatch(/policy.buffer_events has no effect with policy.name strict/);
    expect(error('policy:\n  name: buffered\n  flush_count: 10\n')).toMatch(/policy.flush_count has no effect with policy.name buffered/);
    expect(error('job: {a: 1}\njob_json: ./job.json\n')).toMatch(/use job or job_json, not both/);
  });
});

describe('environment expansion', () => {
  it('${VAR} and ${VAR:-default} expand in every value, nested job values included', () => {
    const v = parse('source: ${SRC}\nstorage:\n  path: ${DATA:-/var/quarry}/raw\njob:\n  token: ${TOKEN}\n', { SRC: 'books', TOKEN: 't0k' });
    expect(v).toEqual({ source: 'books', 'storage-path': '/var/quarry/raw', job: '{"token":"t0k"}' });
  });

  it('an unset ${VAR} without default is an error naming VAR and the key', () => {
    expect(error('storage:\n  path: ${QUARRY_DATA}/x\n')).toBe('config quarry.yaml: storage.path: environment variable QUARRY_DATA is not set; set it or write ${QUARRY_DATA:-default} (line 2, column 9)');
  });

  it('the default applies when the variable is unset or empty; ${VAR} set to empty stays empty', () => {
    expect(parse('source: ${S:-books}\n', { S: '' })).toEqual({ source: 'books' });
    expect(parse('source: ${S:-books}\n', { S: 'news' })).toEqual({ source: 'news' });
    expect(parse('storage:\n  region: ${R}\n', { R: '' })).toEqual({}); // empty plain value = not set
  });

  it('an unquoted expansion takes the type of its value; a quoted one stays a string', () => {
    expect(parse('policy:\n  buffer_events: ${N:-500}\nquiet: ${Q}\n', { Q: 'true' })).toEqual({ 'buffer-events': 500, quiet: true });
    expect(error('policy:\n  buffer_events: "${N:-500}"\n')).toMatch(/policy.buffer_events must be a whole number, got "500"/);
    expect(parse('job:\n  n: ${N:-3}\n  s: "${N:-3}"\n')).toEqual({ job: '{"n":3,"s":"3"}' });
  });

  it('a variable cannot inject YAML structure', () => {
    expect(parse('job:\n  x: ${S}\n', { S: 'a: b\nquiet: true' })).toEqual({ job: JSON.stringify({ x: 'a: b\nquiet: true' }) });
    expect(error('source: ${S}\n', { S: 'x\nsource: y' })).toMatch(/source "x\\nsource: y" must be 1-128 characters/);
  });

  it('$${ is a literal ${; a malformed reference is an error', () => {
    expect(parse('job:\n  tpl: "$${DAY}"\n')).toEqual({ job: '{"tpl":"${DAY}"}' });
    expect(error('source: ${1BAD}\n')).toMatch(/source: malformed reference "\$\{1BAD\}"/);
    const fail = (m: string): never => {
      throw new Error(m);
    };
    expect(expandEnv('a $ b $x ${A}', { A: '1' }, fail)).toBe('a $ b $x 1');
  });
});

describe('loading and precedence', () => {
  let dir: TempDir;
  let script: string;
  beforeAll(async () => {
    dir = await makeTempDir('cli-config');
    script = join(dir.path, 's.ts');
    await writeFile(script, 'export default async () => {};\n');
    await mkdir(join(dir.path, 'a-dir'));
  });
  afterAll(async () => {
    await dir.remove();
  });

  it('a missing file, a folder and an empty --config are errors naming the path', async () => {
    await expect(loadRunConfig('nope.yaml', dir.path, {})).rejects.toThrow('config nope.yaml: no such file');
    await expect(loadRunConfig('a-dir', dir.path, {})).rejects.toThrow('config a-dir: is a directory, not a YAML file');
    await expect(loadRunConfig('', dir.path, {})).rejects.toThrow('--config needs the path of a YAML file');
  });

  it('CLI beats config beats default', async () => {
    await writeFile(join(dir.path, 'q.yaml'), 'source: from-config\ncategory: cfg-cat\npolicy:\n  name: buffered\n  buffer_events: 100\nstorage:\n  path: ./cfg-data\n  dataset: cfgset\nretries: 3\n');
    const parsed = parseFlags(['--script', script, '--config', 'q.yaml', '--category', 'cli-cat', '--retries', '0'], RUN_FLAGS);
    const merged = applyRunConfig(parsed, await loadRunConfig('q.yaml', dir.path, {}));
    const plan = compileRunPlan(merged, {}, dir.path, new Date('2024-05-05T10:00:00Z'));
    expect(plan.source).toBe('from-config'); // config beats default (none)
    expect(plan.category).toBe('cli-cat'); // CLI beats config
    expect(plan.retries).toBe(0); // CLI beats config, even when the CLI gives the default value
    expect(plan.policy).toEqual({ name: 'buffered', flushMode: 'at_least_once', bufferEvents: 100 }); // flush mode: default
    expect(plan.dataset).toBe('cfgset');
    expect(plan.storage.path).toBe(join(dir.path, 'cfg-data'));
    expect(plan.day).toBe('2024-05-05'); // default
    expect(merged.explicit.has('source')).toBe(false);
  });

  it('a CLI policy overrides the file’s whole policy choice without tripping on its options', async () => {
    const config = parseRunConfig('policy:\n  name: buffered\n  buffer_events: 100\n', 'q.yaml', {});
    const merged = applyRunConfig(parseFlags(['--script', script, '--source', 's', '--policy', 'strict'], RUN_FLAGS), config);
    expect(compileRunPlan(merged, {}, dir.path, new Date()).policy).toEqual({ name: 'strict' });
  });

  it('--job or --job-json on the command line replaces the config job', async () => {
    await writeFile(join(dir.path, 'job.json'), '{"from":"file"}');
    const config = parseRunConfig('source: s\njob:\n  from: config\n', 'q.yaml', {});
    const withJson = applyRunConfig(parseFlags(['--script', script, '--job-json', 'job.json'], RUN_FLAGS), config);
    expect(compileRunPlan(withJson, {}, dir.path, new Date()).job).toEqual({ from: 'file' });
    const withInline = applyRunConfig(parseFlags(['--script', script, '--job', '{"from":"cli"}'], RUN_FLAGS), config);
    expect(compileRunPlan(withInline, {}, dir.path, new Date()).job).toEqual({ from: 'cli' });
    const none = applyRunConfig(parseFlags(['--script', script], RUN_FLAGS), config);
    expect(compileRunPlan(none, {}, dir.path, new Date()).job).toEqual({ from: 'config' });
  });

  it('quarry run --config refuses a bad file before anything runs', async () => {
    await writeFile(join(dir.path, 'bad.yaml'), 'polcy:\n  name: strict\n');
    const io = recordingIO(dir.path);
    await expect(runCommand(['--script', script, '--config', 'bad.yaml'], io)).rejects.toThrow('config bad.yaml: unknown key "polcy" (did you mean "policy"?)');
    expect(io.out).toBe('');
  });
});
