local n = tonumber(redis.call('GET', KEYS[1]) or '0') if n >= 1 then return redis.call('DECR', KEYS[1]) end return -1
