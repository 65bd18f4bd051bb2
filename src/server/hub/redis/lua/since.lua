-- The events of some topics after an id, or why they cannot be told exactly, read atomically.
-- The work is bounded whatever the histories hold: one entry per topic to check for gaps, then
-- at most ARGV[4] + 1 events, read 64 at a time, stopping once ARGV[5] bytes are passed.
-- KEYS: 1 epoch, 2 seq, 3 idle watermark, 4 topics, 5.. the topics' streams
-- ARGV: 1 the id's epoch ('' to read from the oldest event held, with no check for gaps),
--       2 the id's sequence number, 3 history age (ms), 4 most events, 5 most bytes,
--       6 past them: 'reset' (a gap) or 'stop' (the first events, at least one; one topic only),
--       7.. the topics, as in KEYS[5..]
-- Answers {'ok' or 'more', epoch, top, id, topic index (0-based, in KEYS[5..] order), frame, ...}
-- ('more': events past the bounds were left out), {'gap', epoch, top, reason} or {'lost'}.
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'lost'} end
local top = redis.call('GET', KEYS[2]) or '0'
local exact = ARGV[1] ~= ''
if exact and epoch ~= ARGV[1] then return {'gap', epoch, top, 'other-incarnation'} end
local since = tonumber(ARGV[2])
if since > tonumber(top) then return {'gap', epoch, top, 'unknown-id'} end
local time = redis.call('TIME')
local cutoff = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[3])
local watermark = tonumber(redis.call('GET', KEYS[3]) or '0')
local after = '(' .. ARGV[2] .. '-0'
for i = 5, #KEYS do
  if not exact then break end
  local first = redis.call('XRANGE', KEYS[i], after, '+', 'COUNT', 1)
  if #first == 0 then
    -- Nothing after the id, unless the whole topic was forgotten: by the purge for being idle
    -- (the watermark), or by its stream's expiry before the purge reached it (still listed).
    if redis.call('EXISTS', KEYS[i]) == 0
        and (since < watermark or redis.call('ZSCORE', KEYS[4], ARGV[i + 2])) then
      return {'gap', epoch, top, 'expired'}
    end
  else
    -- Fields: p (the topic's previous event), a (published at, ms), f (the frame), b.
    local fields = first[1][2]
    if tonumber(fields[2]) > since or tonumber(fields[4]) < cutoff then
      return {'gap', epoch, top, 'expired'}
    end
  end
end
local most_events, most_bytes, stop = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == 'stop'
local missed, events, bytes = {'ok', epoch, top}, 0, 0
for i = 5, #KEYS do
  local from = after
  while true do
    local count = math.min(64, most_events - events + 1)
    local entries = redis.call('XRANGE', KEYS[i], from, '+', 'COUNT', count)
    for _, entry in ipairs(entries) do
      -- Without an id, events older than the history's age are not part of it.
      if exact or tonumber(entry[2][4]) >= cutoff then
        events = events + 1
        bytes = bytes + #entry[2][6]
        if events > most_events or bytes > most_bytes then
          if not stop then return {'gap', epoch, top, 'replay-too-large'} end
          -- A page holds at least one event when any follows, so that paging always moves on.
          if events == 1 then
            table.insert(missed, entry[1])
            table.insert(missed, tostring(i - 5))
            table.insert(missed, entry[2][6])
            if #redis.call('XRANGE', KEYS[i], '(' .. entry[1], '+', 'COUNT', 1) == 0 then
              return missed
            end
          end
          missed[1] = 'more'
          return missed
        end
        table.insert(missed, entry[1])
        table.insert(missed, tostring(i - 5))
        table.insert(missed, entry[2][6])
      end
      from = '(' .. entry[1]
    end
    if #entries < count then break end
  end
end
return missed
