-- The events of some topics after an id, or why they cannot be told exactly, read atomically.
-- KEYS: 1 epoch, 2 seq, 3 idle watermark, 4.. the topics' streams
-- ARGV: 1 the id's epoch, 2 the id's sequence number, 3 history age (ms)
-- Answers {'ok', epoch, top, id, topic index (0-based, in KEYS order), frame, ...}, {'gap', epoch, top, reason} or {'lost'}.
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'lost'} end
local top = redis.call('GET', KEYS[2]) or '0'
if epoch ~= ARGV[1] then return {'gap', epoch, top, 'other-incarnation'} end
local since = tonumber(ARGV[2])
if since > tonumber(top) then return {'gap', epoch, top, 'unknown-id'} end
local time = redis.call('TIME')
local cutoff = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[3])
local watermark = tonumber(redis.call('GET', KEYS[3]) or '0')
local missed = {'ok', epoch, top}
for i = 4, #KEYS do
  local entries = redis.call('XRANGE', KEYS[i], '(' .. ARGV[2] .. '-0', '+')
  if #entries == 0 then
    -- Nothing after the id, unless the whole topic was forgotten for being idle.
    if since < watermark and redis.call('EXISTS', KEYS[i]) == 0 then
      return {'gap', epoch, top, 'expired'}
    end
  else
    -- Fields: p (the topic's previous event), a (published at, ms), f (the frame).
    local first = entries[1][2]
    if tonumber(first[2]) > since or tonumber(first[4]) < cutoff then
      return {'gap', epoch, top, 'expired'}
    end
    for _, entry in ipairs(entries) do
      table.insert(missed, entry[1])
      table.insert(missed, tostring(i - 4))
      table.insert(missed, entry[2][6])
    end
  end
end
return missed
