/**
 * The Redis frontier's Lua scripts (SPEC §12): every decision of the frontier
 * port is one script, so Redis runs it with no other client's command in
 * between — the Redis counterpart of the SQLite frontier's `BEGIN IMMEDIATE`.
 * Every key a script touches is passed in KEYS (the tree's keys share one
 * hash tag, so they live in one cluster slot).
 *
 * Stored shapes (all under `<prefix>{<tree_id>}:`):
 * - `opts`    string: the tree options JSON (immutable).
 * - `meta`    hash: `schema`, `parallel`, `seq` (admission counter), `claimed`
 *             ('0', else when finalization was claimed), `dedup`, `retried`,
 *             `requeued`, `n_<state>` (items per state), `r_over_cap` /
 *             `r_over_depth` (distinct refused keys); a finalization lease
 *             (queue workers): `fin_owner`, `fin_job`, `fin_expires` (ms),
 *             `fin_state` ('' while finalizing, `done` or `failed`),
 *             `fin_takeovers`. A claim without `fin_expires` never expires.
 * - `item`    hash: dedup key → the item's fields as JSON (written once, never decoded here).
 * - `order`   zset: dedup key → admission seq.
 * - `st`      hash: dedup key → mutable state {state, reason, final, cur, failures, natt, last, depth}.
 * - `queue`   zset: queued dedup keys by admission seq (first admitted first).
 * - `refused` hash: dedup key → over_cap | over_depth, while never admitted.
 * - `att`     hash: run_id → attempt {key, attempt, owner, leased_at, outcome, partition, finished_at, prev}.
 * - `live`    zset: in-flight run_id → expires_at (ms): running = its size.
 * Absent strings are '' and an absent time 0 (cjson has no clean null in Lua).
 */

/** The key suffixes, in the KEYS order every script expects. */
export const FRONTIER_KEYS = ['opts', 'meta', 'item', 'order', 'st', 'queue', 'refused', 'att', 'live'] as const;

const PRELUDE = `
local K_OPTS, K_META, K_ITEM, K_ORDER, K_ST, K_QUEUE, K_REFUSED, K_ATT, K_LIVE =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local function getst(key) return cjson.decode(redis.call('HGET', K_ST, key)) end
local function putst(key, s) redis.call('HSET', K_ST, key, cjson.encode(s)) end
local function setstate(s, new)
  if s.state ~= new then
    redis.call('HINCRBY', K_META, 'n_' .. s.state, -1)
    redis.call('HINCRBY', K_META, 'n_' .. new, 1)
    s.state = new
  end
end
local function enqueue(key)
  redis.call('ZADD', K_QUEUE, redis.call('ZSCORE', K_ORDER, key), key)
end
-- An in-flight attempt lost its lease: recorded, and its item queued again if it was the current one.
local function lose(run_id, outcome, now)
  local a = cjson.decode(redis.call('HGET', K_ATT, run_id))
  a.outcome = outcome
  a.finished_at = now
  redis.call('HSET', K_ATT, run_id, cjson.encode(a))
  redis.call('ZREM', K_LIVE, run_id)
  redis.call('HINCRBY', K_META, 'requeued', 1)
  local s = getst(a.key)
  if s.state == 'leased' and s.cur == run_id then
    setstate(s, 'queued')
    s.cur = ''
    putst(a.key, s)
    enqueue(a.key)
  end
end
local function expire(now)
  local ids = redis.call('ZRANGEBYSCORE', K_LIVE, '-inf', now)
  for _, id in ipairs(ids) do lose(id, 'expired', now) end
  return #ids
end
`;

/** ARGV: schema, parallel, options JSON. Returns 1 when created, 0 when the tree exists. */
export const CREATE_LUA = `${PRELUDE}
if redis.call('EXISTS', K_OPTS) == 1 then return 0 end
redis.call('SET', K_OPTS, ARGV[3])
redis.call('HSET', K_META, 'schema', ARGV[1], 'parallel', ARGV[2], 'seq', 0, 'claimed', 0, 'dedup', 0, 'retried', 0, 'requeued', 0,
  'n_queued', 0, 'n_leased', 0, 'n_succeeded', 0, 'n_failed', 0, 'r_over_cap', 0, 'r_over_depth', 0)
return 1
`;

/**
 * ARGV: max_depth, max_runs, then per item: key, depth, not_found ('1'/'0'), item JSON.
 * Returns one decision per item.
 */
export const ADMIT_LUA = `${PRELUDE}
local max_depth, max_runs = tonumber(ARGV[1]), tonumber(ARGV[2])
local admitted = redis.call('ZCARD', K_ORDER)
local out, dup = {}, 0
local function refuse(key, reason)
  local old = redis.call('HGET', K_REFUSED, key)
  if old ~= reason then
    if old then redis.call('HINCRBY', K_META, 'r_' .. old, -1) end
    redis.call('HSET', K_REFUSED, key, reason)
    redis.call('HINCRBY', K_META, 'r_' .. reason, 1)
  end
end
for i = 3, #ARGV, 4 do
  local key, depth, not_found, json = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2] == '1', ARGV[i + 3]
  if redis.call('HEXISTS', K_ITEM, key) == 1 then
    dup = dup + 1
    out[#out + 1] = 'duplicate'
  elseif depth > max_depth then
    refuse(key, 'over_depth')
    out[#out + 1] = 'over_depth'
  elseif admitted >= max_runs then
    refuse(key, 'over_cap')
    out[#out + 1] = 'over_cap'
  else
    local seq = redis.call('HINCRBY', K_META, 'seq', 1)
    redis.call('HSET', K_ITEM, key, json)
    redis.call('ZADD', K_ORDER, seq, key)
    local s = { state = 'queued', reason = '', final = '', cur = '', failures = 0, natt = 0, last = '', depth = depth }
    if not_found then
      s.state = 'failed'
      s.reason = 'target_not_found'
    else
      redis.call('ZADD', K_QUEUE, seq, key)
    end
    redis.call('HINCRBY', K_META, 'n_' .. s.state, 1)
    putst(key, s)
    -- A key refused once by depth may come back shallower; it is then not "not executed".
    local old = redis.call('HGET', K_REFUSED, key)
    if old then
      redis.call('HDEL', K_REFUSED, key)
      redis.call('HINCRBY', K_META, 'r_' .. old, -1)
    end
    admitted = admitted + 1
    out[#out + 1] = 'admitted'
  end
end
if dup > 0 then redis.call('HINCRBY', K_META, 'dedup', dup) end
return out
`;

/**
 * ARGV: now, owner, n, lease_ms, tree_id, then n fresh run ids.
 * Returns a flat list of 6 fields per lease: key, run_id, attempt, expires_at, previous run_id, item JSON.
 */
export const LEASE_LUA = `${PRELUDE}
local now, owner, n, lease_ms, tree_id = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
expire(now)
local room = math.min(n, tonumber(redis.call('HGET', K_META, 'parallel')) - redis.call('ZCARD', K_LIVE))
if room <= 0 then return {} end
local keys = redis.call('ZRANGE', K_QUEUE, 0, room - 1)
local out = {}
for i, key in ipairs(keys) do
  local s = getst(key)
  local attempt = s.natt + 1
  local run_id = ARGV[5 + i]
  -- SPEC §8: tree_id is the first root attempt's run_id.
  if s.depth == 0 and attempt == 1 and redis.call('HEXISTS', K_ATT, tree_id) == 0 then run_id = tree_id end
  local expires = now + lease_ms
  redis.call('HSET', K_ATT, run_id, cjson.encode({ key = key, attempt = attempt, owner = owner, leased_at = now,
    outcome = '', partition = '', finished_at = 0, prev = s.last }))
  redis.call('ZADD', K_LIVE, expires, run_id)
  redis.call('ZREM', K_QUEUE, key)
  local prev = s.last
  setstate(s, 'leased')
  s.cur, s.natt, s.last = run_id, attempt, run_id
  putst(key, s)
  for _, v in ipairs({ key, run_id, attempt, expires, prev, redis.call('HGET', K_ITEM, key) }) do out[#out + 1] = v end
end
return out
`;

/** ARGV: now, owner, lease_ms. Returns the owner's run_ids still held. */
export const RENEW_LUA = `${PRELUDE}
local now, owner, lease_ms = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
-- Only unexpired leases: an expired one is never revived, another client may be requeueing it.
local ids = redis.call('ZRANGEBYSCORE', K_LIVE, '(' .. now, '+inf')
local held = {}
for _, id in ipairs(ids) do
  if cjson.decode(redis.call('HGET', K_ATT, id)).owner == owner then
    redis.call('ZADD', K_LIVE, now + lease_ms, id)
    held[#held + 1] = id
  end
end
return held
`;

/** ARGV: now. Returns how many leases expired. */
export const EXPIRE_LUA = `${PRELUDE}
return expire(tonumber(ARGV[1]))
`;

/** ARGV: now, owner. Returns how many leases were handed back. */
export const ABANDON_LUA = `${PRELUDE}
local now, owner = tonumber(ARGV[1]), ARGV[2]
local ids = redis.call('ZRANGE', K_LIVE, 0, -1)
local n = 0
for _, id in ipairs(ids) do
  if cjson.decode(redis.call('HGET', K_ATT, id)).owner == owner then
    lose(id, 'abandoned', now)
    n = n + 1
  end
end
return n
`;

/**
 * ARGV: now, run_id, key, attempt, outcome, partition JSON or '', retries.
 * Returns {'none'} for an unknown attempt, else {recorded '1'/'0', state}.
 */
export const COMPLETE_LUA = `${PRELUDE}
local now, run_id, key, attempt, outcome, partition, retries =
  tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7])
local raw = redis.call('HGET', K_ATT, run_id)
if not raw then return { 'none' } end
local a = cjson.decode(raw)
if a.key ~= key or a.attempt ~= attempt then return { 'none' } end
local s = getst(key)
local lost = a.outcome == 'expired' or a.outcome == 'abandoned'
-- Idempotent: a run outcome once recorded stays. A lost attempt may still report.
if a.outcome ~= '' and not lost then return { '0', s.state } end
if lost then redis.call('HINCRBY', K_META, 'requeued', -1) end
if outcome == 'interrupted' then redis.call('HINCRBY', K_META, 'requeued', 1) end
a.outcome, a.partition, a.finished_at = outcome, partition, now
redis.call('HSET', K_ATT, run_id, cjson.encode(a))
redis.call('ZREM', K_LIVE, run_id)
local current = s.state == 'leased' and s.cur == run_id
local final = s.state == 'succeeded' or s.state == 'failed'
if outcome == 'success' then
  -- SPEC §12: the first valid completion of an item wins, even from an attempt presumed dead.
  if not final then
    if s.state == 'queued' then redis.call('ZREM', K_QUEUE, key) end
    setstate(s, 'succeeded')
    s.reason, s.final, s.cur = '', run_id, ''
  end
elseif current then
  if outcome == 'interrupted' then
    setstate(s, 'queued')
    s.cur = ''
    enqueue(key)
  elseif s.failures < retries then
    setstate(s, 'queued')
    s.cur, s.failures = '', s.failures + 1
    redis.call('HINCRBY', K_META, 'retried', 1)
    enqueue(key)
  else
    setstate(s, 'failed')
    s.reason, s.final, s.cur, s.failures = outcome, run_id, '', s.failures + 1
  end
end
putst(key, s)
return { '1', s.state }
`;

/** ARGV: now. Returns 1 for the one caller that claims finalization. */
export const CLAIM_LUA = `${PRELUDE}
if redis.call('HGET', K_META, 'claimed') ~= '0' then return 0 end
local m = redis.call('HMGET', K_META, 'n_queued', 'n_leased')
if tonumber(m[1]) > 0 or tonumber(m[2]) > 0 or redis.call('ZCARD', K_LIVE) > 0 then return 0 end
redis.call('HSET', K_META, 'claimed', ARGV[1])
return 1
`;

/**
 * ARGV: now, owner, lease_ms, job. The finalization claim as a lease: taken
 * when nothing is queued or in flight and nobody claimed it, or taken over
 * when its holder stopped renewing (a dead worker) and never ended it.
 * Returns { 'claimed', previous owner or '' } | { 'held', owner, expires_at, job }
 * | { 'ended', state, owner } | { 'busy' }.
 */
export const CLAIM_LEASE_LUA = `${PRELUDE}
local now, owner, lease_ms, job = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
if redis.call('HGET', K_META, 'claimed') ~= '0' then
  local f = redis.call('HMGET', K_META, 'fin_owner', 'fin_expires', 'fin_state', 'fin_job')
  if f[3] == 'done' or f[3] == 'failed' then return { 'ended', f[3], f[1] or '' } end
  if not f[2] then return { 'held', '', '0', '' } end
  if tonumber(f[2]) > now then return { 'held', f[1], f[2], f[4] or '' } end
  redis.call('HSET', K_META, 'claimed', now, 'fin_owner', owner, 'fin_expires', now + lease_ms, 'fin_job', job)
  redis.call('HINCRBY', K_META, 'fin_takeovers', 1)
  return { 'claimed', f[1] or '' }
end
local m = redis.call('HMGET', K_META, 'n_queued', 'n_leased')
if tonumber(m[1]) > 0 or tonumber(m[2]) > 0 or redis.call('ZCARD', K_LIVE) > 0 then return { 'busy' } end
redis.call('HSET', K_META, 'claimed', now, 'fin_owner', owner, 'fin_expires', now + lease_ms, 'fin_job', job, 'fin_state', '')
return { 'claimed', '' }
`;

/** ARGV: now, owner, lease_ms. Extends the owner's finalization lease; 1 if it still holds it (unended). */
export const RENEW_CLAIM_LUA = `${PRELUDE}
local f = redis.call('HMGET', K_META, 'fin_owner', 'fin_state')
if f[1] ~= ARGV[2] or (f[2] and f[2] ~= '') then return 0 end
redis.call('HSET', K_META, 'fin_expires', tonumber(ARGV[1]) + tonumber(ARGV[3]))
return 1
`;

/** ARGV: owner, state (done | failed). Ends the finalization; 1 for the first to end it. */
export const END_CLAIM_LUA = `${PRELUDE}
local f = redis.call('HMGET', K_META, 'claimed', 'fin_state')
if f[1] == '0' or (f[2] and f[2] ~= '') then return 0 end
redis.call('HSET', K_META, 'fin_state', ARGV[2], 'fin_owner', ARGV[1])
return 1
`;

/** ARGV: none. Opens a failed finalization again (a later claim takes it); 1 if it was failed. */
export const REOPEN_CLAIM_LUA = `${PRELUDE}
if redis.call('HGET', K_META, 'fin_state') ~= 'failed' then return 0 end
redis.call('HSET', K_META, 'claimed', '0', 'fin_state', '')
redis.call('HDEL', K_META, 'fin_owner', 'fin_expires', 'fin_job')
return 1
`;

/** Returns a flat list of 5 fields per in-flight lease: run_id, expires_at, attempt JSON, item JSON, item seq. */
export const IN_FLIGHT_LUA = `${PRELUDE}
local live = redis.call('ZRANGE', K_LIVE, 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  local a = redis.call('HGET', K_ATT, live[i])
  local key = cjson.decode(a).key
  for _, v in ipairs({ live[i], live[i + 1], a, redis.call('HGET', K_ITEM, key), redis.call('ZSCORE', K_ORDER, key) }) do out[#out + 1] = v end
end
return out
`;
