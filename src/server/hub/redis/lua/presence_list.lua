-- The topics that have subscribers on the other live instances, by name: those that start with
-- a prefix and come after a cursor, the first few of them, with their connections summed over
-- the instances. Each instance's topics are a sorted set by name, so the work is one ranged
-- read of at most `limit` entries an instance.
-- KEYS: 1 live instances (by expiry)
-- ARGV: 1 the asking instance's id, 2 the prefix of an instance's presence keys, 3 the first
--       name of the range (ZRANGEBYLEX syntax), 4 its last, 5 most topics
-- Answers {topic, connections, topic, connections, ...} by name.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local limit = tonumber(ARGV[5])
local counts, names = {}, {}
for _, instance in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  if instance ~= ARGV[1] then
    local key = ARGV[2] .. instance .. ':topics'
    for _, member in ipairs(redis.call('ZRANGEBYLEX', key, ARGV[3], ARGV[4], 'LIMIT', 0, limit)) do
      local cut = string.find(member, '\0', 1, true)
      local topic = string.sub(member, 1, cut - 1)
      if counts[topic] == nil then
        counts[topic] = 0
        names[#names + 1] = topic
      end
      counts[topic] = counts[topic] + tonumber(string.sub(member, cut + 1))
    end
  end
end
table.sort(names)
local answer = {}
for i = 1, math.min(#names, limit) do
  answer[#answer + 1] = names[i]
  answer[#answer + 1] = tostring(counts[names[i]])
end
return answer
