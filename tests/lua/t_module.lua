-- SPDX-License-Identifier: MIT
-- t_module.lua - the checks of tests/lua/lua_module.sh, run inside an
-- nginx worker (GET /t): every call of resty.shmreg against the registry
-- the script filled through shmregd.  Prints one line per failure and a
-- last line "ok N" or "FAILED F of N".

local _M = {}

local tcheck = require("tcheck")
local check, eq, has = tcheck.check, tcheck.eq, tcheck.has

local function by_key(entries)
	local m = {}
	for _, e in ipairs(entries) do
		m[e.key] = e.value
	end
	return m
end

local function count(t)
	local n = 0
	for _ in pairs(t) do
		n = n + 1
	end
	return n
end

local function t_get(reg, args)
	eq(reg:get("svc/db"), "10.0.0.7:5432", "get svc/db")
	local v, err = reg:get("no/such/key")
	eq(v, nil, "get absent: value")
	eq(err, "not found", "get absent: message")
	eq(reg:get("empty"), "", "get of an empty value")
	eq(reg:get("bin"), "a\0b\255", "get keeps NUL and high bytes")
	-- larger than the 4096-byte buffer: the buffer grows, the value is whole
	local big = reg:get("big")
	eq(#big, tonumber(args.biglen), "big value length")
	eq(big, string.rep("0123456789", tonumber(args.biglen) / 10),
	   "big value contents")
	eq(reg:get("svc/db"), "10.0.0.7:5432", "get after the buffer grew")
	v, err = reg:get("")
	check(v == nil and has(err, "shmreg_get: EINVAL", "Invalid argument"),
	      "empty key", err)
	v, err = reg:get(string.rep("k", 1025))
	check(v == nil and has(err, "shmreg_get: E2BIG"), "1025-byte key", err)
	local ok, e = pcall(reg.get, reg, 42)
	check(not ok and has(e, "the key must be a string, not number"),
	      "number key raises", e)
end

-- A get allocates nothing but its string, and a string already interned
-- (the same value again) costs nothing either (tcheck.no_alloc).
local function t_no_alloc(reg)
	tcheck.no_alloc(reg, "svc/db", "10.0.0.7:5432", "get")
end

local function t_info(reg, args)
	local i = reg:info("svc/db")
	check(i and i.mod_rev >= 1 and i.create_rev >= 1 and
	      i.create_rev <= i.mod_rev, "info revs", i and i.mod_rev,
	      i and i.create_rev)
	eq(i and i.owner_pid, 0, "info svc/db owner")
	eq(i and i.expires_at_ns, 0, "info svc/db expiry")
	eq(i and i.vlen, 13, "info svc/db vlen")
	eq(i and i.ephemeral, false, "info svc/db ephemeral")
	i = reg:info("owned")
	eq(i and i.owner_pid, tonumber(args.owner), "info owned: owner_pid")
	i = reg:info("ttl")
	local now = ngx.now() * 1e9
	check(i and i.expires_at_ns > now + 3500e9 and
	      i.expires_at_ns < now + 3700e9, "info ttl: expires_at_ns",
	      i and i.expires_at_ns, now)
	local v, err = reg:info("no/such/key")
	check(v == nil and err == "not found", "info absent", err)
	i = reg:info("rev/probe")
	check(i and reg:revision() >= i.mod_rev, "revision >= a mod_rev",
	      reg:revision(), i and i.mod_rev)
	eq(reg:revision(), tonumber(args.rev), "revision as the script saw it")
end

local function t_list(reg)
	local all, more = reg:list("many/", math.huge)
	eq(#all, 20, "list many/: count")
	eq(more, false, "list many/: not stopped")
	local m = by_key(all)
	eq(count(m), 20, "list many/: distinct keys")
	eq(m["many/07"], "value 07", "list many/07 value")
	local some
	some, more = reg:list("many/", 5)
	eq(#some, 5, "list max 5: count")
	eq(more, true, "list max 5: stopped at max")
	for _, e in ipairs(some) do
		eq(m[e.key], e.value, "list max 5: " .. e.key)
	end
	some, more = reg:list("many/", 0)
	check(#some == 0 and more == false, "list max 0")
	eq(#reg:list("nothing/"), 0, "list of an absent prefix")
	local everything = reg:list(nil, math.huge)
	eq(#everything, tonumber(ngx.var.arg_total), "list of everything")
	local ok, e = pcall(reg.list, reg, "x", -1)
	check(not ok and has(e, "max must be a number >= 0"), "list max -1", e)
	ok, e = pcall(reg.list, reg, 5)
	check(not ok and has(e, "list: the prefix must be a string, not number"),
	      "list of a number", e)
end

local function t_find_children_attrs(reg)
	local db = by_key(reg:find({ role = "db" }))
	eq(count(db), 1, "find role=db: count")
	eq(db["svc/db"], "10.0.0.7:5432", "find role=db: value")
	local a = by_key(reg:find({ node = "a" }))
	check(count(a) == 2 and a["svc/db"] and a["svc/cache"], "find node=a")
	-- a list of pairs, with a repeated name: AND over both
	local gpu = by_key(reg:find({ { "cap", "gpu" }, { "cap", "inference" } }))
	check(count(gpu) == 1 and gpu["svc/ml"] == "ml", "find cap=gpu,inference",
	      count(gpu))
	eq(#reg:find({ role = "db", node = "b" }), 0, "find with no match")
	local one, more = reg:find({ node = "a" }, 1)
	check(#one == 1 and more == true, "find max 1")
	local v, err = reg:find({})
	check(v == nil and has(err, "EINVAL"), "find {}", err)
	local many = {}
	for i = 1, 17 do
		many[i] = { "n" .. i, "v" }
	end
	v, err = reg:find(many)
	check(v == nil and has(err, "E2BIG"), "find 17 pairs", err)
	local ok, e = pcall(reg.find, reg, { role = 1 })
	check(not ok and has(e, "names and values are strings"), "find number", e)
	ok, e = pcall(reg.find, reg, { role = "d\0b" })
	check(not ok and has(e, "NUL byte"), "find NUL", e)
	v, err = reg:find({ [string.rep("n", 65)] = "x" })
	check(v == nil and has(err, "shmreg_find: E2BIG"), "find long name", err)

	local kids = by_key(reg:children("app"))
	check(count(kids) == 2 and kids["app/x"] == "x" and kids["app/y"] == "y",
	      "children app", count(kids))
	eq(#reg:children("app/x"), 0, "children of a leaf")
	eq(#reg:children("no/such/key"), 0, "children of an absent key")

	local at = reg:attrs("svc/ml")
	check(at and #at == 3, "attrs svc/ml: count", at and #at)
	if at and #at == 3 then
		check(at[1][1] == "cap" and at[1][2] == "gpu" and
		      at[2][1] == "cap" and at[2][2] == "inference" and
		      at[3][1] == "role" and at[3][2] == "ml", "attrs svc/ml: order")
		-- what attrs() gives, find() takes
		eq(by_key(reg:find(at))["svc/ml"], "ml", "find(attrs(key))")
	end
	eq(#reg:attrs("many/01"), 0, "attrs of an entry without any")
	v, err = reg:attrs("no/such/key")
	check(v == nil and err == "not found", "attrs absent", err)
end

local function t_open(reg, open_err, buildlib)
	local shmreg = require("resty.shmreg")
	check(reg ~= nil, "open in init_by_lua", open_err)
	local r, err = shmreg.open("no-such-registry")
	check(r == nil and has(err, "shmreg_open no-such-registry: ENOENT",
			       "No such file or directory"), "open absent", err)
	r, err = shmreg.open("bad/name")
	check(r == nil and has(err, "EINVAL"), "open bad name", err)
	r, err = shmreg.open("")
	check(r == nil and has(err, "non-empty string"), "open empty", err)
	r, err = shmreg.open(reg.name, { lib = "/nonexistent/libshmreg.so.0.1" })
	check(r == nil and has(err, "cannot load /nonexistent/libshmreg.so.0.1"),
	      "open with a missing library", err)
	-- an explicit path, and a handle opened in the worker itself
	r, err = shmreg.open(reg.name, { lib = buildlib .. "/" .. shmreg.SONAME })
	check(r ~= nil, "open with the build's library", err)
	if r then
		eq(r:get("svc/db"), "10.0.0.7:5432", "get through a worker's handle")
		r:close()
		r:close() -- twice is harmless
		local ok, e = pcall(r.get, r, "svc/db")
		check(not ok and has(e, "was closed"), "get after close", e)
	end
end

function _M.run(reg, open_err, buildlib)
	local args = ngx.req.get_uri_args()
	t_open(reg, open_err, buildlib)
	if reg then
		t_get(reg, args)
		t_no_alloc(reg)
		t_info(reg, args)
		t_list(reg)
		t_find_children_attrs(reg)
	end
	tcheck.finish()
end

return _M
