-- Publishes one event atomically: checks its idempotency key, assigns the next id, appends the
-- frame to its topic's history (trimmed to its length) and to the shared log that the reader of
-- every instance follows.
-- KEYS: 1 epoch, 2 seq, 3 idle watermark, 4 topics, 5 the topic's stream, 6 log, 7 idempotency key
-- ARGV: 1 the epoch the caller knows, 2 topic, 3 the frame after its id line, 4 history length,
--       5 log length, 6 digest of the event ('' without a key), 7 how long a key lives (ms)
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'lost'} end
if epoch ~= ARGV[1] then return {'epoch', epoch} end
if ARGV[6] ~= '' then
  local first = redis.call('GET', KEYS[7])
  if first then
    local seq, digest = string.match(first, '^(%d+) (%x+)$')
    if digest == ARGV[6] then return {'duplicate', seq} end
    return {'reused', seq}
  end
end
local seq = redis.call('INCR', KEYS[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- The topic's previous event: a resume that finds it trimmed knows it missed something.
-- A topic forgotten for being idle may have had events up to the watermark.
local last = redis.call('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)
local previous
if #last == 0 then
  previous = redis.call('GET', KEYS[3]) or '0'
else
  previous = string.match(last[1][1], '^(%d+)')
end
local id = string.format('%d-0', seq)
local frame = 'id: ' .. epoch .. '-' .. string.format('%d', seq) .. '\n' .. ARGV[3]
redis.call('XADD', KEYS[5], 'MAXLEN', ARGV[4], id, 'p', previous, 'a', now, 'f', frame)
redis.call('ZADD', KEYS[4], now, ARGV[2])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[5], id, 't', ARGV[2], 'a', now, 'f', frame)
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[7], string.format('%d', seq) .. ' ' .. ARGV[6], 'PX', ARGV[7])
end
return {'ok', string.format('%d', seq)}
