-- SPDX-License-Identifier: MIT
-- t_cache.lua - the checks of tests/lua/lua_cache.sh, run inside an nginx
-- worker: resty.shmreg's value cache (open(name, {cache = N})) against a
-- registry the script changes between the steps (GET /c?step=NAME).
-- Every cached get is compared with a get through a handle without a
-- cache (`plain`) on the same registry: the cache must change nothing but
-- the cost.  The handles live in this module, so they outlive a request.

local shmreg = require("resty.shmreg")
local tcheck = require("tcheck")
local check, eq, has = tcheck.check, tcheck.eq, tcheck.has

local _M = {}
local path -- the registry file
local reg, plain
local rev_at_open -- the registry's revision when step open ended

local function stats(r)
	return r:cache_stats() or {}
end

-- @r:get(@key) is @want (nil: absent), as @plain:get(@key) is
local function same(r, key, want, what)
	local v, err = r:get(key)
	local pv, perr = plain:get(key)
	eq(v, want, what)
	eq(v, pv, what .. ": as without the cache")
	eq(err, perr, what .. ": the same message as without the cache")
end

local steps = {}

-- The registry holds k1..k5 (k5 put first, at revision 1), k3 expiring.
function steps.open()
	local r, err = shmreg.open(path, { cache = -1 })
	check(r == nil and has(err, "opts.cache must be a whole number >= 0"),
	      "cache = -1", err)
	r, err = shmreg.open(path, { cache = 1.5 })
	check(r == nil and has(err, "opts.cache must be"), "cache = 1.5", err)
	r, err = shmreg.open(path, { cache = 10, cache_bytes = 0 })
	check(r == nil and has(err, "opts.cache_bytes must be"),
	      "cache_bytes = 0", err)
	r = shmreg.open(path, { cache = 0 })
	check(r and r:cache_stats() == nil, "cache = 0: no cache")

	reg = assert(shmreg.open(path, { cache = 100 }))
	plain = assert(shmreg.open(path))
	eq(plain:cache_stats(), nil, "no cache by default")
	local s = stats(reg)
	check(s.max_entries == 100 and s.max_bytes == 25600 and s.entries == 0,
	      "a new cache", s.max_entries, s.max_bytes, s.entries)
	eq(reg:info("k5").mod_rev, 1, "k5 was put first")
	for i = 1, 5 do
		same(reg, "k" .. i, "v" .. i, "first get of k" .. i)
		same(reg, "k" .. i, "v" .. i, "second get of k" .. i)
	end
	same(reg, "absent", nil, "an absent key")
	same(reg, "absent", nil, "an absent key again")
	s = stats(reg)
	eq(s.entries, 5, "five entries cached")
	eq(s.bytes, 5 * 4, "their key and value bytes")
	eq(s.misses, 5 + 2, "one miss per key, and the absent key's two")
	eq(s.hits, 5, "one hit per key")
	-- a hit allocates nothing at all (the string is the cached one)
	tcheck.no_alloc(reg, "k4", "v4", "cached get")
	eq(stats(reg).hits, 5 + 40000, "the allocation loops were hits")
	local ok, e = pcall(reg.get, reg, 42)
	check(not ok and has(e, "the key must be a string, not number"),
	      "a number key raises, cache or not", e)
	rev_at_open = reg:revision()
	local v
	v, err = reg:get("")
	check(v == nil and has(err, "shmreg_get: EINVAL"), "empty key", err)
end

-- The script waited until k3 expired, with no commit since step open:
-- the registry's revision is the same, and k3 must still read absent.
function steps.expired()
	eq(reg:revision(), rev_at_open, "no commit since the values were cached")
	same(reg, "k3", nil, "k3 expired after it was cached")
	same(reg, "k4", "v4", "k4 unchanged")
end

-- The script changed k1 and deleted k2.
function steps.changed()
	local before = stats(reg)
	same(reg, "k1", "v1-new", "k1 changed after it was cached")
	same(reg, "k1", "v1-new", "k1 again")
	same(reg, "k2", nil, "k2 deleted after it was cached")
	same(reg, "k3", nil, "k3 still expired")
	same(reg, "k4", "v4", "k4 unchanged")
	local s = stats(reg)
	eq(s.misses - before.misses, 1, "one miss: the changed k1")
	eq(s.hits - before.hits, 2, "two hits: k1's new value, unchanged k4")
	eq(s.entries, 5, "the entries of k2 and k3 stay until a clear")
end

-- The script put a 2 MB value, which made the writer publish a grown
-- segment (a handoff), then the key "after".
function steps.handoff()
	local before = stats(reg)
	same(reg, "k4", "v4", "k4 after the handoff")
	same(reg, "k1", "v1-new", "k1 after the handoff")
	same(reg, "after", "a", "a key put after the handoff")
	local s = stats(reg)
	eq(s.hits - before.hits, 2, "the cache stayed valid across the handoff")
	eq(s.misses - before.misses, 1, "one miss: the new key")
end

-- The script removed the registry and made it again, putting k5 first
-- (revision 1 again, as in the old one) with another value.
function steps.recreated()
	-- the old handles read the removed file, as libshmreg does
	same(reg, "k5", "v5", "k5 through a handle of the removed registry")
	local fresh = assert(shmreg.open(path, { cache = 100 }))
	local i_old, i_new = reg:info("k5"), fresh:info("k5")
	check(i_old and i_new and i_old.mod_rev == i_new.mod_rev,
	      "k5 has the same mod_rev in both registries",
	      i_old and i_old.mod_rev, i_new and i_new.mod_rev)
	eq(fresh:get("k5"), "v5-recreated", "k5 through a new handle")
	eq(fresh:get("k5"), "v5-recreated", "k5 through a new handle, cached")
	eq(stats(fresh).hits, 1, "the new handle's cache served it")
	eq(reg:get("k5"), "v5", "the old handle still serves the old file")
	fresh:close()
	plain:close()
	reg:close()
	local ok, e = pcall(reg.get, reg, "k5")
	check(not ok and has(e, "was closed"), "get after close", e)
	ok = pcall(reg.cache_stats, reg)
	check(not ok, "cache_stats after close raises")
end

-- Caps: entries, bytes, and an entry too large to cache.  The registry
-- holds cap/01..cap/10 with 8-byte values ("value-01", ...).
function steps.caps()
	plain = assert(shmreg.open(path))
	local r = assert(shmreg.open(path, { cache = 4 }))
	for i = 1, 4 do
		same(r, string.format("cap/%02d", i), string.format("value-%02d", i),
		     "cap/" .. i)
	end
	local s = stats(r)
	check(s.entries == 4 and s.clears == 0, "4 entries, no clear",
	      s.entries, s.clears)
	same(r, "cap/05", "value-05", "the fifth key")
	s = stats(r)
	check(s.entries == 1 and s.clears == 1 and s.bytes == 14,
	      "the fifth entry cleared the cache", s.entries, s.clears, s.bytes)
	same(r, "cap/01", "value-01", "cap/01 after the clear")
	eq(stats(r).misses, 6, "cap/01 was a miss after the clear")

	-- 14 bytes an entry (6 of key, 8 of value): 112 bytes hold 8, and an
	-- entry may take up to 112 / 8 = 14 of them
	r = assert(shmreg.open(path, { cache = 100, cache_bytes = 112 }))
	for i = 1, 9 do
		same(r, string.format("cap/%02d", i), string.format("value-%02d", i),
		     "bytes cap: cap/" .. i)
		s = stats(r)
		check(s.bytes <= 112, "at most 112 bytes", s.bytes)
	end
	check(s.entries == 1 and s.clears == 1, "the ninth entry cleared",
	      s.entries, s.clears)
	r = assert(shmreg.open(path, { cache = 100, cache_bytes = 111 }))
	same(r, "cap/10", "value-10", "an entry over an eighth of the bytes")
	same(r, "cap/10", "value-10", "an entry over an eighth, again")
	s = stats(r)
	check(s.entries == 0 and s.misses == 2 and s.hits == 0,
	      "an entry over an eighth of the bytes is not cached",
	      s.entries, s.misses, s.hits)
	plain:close()
end

-- GET /c?step=NAME
function _M.run(registry)
	path = registry
	local step = steps[ngx.var.arg_step]
	if not step then
		ngx.status = 400
		ngx.say("no step ", tostring(ngx.var.arg_step))
		return
	end
	step()
	tcheck.finish()
end

return _M
