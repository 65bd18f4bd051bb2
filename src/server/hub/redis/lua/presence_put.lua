-- Writes one instance's presence and renews its life: which topics it has subscribers for and
-- how many, and the connections of each sub, in two sorted sets ordered by name (score 0), so
-- that a topic's entries are one ZRANGEBYLEX away.
-- KEYS: 1 live instances (by expiry), 2 the instance's topics, 3 the instance's subs
-- ARGV: 1 instance id, 2 life (ms), 3 'renew', 'replace' or 'leave', 4 how many topic members
--       follow, 5.. topic members ("<topic>\0<connections>"), then sub members
--       ("<topic>\0<sub>\0<connections>")
-- Answers 'ok', or 'lost' for a renewal of an instance Redis did not know (it lost its data, or
-- the instance's entry had expired): the instance then writes everything again.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local life = tonumber(ARGV[2])
if ARGV[3] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2], KEYS[3])
  return 'ok'
end
-- Instances whose entries expired are gone: their keys expire at the same time.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local new = redis.call('ZADD', KEYS[1], now + life, ARGV[1])
redis.call('PEXPIRE', KEYS[1], life)
if ARGV[3] == 'replace' then
  redis.call('DEL', KEYS[2], KEYS[3])
  local topics = tonumber(ARGV[4])
  -- ZADD in batches: Lua's unpack holds a few thousand values at most.
  local function add(key, first, last)
    for from = first, last, 1000 do
      local batch = {}
      for i = from, math.min(from + 999, last) do
        batch[#batch + 1] = 0
        batch[#batch + 1] = ARGV[i]
      end
      redis.call('ZADD', key, unpack(batch))
    end
  end
  add(KEYS[2], 5, 4 + topics)
  add(KEYS[3], 5 + topics, #ARGV)
elseif new == 1 then
  return 'lost'
end
redis.call('PEXPIRE', KEYS[2], life)
redis.call('PEXPIRE', KEYS[3], life)
return 'ok'
