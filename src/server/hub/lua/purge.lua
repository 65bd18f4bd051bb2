-- Forgets the topics that have had no event for the history's age, and raises the idle
-- watermark to the newest event they held: a resume from before it cannot be told exactly.
-- KEYS: 1 topics, 2 idle watermark
-- ARGV: 1 history age (ms), 2 prefix of the topics' streams, 3 most topics at once
local time = redis.call('TIME')
local cutoff = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[1])
local idle = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[3]))
local watermark = tonumber(redis.call('GET', KEYS[2]) or '0')
for _, topic in ipairs(idle) do
  local key = ARGV[2] .. topic
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #last > 0 then
    local seq = tonumber(string.match(last[1][1], '^(%d+)'))
    if seq > watermark then watermark = seq end
  end
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], topic)
end
if #idle > 0 then redis.call('SET', KEYS[2], string.format('%d', watermark)) end
return #idle
