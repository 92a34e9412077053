-- Token bucket, refilled continuously, taken from atomically.
--
-- KEYS[1]  the bucket: a hash with `tokens` (float) and `ts` (server time, microseconds)
-- ARGV[1]  capacity        (> 0)
-- ARGV[2]  refill per second (>= 0)
-- ARGV[3]  cost of this request (> 0)
--
-- Returns {allowed (1 or 0), tokens left after this request (string: Redis would truncate a
-- Lua number to an integer)}.
--
-- The clock is the server's (TIME), so clients with skewed clocks share one notion of time.
-- Since Redis 5 scripts replicate their effects, so a non-deterministic TIME before writes is fine.

local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  -- a new bucket, or one that expired because it had refilled completely
  tokens = capacity
  ts = now
end

-- max(0, ...): after a failover the new primary's clock may be behind; never refill negatively
local elapsed_s = math.max(0, now - ts) / 1000000
tokens = math.min(capacity, tokens + elapsed_s * rate)

local allowed = 0
-- the epsilon keeps fractional costs (0.1 taken ten times) from failing on rounding
if tokens + 1e-9 >= cost then
  tokens = math.max(0, tokens - cost)
  allowed = 1
end

-- %.17g round-trips a double exactly; the default conversion keeps only 14 digits
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', now))
if rate > 0 then
  -- expire once full again: an absent bucket reads as full, so expiry changes nothing observable
  -- (capped at ~300 years so a tiny rate cannot overflow PEXPIRE)
  local ttl_ms = math.min(1e13, math.max(1000, math.ceil((capacity - tokens) / rate * 1000)))
  redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl_ms))
else
  -- without refill the bucket never becomes full again, so it must not vanish
  redis.call('PERSIST', KEYS[1])
end

return {allowed, string.format('%.17g', tokens)}
