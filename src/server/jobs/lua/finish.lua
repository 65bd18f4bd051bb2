-- Finishes a running job once, whichever instance the callback (or the timer) reaches.
-- KEYS: 1 the job's hash, 2 running jobs by deadline
-- ARGV: 1 job id, 2 status, 3 result, 4 how long a finished job is kept (ms)
-- Answers {'ok', session, started_at, took_ms}, {'unknown'} or {'finished'}.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'unknown'} end
if status ~= 'running' then return {'finished'} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local job = redis.call('HMGET', KEYS[1], 'session', 'started_at', 'started_ms')
local took = string.format('%d', math.max(0, now - tonumber(job[3])))
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'took_ms', took, 'result', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[1])
return {'ok', job[1], job[2], took}
