-- The log's epoch: set to ARGV[1] unless one is set already (by another instance, or before a
-- restart that kept the data), then read back. Every shared key's life is renewed to ARGV[2] ms:
-- each instance's reader calls this every idle second, so nothing expires while Herald runs,
-- and nothing it wrote outlives its last instance by more than that.
-- KEYS: the shared keys, the epoch first
redis.call('SET', KEYS[1], ARGV[1], 'NX')
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[2]) end
return redis.call('GET', KEYS[1])
