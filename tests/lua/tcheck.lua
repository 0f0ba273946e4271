-- SPDX-License-Identifier: MIT
-- tcheck.lua - the check helpers of the Lua tests run inside nginx
-- (t_module.lua, t_cache.lua): each failed check prints one line, and
-- finish() prints the last line, "ok N" or "FAILED F of N", and starts
-- the count again for the next request.

local _M = {}

local checks, fails = 0, 0

function _M.check(cond, what, ...)
	checks = checks + 1
	if not cond then
		fails = fails + 1
		local parts = {}
		for i = 1, select("#", ...) do
			parts[i] = tostring((select(i, ...)))
		end
		ngx.say("FAIL: ", what, ": ", table.concat(parts, " "))
	end
end

function _M.eq(got, want, what)
	_M.check(got == want, what, "got", tostring(got), "want", tostring(want))
end

-- true when msg contains every string given
function _M.has(msg, ...)
	if type(msg) ~= "string" then
		return false
	end
	for _, s in ipairs({ ... }) do
		if not msg:find(s, 1, true) then
			return false
		end
	end
	return true
end

-- 10,000 gets of one key leave the Lua heap as it was, compiled and
-- interpreted alike.  Compiling a trace allocates (once), so the bound is
-- below one byte a get: any allocation per call (a boxed 64-bit return
-- is 16 bytes) is far above.
local function gets(reg, key, n)
	local v
	for _ = 1, n do
		v = reg:get(key)
	end
	return v
end

local function heap_growth(reg, key)
	gets(reg, key, 10000)
	collectgarbage("collect")
	collectgarbage("stop")
	local before = collectgarbage("count")
	local v = gets(reg, key, 10000)
	local grew = (collectgarbage("count") - before) * 1024
	collectgarbage("restart")
	return grew, v
end

-- Check that @reg:get(@key), which returns @want, allocates nothing.
function _M.no_alloc(reg, key, want, what)
	local grew, v = heap_growth(reg, key)
	_M.eq(v, want, what .. " in the allocation loop")
	_M.check(grew < 10000, "10,000 compiled " .. what .. "s allocated",
		 grew, "bytes")
	jit.off()
	jit.flush()
	grew = heap_growth(reg, key)
	jit.on()
	_M.check(grew < 10000, "10,000 interpreted " .. what .. "s allocated",
		 grew, "bytes")
end

function _M.finish()
	if fails == 0 then
		ngx.say("ok ", checks)
	else
		ngx.say("FAILED ", fails, " of ", checks)
	end
	checks, fails = 0, 0
end

return _M
