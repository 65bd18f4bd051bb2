-- Who follows one topic on the other live instances (the asking instance counts its own).
-- KEYS: 1 live instances (by expiry)
-- ARGV: 1 the asking instance's id, 2 the topic, 3 the prefix of an instance's presence keys
-- Answers {connections, sub, connections, sub, connections, ...}: every connection, and those
-- of each sub (a sub on several instances comes once per instance).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local topic = ARGV[2]
local from, to = '[' .. topic .. '\0', '(' .. topic .. '\1'
local connections, answer = 0, {''}
for _, instance in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  if instance ~= ARGV[1] then
    local base = ARGV[3] .. instance
    local entry = redis.call('ZRANGEBYLEX', base .. ':topics', from, to, 'LIMIT', 0, 1)
    if #entry == 1 then
      connections = connections + tonumber(string.sub(entry[1], #topic + 2))
      for _, member in ipairs(redis.call('ZRANGEBYLEX', base .. ':subs', from, to)) do
        local rest = string.sub(member, #topic + 2)
        local cut = string.find(rest, '\0', 1, true)
        answer[#answer + 1] = string.sub(rest, 1, cut - 1)
        answer[#answer + 1] = string.sub(rest, cut + 1)
      end
    end
  end
end
answer[1] = tostring(connections)
return answer
