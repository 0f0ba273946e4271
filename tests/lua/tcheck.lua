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

function _M.finish()
	if fails == 0 then
		ngx.say("ok ", checks)
	else
		ngx.say("FAILED ", fails, " of ", checks)
	end
	checks, fails = 0, 0
end

return _M
