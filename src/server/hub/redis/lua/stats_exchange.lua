-- Shares one instance's stats with the others and reads theirs, for the operator page: writes
-- the instance's snapshot with a short life, then answers how many topics have a history in
-- Redis, this snapshot, and the snapshots of the other live instances that wrote one.
-- KEYS: 1 live instances (by expiry, as presence writes them), 2 the topics with a history
-- ARGV: 1 instance id, 2 the key prefix of snapshots, 3 life (ms), 4 the snapshot
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('SET', ARGV[2] .. ARGV[1], ARGV[4], 'PX', ARGV[3])
local answer = {tostring(redis.call('ZCARD', KEYS[2])), ARGV[4]}
for _, instance in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  if instance ~= ARGV[1] then
    local snapshot = redis.call('GET', ARGV[2] .. instance)
    if snapshot then
      answer[#answer + 1] = snapshot
    end
  end
end
return answer
