-- SPDX-License-Identifier: MIT
-- shmreg_example.lua - the handlers of the OpenResty example: values,
-- listings and attribute lookups served from a shmreg registry that the
-- nginx master opened in init_by_lua (nginx.conf.in).

local shmreg = require("resty.shmreg")

local _M = {}
local reg  -- the master's handle, inherited by every worker

-- init_by_lua: fail the nginx start when the registry cannot be opened,
-- rather than serve errors from every worker.  The handle caches up to
-- 10,000 value strings in each worker (each get checks the entry's
-- mod_rev, so a changed value is read fresh): a hot key costs its lookup
-- and no new string.
function _M.init(name)
	local err
	reg, err = shmreg.open(name, { cache = 10000 })
	if not reg then
		error("shmreg_example: " .. err)
	end
end

-- GET /v/KEY
function _M.value()
	local key = ngx.var.uri:sub(4)
	ngx.header["X-Worker-Pid"] = ngx.worker.pid()
	local v, err = reg:get(key)
	if not v then
		ngx.status = err == "not found" and 404 or 500
		ngx.say(err)
		return
	end
	local info = reg:info(key)
	if info then
		-- a second read: the value may have changed in between, so this
		-- is the entry's revision as of a moment later
		ngx.header["X-Mod-Rev"] = info.mod_rev
	end
	ngx.print(v)
end

local function say_sorted(entries)
	table.sort(entries, function(a, b) return a.key < b.key end)
	for _, e in ipairs(entries) do
		ngx.say(e.key, "=", e.value)
	end
end

-- GET /list?prefix=P (at most 1000 entries; the walk is bounded so one
-- request cannot hold the worker's event loop for long)
function _M.list()
	local entries, err = reg:list(ngx.var.arg_prefix or "", 1000)
	if not entries then
		ngx.status = 500
		ngx.say(err)
		return
	end
	say_sorted(entries)
end

-- GET /find?name=value&name=value
function _M.find()
	local pairs_ = {}
	for name, value in pairs(ngx.req.get_uri_args(16)) do
		if type(value) == "table" then -- a repeated name
			for _, v in ipairs(value) do
				pairs_[#pairs_ + 1] = { name, v }
			end
		elseif type(value) == "string" then
			pairs_[#pairs_ + 1] = { name, value }
		end
	end
	local entries, err = reg:find(pairs_, 1000)
	if not entries then
		ngx.status = 400
		ngx.say(err)
		return
	end
	say_sorted(entries)
end

return _M
