-- The log's epoch: set to ARGV[1] unless one is set already (by another instance, or before a
-- restart that kept the data), then read back.
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
