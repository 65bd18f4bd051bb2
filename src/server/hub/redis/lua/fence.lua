-- Moves the log to a new epoch after a failover that may have lost events, unless another
-- instance did already: ids of the old epoch then resume with a reset, never against a log
-- that may have numbered other events the same. The key keeps its life.
-- KEYS: 1 the epoch. ARGV: 1 the epoch the caller knows, 2 the new one.
-- Answers the epoch now, or nothing when there is none (Redis lost its data).
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return ARGV[2]
end
return current
