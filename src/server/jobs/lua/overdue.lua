-- The running jobs past their deadline, by Redis's clock: the one start.lua set the deadlines
-- by, so that an instance whose clock is off neither fails jobs early nor leaves them running.
-- KEYS: 1 running jobs by deadline
-- ARGV: 1 most jobs to return
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
