-- SPDX-License-Identifier: MIT
-- bench_nginx.lua - the handlers of tests/bench/bench_nginx.sh: GET
-- /shmreg, /dict and /noop each run LOOP gets (a loop of ?n=, default
-- 1000) over the same N keys, through resty.shmreg, through
-- ngx.shared.DICT:get, or not at all (the loop and HTTP alone); /cached
-- through a resty.shmreg handle with its value cache on (every key fits
-- in it), /lookup through shmreg's lookup alone.  Every
-- handler checks the values it got (the sum of their lengths), so a
-- wrong or missing value fails the run instead of speeding it up.

local shmreg = require("resty.shmreg")

local _M = {}
local reg, cached, dict
local keys, nkeys = {}, 0
local STRIDE = 7919 -- a prime: successive gets land far apart

-- The same bytes as bench_nginx_fill.c's bench_entry().
local function bench_key(i)
	return string.format("bench/%010d", i)
end
local function bench_value(i)
	return string.format("value-%010d-%-47s", i, "padding-to-64-bytes")
end

-- init_by_lua: open the registry, make the key strings once (every peer
-- uses the same ones, so making them is no part of any peer's cost), and
-- check a sample.  With @cache = 0 (the nginx of /shmreg and /dict), fill
-- the lua_shared_dict with what the registry holds; with @cache > 0 (the
-- nginx of /cached), open a second handle with a value cache of that many
-- entries instead.  /cached runs in an nginx of its own because its
-- cache keeps 100 k value strings alive, and LuaJIT interns strings: in
-- the same VM, the dict's and the uncached handle's gets would find their
-- values already made and be spared the allocation they pay in a VM
-- without the cache.
function _M.init(registry, n, cache)
	local err
	reg, err = shmreg.open(registry)
	if not reg then
		error("bench_nginx: " .. err)
	end
	if cache > 0 then
		cached, err = shmreg.open(registry, { cache = cache })
		if not cached then
			error("bench_nginx: " .. err)
		end
	end
	dict = ngx.shared.bench
	nkeys = n
	for i = 0, n - 1 do
		local k = bench_key(i)
		keys[i + 1] = k
		if not cached then
			local ok, e = dict:safe_set(k, bench_value(i))
			if not ok then
				error("bench_nginx: lua_shared_dict set: " .. e)
			end
		end
	end
	-- the sample is read through a handle without a cache: the workers'
	-- caches start empty
	for i = 0, n - 1, 997 do
		local v = reg:get(keys[i + 1])
		if v ~= bench_value(i) or
		   (not cached and dict:get(keys[i + 1]) ~= v) then
			error("bench_nginx: entry " .. i .. " differs: "
			      .. tostring(v))
		end
	end
end

local pos = 0 -- this worker's place in the key walk

local function run(get)
	local n = tonumber(ngx.var.arg_n) or 1000
	local sum, p = 0, pos
	for _ = 1, n do
		p = (p + STRIDE) % nkeys
		local v = get(keys[p + 1])
		sum = sum + #v
	end
	pos = p
	if sum ~= n * 64 then
		ngx.status = 500
		ngx.say("bad values: ", sum, " bytes, want ", n * 64)
		return
	end
	ngx.say(sum)
end

local function shmreg_get(k) return reg:get(k) end
local function cached_get(k) return cached:get(k) end
local function dict_get(k) return dict:get(k) end
local VALUE64 = string.rep("v", 64)
local function noop_get(k) return k and VALUE64 end
local function lookup_get(k)
	return reg.lib.shmreg_lua_get(reg.h, k, #k, nil, 0, nil) == 64 and
		VALUE64 or nil
end

function _M.shmreg() run(shmreg_get) end
function _M.cached() run(cached_get) end
function _M.dict() run(dict_get) end
function _M.noop() run(noop_get) end
function _M.lookup() run(lookup_get) end

return _M
