-- Publishes batches of events in order: for each event, checks its idempotency key, assigns the
-- next id, appends the frame to its topic's history (trimmed to its length; then, once per
-- topic and call, to its bytes, keeping the newest) and to the shared log that the reader of
-- every instance follows. The
-- events come in groups, one per publish request: a group is all or nothing, so its keys are all
-- checked before any of its events is written.
-- KEYS: 1 epoch, 2 seq, 3 idle watermark, 4 topics, 5 log, 6 bytes per topic, 7 bytes in total
--       (the shared keys), then per event: the topic's stream, its idempotency key ('' without)
-- ARGV: 1 the epoch the caller knows, 2 history length, 3 log length, 4 how long a key lives (ms),
--       5 history bytes per topic, 6 how long a topic's stream lives (ms), 7 how long the shared
--       keys live (ms), then per event: topic, the frame after its id line, digest of the event
--       ('' without a key), and the size of its group on a group's first event ('0' on the rest)
-- Answers {'ok', bytes in total, events evicted for bytes, status, seq, status, seq, ...} with a
-- status per event: 'ok', 'duplicate' (with the first event's seq), or in a group refused whole,
-- 'reused' (with the first event's seq) for the event whose key was used for a different event
-- and 'refused' ('0') for the others; or {'epoch', current}, or {'lost'}.
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'lost'} end
if epoch ~= ARGV[1] then return {'epoch', epoch} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local most_bytes = tonumber(ARGV[5])
local answers = {}
local evicted = 0

-- The first event's seq and digest for event i's key, or nil.
local function first_of(i)
  if ARGV[10 + 4 * i] == '' then return nil end
  local first = redis.call('GET', KEYS[9 + 2 * i])
  if not first then return nil end
  return string.match(first, '^(%d+) (%x+)$')
end

-- Each topic's state through this call, read on its first event and written back once at the
-- end, so that an event costs two XADDs (its history and the log) and its key, whatever the
-- batch: previous (the topic's last event's seq, or the watermark), before (the bytes of every
-- frame it had before the next), held_before (its bytes as the shared hash had them).
local topics = {}
local order = {}
local seq_now = tonumber(redis.call('GET', KEYS[2]) or '0')

local function topic_state(i)
  local topic_key = KEYS[8 + 2 * i]
  local state = topics[topic_key]
  if state then return state end
  local topic = ARGV[8 + 4 * i]
  -- The topic's previous event: a resume that finds it trimmed knows it missed something.
  -- A topic forgotten for being idle may have had events up to the watermark.
  local last = redis.call('XREVRANGE', topic_key, '+', '-', 'COUNT', 1)
  state = {topic = topic, key = topic_key, previous = nil, before = 0, newest = nil,
           held_before = tonumber(redis.call('HGET', KEYS[6], topic) or '0')}
  if #last == 0 then
    state.previous = redis.call('GET', KEYS[3]) or '0'
  else
    state.previous = string.match(last[1][1], '^(%d+)')
    local fields = last[1][2]
    -- b: the bytes of every frame the topic had before this one, so that what a history holds
    -- is the newest entry's b and frame less the oldest entry's b, however it was trimmed.
    state.before = (tonumber(fields[8]) or 0) + #fields[6]
  end
  topics[topic_key] = state
  table.insert(order, state)
  return state
end

local function publish(i)
  local once_key = KEYS[9 + 2 * i]
  local rest, digest = ARGV[9 + 4 * i], ARGV[10 + 4 * i]
  local first_seq = first_of(i)
  if first_seq then
    -- The group was checked: the same key here is the same event.
    table.insert(answers, 'duplicate')
    table.insert(answers, first_seq)
    return
  end
  local state = topic_state(i)
  seq_now = seq_now + 1
  local seq = string.format('%d', seq_now)
  local frame = 'id: ' .. epoch .. '-' .. seq .. '\n' .. rest
  local id = seq .. '-0'
  redis.call('XADD', state.key, 'MAXLEN', ARGV[2], id, 'p', state.previous, 'a', now, 'f', frame, 'b', state.before)
  state.previous, state.before, state.newest = seq, state.before + #frame, id
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], id, 't', state.topic, 'a', now, 'f', frame)
  if digest ~= '' then redis.call('SET', once_key, seq .. ' ' .. digest, 'PX', ARGV[4]) end
  table.insert(answers, 'ok')
  table.insert(answers, seq)
end

local events = (#ARGV - 7) / 4
local i = 0
while i < events do
  local size = tonumber(ARGV[11 + 4 * i])
  local reused = nil
  for j = i, i + size - 1 do
    local seq, first_digest = first_of(j)
    if seq and first_digest ~= ARGV[10 + 4 * j] then
      reused = {j, seq}
      break
    end
  end
  for j = i, i + size - 1 do
    if not reused then
      publish(j)
    elseif j == reused[1] then
      table.insert(answers, 'reused')
      table.insert(answers, reused[2])
    else
      table.insert(answers, 'refused')
      table.insert(answers, '0')
    end
  end
  i = i + size
end
-- Each topic published to: trimmed to its bytes (keeping its newest event), its life renewed,
-- its bytes and its time written back once.
for _, state in ipairs(order) do
  if state.newest then
    local held
    while true do
      local oldest = redis.call('XRANGE', state.key, '-', '+', 'COUNT', 1)[1]
      held = state.before - (tonumber(oldest[2][8]) or 0)
      if held <= most_bytes or oldest[1] == state.newest then break end
      redis.call('XDEL', state.key, oldest[1])
      evicted = evicted + 1
    end
    redis.call('PEXPIRE', state.key, ARGV[6])
    redis.call('HSET', KEYS[6], state.topic, held)
    redis.call('INCRBY', KEYS[7], held - state.held_before)
    redis.call('ZADD', KEYS[4], now, state.topic)
  end
end
redis.call('SET', KEYS[2], string.format('%d', seq_now))
for key = 1, 7 do redis.call('PEXPIRE', KEYS[key], ARGV[7]) end
local total = redis.call('GET', KEYS[7]) or '0'
return {'ok', total, string.format('%d', evicted), unpack(answers)}
