-- Feast's Redis layout, newer-write-wins: writes a group of entity hashes in one call.
-- KEYS: the entity keys (on a Redis Cluster, all of one hash slot).
-- ARGV: _ts field, ttl (0: none), force ('1'/'0'), the number of feature fields and their names,
--   then per key: seconds, nanos, the serialized Timestamp, a mask (empty: every field follows;
--   else one '0'/'1' per field) and the values that follow.
-- A row is written when force, or the key has no _ts field, or (seconds, nanos) >= the stored one.
-- Returns the rows written.
local tsf, ttl, force, nf = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4])
local names = {}
for j = 1, nf do names[j] = ARGV[4 + j] end
local p = 5 + nf
local written = 0
local byte = string.byte
-- a protobuf varint at s[i..]: value, next position (a 10-byte one is a negative int64)
local function varint(s, i, n)
  local v, mul, start, b = 0, 1, i, 0
  repeat
    b = byte(s, i)
    i = i + 1
    v = v + (b % 128) * mul
    mul = mul * 128
  until b < 128 or i > n
  if i - start >= 10 then -- two's complement: -(the inverted low 63 bits + 1)
    v, mul = 0, 1
    for k = start, start + 8 do v = v + (127 - byte(s, k) % 128) * mul mul = mul * 128 end
    v = -(v + 1)
  end
  return v, i
end
-- a protobuf Timestamp (field 1 seconds, field 2 nanos) -> seconds, nanos
local function decode(s)
  local secs, nanos, i, n = 0, 0, 1, #s
  while i <= n do
    local tag, v = byte(s, i), 0
    v, i = varint(s, i + 1, n)
    if tag == 8 then secs = v elseif tag == 16 then nanos = v end
  end
  return secs, nanos
end
-- full rows fill the value slots of one prefilled table (no table built per row)
local full = {tsf, ''}
for j = 1, nf do full[2 * j + 1] = names[j] full[2 * j + 2] = '' end
local part = {tsf, ''}
local nfull = 2 * nf + 2
for i = 1, #KEYS do
  local key, p0 = KEYS[i], p
  local blob, mask = ARGV[p + 2], ARGV[p + 3]
  local cells, c
  if mask == '' then
    full[2] = blob
    for j = 1, nf do full[2 * j + 2] = ARGV[p + 3 + j] end
    cells, c = full, nfull
    p = p + 4 + nf
  else
    part[2] = blob
    c = 2
    local q = p + 4
    for j = 1, nf do
      if byte(mask, j) == 49 then
        part[c + 1] = names[j] part[c + 2] = ARGV[q] c = c + 2 q = q + 1
      end
    end
    cells = part
    p = q
  end
  local ok = force
  if not ok then
    local old = redis.call('HGET', key, tsf)
    if not old then
      ok = true
    else
      local s0, n0 = decode(old)
      local secs = tonumber(ARGV[p0])
      ok = secs > s0 or (secs == s0 and tonumber(ARGV[p0 + 1]) >= n0)
    end
  end
  if ok then
    redis.call('HSET', key, unpack(cells, 1, c))
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    written = written + 1
  end
end
return written
