-- Registers a running job, unless every job slot or the session's share of them is taken.
-- KEYS: 1 the job's hash, 2 the session's jobs, 3 running jobs by deadline
-- ARGV: 1 job id, 2 session topic, 3 started at (RFC 3339), 4 most jobs running at once,
--       5 most running per session, 6 timeout (ms), 7 how long a job is kept (ms),
--       8 most jobs listed per session, 9 prefix of the jobs' hashes
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- A job past its deadline no longer holds a slot, even if its instance died before failing it.
if redis.call('ZCOUNT', KEYS[3], now, '+inf') >= tonumber(ARGV[4]) then return 'full' end
local running = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('HGET', ARGV[9] .. id, 'status') == 'running' then running = running + 1 end
end
if running >= tonumber(ARGV[5]) then return 'session-busy' end
redis.call('HSET', KEYS[1], 'session', ARGV[2], 'status', 'running', 'started_at', ARGV[3], 'started_ms', now)
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[8]))
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[1])
-- Every job in it is past its deadline by then, and its hash gone: nothing outlives its use.
redis.call('PEXPIRE', KEYS[3], ARGV[7])
return 'ok'
