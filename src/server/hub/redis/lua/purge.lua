-- Forgets whole topics: those that have had no event for the history's age, then, while every
-- history together holds more than its bound, those published to longest ago; at most ARGV[3]
-- in one call. The newest event of each raises the idle watermark: a resume from before it
-- cannot be told exactly.
-- KEYS: 1 seq, 2 idle watermark, 3 topics, 4 bytes per topic, 5 bytes in total
-- ARGV: 1 history age (ms), 2 prefix of the topics' streams, 3 most topics at once,
--       4 most bytes in total, 5 how long the shared keys live (ms)
-- Answers {topics forgotten, events forgotten for the bytes in total, bytes in total}.
local time = redis.call('TIME')
local cutoff = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[1])
local most = tonumber(ARGV[3])
local watermark = tonumber(redis.call('GET', KEYS[2]) or '0')
local total = tonumber(redis.call('GET', KEYS[5]) or '0')
local total_read = total
local forgotten = 0

-- Forgets one topic; answers how many events it held.
local function forget(topic)
  local key = ARGV[2] .. topic
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  local newest
  if #last > 0 then
    newest = tonumber(string.match(last[1][1], '^(%d+)'))
  else
    -- Its stream expired before the purge reached it: which events it had is unknown, but
    -- none was newer than the last id.
    newest = tonumber(redis.call('GET', KEYS[1]) or '0')
  end
  if newest > watermark then watermark = newest end
  local events = redis.call('XLEN', key)
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[3], topic)
  total = total - tonumber(redis.call('HGET', KEYS[4], topic) or '0')
  redis.call('HDEL', KEYS[4], topic)
  forgotten = forgotten + 1
  return events
end

for _, topic in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', cutoff, 'LIMIT', 0, most)) do
  forget(topic)
end
local evicted = 0
while forgotten < most and total > tonumber(ARGV[4]) do
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0)
  if #oldest == 0 then break end
  evicted = evicted + forget(oldest[1])
end
-- With no topic left nothing is held, whatever a key evicted by Redis's own memory policy left
-- the count at.
if total < 0 or redis.call('ZCARD', KEYS[3]) == 0 then total = 0 end
if forgotten > 0 then
  redis.call('SET', KEYS[2], string.format('%d', watermark), 'PX', ARGV[5])
end
if total ~= total_read then
  redis.call('SET', KEYS[5], string.format('%d', total), 'PX', ARGV[5])
end
return {forgotten, evicted, total}
