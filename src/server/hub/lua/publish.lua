-- Publishes a batch of events atomically, in order: for each, checks its idempotency key,
-- assigns the next id, appends the frame to its topic's history (trimmed to its length) and to
-- the shared log that the reader of every instance follows.
-- KEYS: 1 epoch, 2 seq, 3 idle watermark, 4 topics, 5 log,
--       then per event: the topic's stream, its idempotency key ('' without one)
-- ARGV: 1 the epoch the caller knows, 2 history length, 3 log length, 4 how long a key lives (ms),
--       then per event: topic, the frame after its id line, digest of the event ('' without a key)
-- Answers {'ok', status, seq, status, seq, ...} with a status per event ('ok', 'duplicate' or
-- 'reused', with the first event's seq for the last two), {'epoch', current} or {'lost'}.
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'lost'} end
if epoch ~= ARGV[1] then return {'epoch', epoch} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local answers = {'ok'}
for i = 0, (#ARGV - 4) / 3 - 1 do
  local topic_key, once_key = KEYS[6 + 2 * i], KEYS[7 + 2 * i]
  local topic, rest, digest = ARGV[5 + 3 * i], ARGV[6 + 3 * i], ARGV[7 + 3 * i]
  local first = nil
  if digest ~= '' then first = redis.call('GET', once_key) end
  if first then
    local seq, first_digest = string.match(first, '^(%d+) (%x+)$')
    if first_digest == digest then
      table.insert(answers, 'duplicate')
    else
      table.insert(answers, 'reused')
    end
    table.insert(answers, seq)
  else
    local seq = string.format('%d', redis.call('INCR', KEYS[2]))
    -- The topic's previous event: a resume that finds it trimmed knows it missed something.
    -- A topic forgotten for being idle may have had events up to the watermark.
    local last = redis.call('XREVRANGE', topic_key, '+', '-', 'COUNT', 1)
    local previous
    if #last == 0 then
      previous = redis.call('GET', KEYS[3]) or '0'
    else
      previous = string.match(last[1][1], '^(%d+)')
    end
    local frame = 'id: ' .. epoch .. '-' .. seq .. '\n' .. rest
    redis.call('XADD', topic_key, 'MAXLEN', ARGV[2], seq .. '-0', 'p', previous, 'a', now, 'f', frame)
    redis.call('ZADD', KEYS[4], now, topic)
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], seq .. '-0', 't', topic, 'a', now, 'f', frame)
    if digest ~= '' then redis.call('SET', once_key, seq .. ' ' .. digest, 'PX', ARGV[4]) end
    table.insert(answers, 'ok')
    table.insert(answers, seq)
  end
end
return answers
