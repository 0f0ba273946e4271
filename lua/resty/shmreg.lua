-- SPDX-License-Identifier: MIT
-- resty.shmreg - read a shmreg registry from LuaJIT (nginx with the Lua
-- module, OpenResty) through the FFI.
--
--   init_by_lua_block { reg = require("resty.shmreg").open("services") }
--   content_by_lua_block { ngx.say(reg:get("svc/db") or "absent") }
--
-- Open the registry in init_by_lua* (the master, before fork): the handle
-- is a read-only mapping that every worker inherits and uses as it is
-- (readers hold no per-reader slot, lock or registration).  Every call is
-- lock-free and returns at once: nothing here waits for the writer, so no
-- call blocks a worker's event loop.  There is no await or watch in this
-- API for that reason.
--
-- Memory: each Lua VM (one per worker) has one value buffer, grown when a
-- value is larger, and one info struct; a get allocates nothing but the
-- Lua string it returns.  open(name, {cache = N}) adds a bounded cache
-- of those strings to the handle, validated by the entry's mod_rev on
-- every get ("The value cache" below).  list/find/children build their result tables
-- and are the slower calls (see "Callbacks" below and docs/lua.md).

local ffi = require("ffi")
local C = ffi.C
local bit = require("bit")

local _M = { _VERSION = "0.1" }

-- The ABI these declarations describe is libshmreg's 0.1 (its soname is
-- libshmreg.so.0.1: 0.x minors may change the ABI, so the soname carries
-- MAJOR.MINOR).  Loading by soname, not by the development symlink
-- libshmreg.so, keeps a runtime-only install working and never binds
-- these declarations to another ABI.  tests/lua checks it against the
-- library the build produces.
_M.SONAME = "libshmreg.so.0.1"

-- Declared once per VM: ffi.cdef refuses a redefinition, and the module
-- may be loaded again (lua_code_cache off, or package.loaded cleared).
if not pcall(ffi.typeof, "shmreg_info_t") then
	ffi.cdef[[
typedef struct shmreg shmreg_t;
typedef struct shmreg_info {
	uint64_t mod_rev;
	uint64_t create_rev;
	int64_t  expires_at_ns;
	int      owner_pid;
	uint32_t flags;
	uint32_t vlen;
} shmreg_info_t;
typedef struct shmreg_attr {
	const char *name;
	const char *value;
} shmreg_attr_t;
typedef int (*shmreg_list_fn)(const void *key, size_t klen,
			      const void *val, size_t vlen,
			      const shmreg_info_t *info, void *arg);

int      shmreg_open(const char *name, int flags, shmreg_t **out);
void     shmreg_close(shmreg_t *r);
uint64_t shmreg_revision(shmreg_t *r);
/*
 * shmreg_get and shmreg_get_attrs return ssize_t.  They are declared here
 * under other names returning int (same symbol, through asm labels): the
 * interpreter boxes every 64-bit integer it gets from C into a cdata
 * object, an allocation per call, while an int becomes a plain number.
 * Reading the low 32 bits of the 64-bit return register is what the
 * x86-64 and AArch64 calling conventions define for this, and the values
 * fit: a length is at most SHMREG_VALUE_MAX (16 MiB) or the attributes'
 * few KiB, an error a small negative errno.
 */
int shmreg_lua_get(shmreg_t *r, const char *key, size_t klen, void *buf,
		   size_t cap, shmreg_info_t *info) __asm__("shmreg_get");
int shmreg_lua_get_attrs(shmreg_t *r, const char *key, size_t klen,
			 void *buf, size_t cap) __asm__("shmreg_get_attrs");
int shmreg_stable_revision(shmreg_t *r, uint64_t *rev);
int64_t shmreg_list(shmreg_t *r, const void *prefix, size_t plen,
		    shmreg_list_fn fn, void *arg);
int64_t shmreg_find(shmreg_t *r, const shmreg_attr_t *match,
		    unsigned nmatch, shmreg_list_fn fn, void *arg);
int64_t shmreg_children(shmreg_t *r, const void *key, size_t klen,
			shmreg_list_fn fn, void *arg);
]]
end
-- libc, one declaration at a time: another module (resty.core, ...) may
-- have declared some of them already, and a second declaration is refused.
for _, decl in ipairs({
	"const char *strerrorname_np(int errnum);", -- glibc >= 2.32
	"char *strerror(int errnum);",
	"void *memchr(const void *s, int c, size_t n);",
}) do
	pcall(ffi.cdef, decl)
end

local ENOENT = 2           -- the same number on every Linux architecture
local ATTRS_MAX = 16       -- SHMREG_ATTRS_MAX
local VALUE_MAX = 16 * 1024 * 1024 -- SHMREG_VALUE_MAX
-- all of an entry's "name\0value\0" pairs: SHMREG_ATTRS_MAX of the
-- longest (SHMREG_ATTR_NAME_MAX 64, SHMREG_ATTR_VALUE_MAX 256)
local ATTRS_BYTES_MAX = ATTRS_MAX * (64 + 1 + 256 + 1)
local SHMREG_EPHEMERAL = 1

-- "EPROTO (Protocol error)": glibc >= 2.32 names errnos itself, so no
-- table of architecture-dependent numbers lives here.
local function errmsg(what, ret)
	local e = -tonumber(ret)
	local ok, name = pcall(C.strerrorname_np, e)
	name = (ok and name ~= nil) and ffi.string(name) or ("errno " .. e)
	return what .. ": " .. name .. " (" .. ffi.string(C.strerror(e)) .. ")"
end

-- Load libshmreg: @path when given (a file name, or a path), else the
-- soname through the dynamic linker's search (LD_LIBRARY_PATH, the
-- ld.so cache, the default directories).  Returns ffi.load's namespace,
-- or nil and a message.  The dynamic linker loads one copy however often
-- this is called; each handle keeps the namespace it was opened with.
function _M.load(path)
	local ok, l = pcall(ffi.load, path or _M.SONAME)
	if not ok then
		return nil, "resty.shmreg: cannot load " .. (path or _M.SONAME)
			.. ": " .. tostring(l)
	end
	return l
end

-- The value buffer of this VM (this worker), and its info struct.  Grown,
-- never shrunk: a worker that once read a large value keeps the room.
local buf_cap = 4096
local buf = ffi.new("uint8_t[?]", buf_cap)
local info = ffi.new("shmreg_info_t[1]")

local function grow(need)
	local cap = buf_cap
	while cap < need do
		cap = cap * 2
	end
	buf = ffi.new("uint8_t[?]", cap)
	buf_cap = cap
end

-- 64-bit numbers the FFI fills in, read as two 32-bit words: plain Lua
-- numbers (a uint64_t read through the FFI is a boxed cdata, an
-- allocation in the interpreter).  Which word comes first is the byte
-- order's.  hi * 2^32 + lo is exact in a double below 2^53: a larger
-- revision (never, short of 9e15 commits) turns the cache off for that
-- get (u64 returns nil).
local LO, HI = 0, 1
if not ffi.abi("le") then
	LO, HI = 1, 0
end
local HI_EXACT = 2 ^ 21

local function u64(w, at)
	local hi = w[at + HI]
	if hi >= HI_EXACT then
		return nil
	end
	return hi * 4294967296 + w[at + LO]
end

-- the info struct as words: mod_rev at word 0, expires_at_ns at word 4
local info_w = ffi.cast("const uint32_t *", info)
-- the revision shmreg_stable_revision stores
local rev_buf = ffi.new("uint64_t[1]")
local rev_w = ffi.cast("const uint32_t *", rev_buf)

--[[ The value cache (opts.cache): Lua strings of this handle's values,
each with a stamp: the registry's revision R at a moment when the value
was known to be current, negated for an entry that has an expiry.

Why it is exact.  A get first reads the registry's revision and whether
a commit is being applied (shmreg_stable_revision: two header words, no
lookup).  Every change to an entry takes a new revision and is visible
only while its commit is being applied or once its revision is, so when
no commit is being applied and the revision is still the entry's stamp,
nothing has changed since the value was current: the cached string is
the value (Lua strings are immutable: returning the same one again is
returning that value).  Otherwise the get looks the key up without
copying the value (shmreg_get with no buffer) for its mod_rev: a value
changed after the stamp was taken has a mod_rev above it, so a mod_rev
at or below the stamp means unchanged, and the stamp moves up to the
revision this get read.  An entry with an expiry never takes the first
path (it expires with no commit; the lookup says -ENOENT then).  Anything
else (a higher mod_rev, -ENOENT for an absent or expired key, an error)
takes the path of a get without the cache, which copies the value and
reads its mod_rev and expiry in one validated read.

Why it is per handle.  All of this compares revisions of one handle, and
a handle's revisions never go back (docs/guarantees.md): it follows only
a segment that a writer retired, and every writer that retires one
continues its revisions (growth, compaction, takeover, truncation,
persistence).  A handoff keeps the entries at their revisions, so the
cache stays valid across it.  A registry removed and created again
starts its revisions again, but an old handle never moves to it (it
keeps reading the removed file, as libshmreg does without a cache), and a
new handle starts with an empty cache.

Bounds.  At most max entries and max_bytes bytes of keys and values; an
entry larger than an eighth of max_bytes is not cached.  When an insert
would pass a bound, the whole cache is cleared first: eviction costs
nothing per hit (no LRU list to relink) and a full clear once per max
misses.  The cache lives in each worker's Lua VM: a handle opened in
init_by_lua gives every worker its own copy, filled by its own gets. ]]

-- table.clear keeps the table's hash part (no rehash when it fills again);
-- LuaJIT 2.1 has it, another VM gets new tables.
local ok_clear, table_clear = pcall(require, "table.clear")
if not ok_clear then
	table_clear = nil
end

local function cache_new(max, max_bytes)
	return { vals = {}, stamps = {}, n = 0, bytes = 0, max = max,
		 max_bytes = max_bytes, entry_max = math.floor(max_bytes / 8),
		 hits = 0, misses = 0, clears = 0 }
end

local function cache_clear(c)
	if table_clear then
		table_clear(c.vals)
		table_clear(c.stamps)
	else
		c.vals, c.stamps = {}, {}
	end
	c.n, c.bytes = 0, 0
	c.clears = c.clears + 1
end

-- Remember @v as @key's value, with @stamp.
local function cache_put(c, key, v, stamp)
	local size = #key + #v
	if size > c.entry_max then
		return
	end
	local old = c.vals[key]
	local n, bytes = c.n, c.bytes + size
	if old then
		bytes = bytes - #key - #old
	else
		n = n + 1
	end
	if n > c.max or bytes > c.max_bytes then
		cache_clear(c)
		n, bytes = 1, size
	end
	c.vals[key], c.stamps[key] = v, stamp
	c.n, c.bytes = n, bytes
end

local Registry = {}
Registry.__index = Registry

-- Open registry @name (a name, resolved as libshmreg does: the file
-- $SHMREG_DIR/shmreg.NAME or /dev/shm/shmreg.NAME; or an absolute path).
-- @opts (optional): lib = path of libshmreg to load instead of the soname;
-- cache = N, the most entries of the value cache (nil, false or 0: no
-- cache, the default); cache_bytes = B, the most key and value bytes it
-- holds (default N * 256).
-- Returns the handle, or nil and a message.

-- A whole number >= @min, or nil.
local function count_opt(v, min)
	if type(v) == "number" and v >= min and v == math.floor(v)
	   and v < 2 ^ 53 then
		return v
	end
	return nil
end

-- The cache opts.cache and opts.cache_bytes ask for: a cache, false for
-- none, or nil and a message.
local function cache_opts(opts)
	local max = opts and opts.cache
	if max == nil or max == false or max == 0 then
		return false
	end
	if not count_opt(max, 1) then
		return nil, "resty.shmreg.open: opts.cache must be a whole number "
			.. ">= 0 (entries), not " .. tostring(max)
	end
	local bytes = opts.cache_bytes
	if bytes == nil then
		bytes = max * 256
	elseif not count_opt(bytes, 1) then
		return nil, "resty.shmreg.open: opts.cache_bytes must be a whole "
			.. "number >= 1, not " .. tostring(bytes)
	end
	return cache_new(max, bytes)
end

function _M.open(name, opts)
	if type(name) ~= "string" or name == "" then
		return nil, "resty.shmreg.open: the name must be a non-empty string"
	end
	local cache, cerr = cache_opts(opts)
	if cache == nil then
		return nil, cerr
	end
	local l, err = _M.load(opts and opts.lib)
	if not l then
		return nil, err
	end
	if cache and not pcall(function() return l.shmreg_stable_revision end) then
		return nil, "resty.shmreg.open: the cache needs a libshmreg with "
			.. "shmreg_stable_revision"
	end
	local out = ffi.new("shmreg_t *[1]")
	local ret = l.shmreg_open(name, 0, out)
	if ret < 0 then
		return nil, errmsg("shmreg_open " .. name, ret)
	end
	-- The master's VM closes its handle when it is collected (an nginx
	-- reload makes a new VM); workers hold their own copies of the
	-- mapping, unaffected.
	return setmetatable({ h = ffi.gc(out[0], l.shmreg_close), lib = l,
			      name = name, cache = cache }, Registry)
end

local function handle(self)
	local h = self.h
	if h == nil then
		error("resty.shmreg: the registry " .. tostring(self.name)
		      .. " was closed", 3)
	end
	return h
end

local function check_key(key, what, noun)
	if type(key) ~= "string" then
		error("resty.shmreg " .. what .. ": the " .. (noun or "key")
		      .. " must be a string, not " .. type(key), 3)
	end
end

-- Unmap now instead of when collected.  Further calls raise an error.
function Registry:close()
	local h = self.h
	if h ~= nil then
		self.h = nil
		self.cache = false -- its strings are garbage now
		self.lib.shmreg_close(ffi.gc(h, nil))
	end
end

-- Copy @key's value into the buffer, growing it when the value is larger
-- (shmreg_get returns the full length even when it exceeds the room it
-- was given).  The value may grow again between two reads; each retry
-- grows the buffer to the length just seen, and a value has at most
-- VALUE_MAX bytes, so the loop ends after at most log2(VALUE_MAX/4096)+1
-- rounds however the writer behaves.
local function read(lib, h, key, inf)
	local n = lib.shmreg_lua_get(h, key, #key, buf, buf_cap, inf)
	while n > buf_cap do
		if n > VALUE_MAX then
			return -7 -- -E2BIG: not a length libshmreg returns
		end
		grow(n)
		n = lib.shmreg_lua_get(h, key, #key, buf, buf_cap, inf)
	end
	return n
end

-- What a get returns for the length or error @n read() returned.
local function get_result(n)
	if n >= 0 then
		return ffi.string(buf, n)
	end
	if n == -ENOENT then
		return nil, "not found"
	end
	return nil, errmsg("shmreg_get", n)
end

-- A get through the value cache @c (see "The value cache" above).
local function cached_get(lib, c, h, key)
	-- The cache's two table entries are read first: each is a cache miss
	-- in a large Lua heap, and issued before the C call they overlap
	-- with its misses instead of adding to them (nothing changes the
	-- cache during the call).
	local v, stamp = c.vals[key], c.stamps[key]
	local settled = lib.shmreg_stable_revision(h, rev_buf) == 0
	local now = u64(rev_w, 0)
	if not now or now == 0 then
		return get_result(read(lib, h, key, nil)) -- no revision to stamp
	end
	if stamp == now and settled then
		c.hits = c.hits + 1
		return v
	end
	local n
	if stamp then
		n = lib.shmreg_lua_get(h, key, #key, nil, 0, info)
		if n >= 0 then
			local m = u64(info_w, 0)
			if m and m <= (stamp > 0 and stamp or -stamp) then
				c.stamps[key] = stamp > 0 and now or -now
				c.hits = c.hits + 1
				return v
			end
		elseif n == -ENOENT then
			return nil, "not found"
		end
	end
	-- not cached, changed since, or an error: the uncached get
	c.misses = c.misses + 1
	n = read(lib, h, key, info)
	if n < 0 then
		return get_result(n)
	end
	v = ffi.string(buf, n)
	-- expires_at_ns, words 4 and 5: 0 is never
	if info_w[4] == 0 and info_w[5] == 0 then
		cache_put(c, key, v, now)
	else
		cache_put(c, key, v, -now)
	end
	return v
end

-- The value of @key as a Lua string; nil, "not found" when absent; nil and
-- "shmreg_get: EAGAIN (...)" on another error (see shmreg_get(3)).
function Registry:get(key)
	local h = handle(self)
	check_key(key, "get")
	local c = self.cache
	if c then
		return cached_get(self.lib, c, h, key)
	end
	return get_result(read(self.lib, h, key, nil))
end

-- The value cache's figures: {entries, bytes, hits, misses, clears,
-- max_entries, max_bytes}, or nil when the handle has no cache.
function Registry:cache_stats()
	handle(self)
	local c = self.cache
	if not c then
		return nil
	end
	return { entries = c.n, bytes = c.bytes, hits = c.hits,
		 misses = c.misses, clears = c.clears, max_entries = c.max,
		 max_bytes = c.max_bytes }
end

-- What the registry records about @key, as a table {mod_rev, create_rev,
-- owner_pid, expires_at_ns, vlen, ephemeral}, or nil, "not found".
-- Numbers are Lua numbers: exact for revisions and pids; expires_at_ns
-- (CLOCK_REALTIME ns, 0 = never) is exact to 256 ns, a double's grain at
-- today's ~1.8e18.
function Registry:info(key)
	local h = handle(self)
	check_key(key, "info")
	local n = self.lib.shmreg_lua_get(h, key, #key, nil, 0, info)
	if n < 0 then
		if n == -ENOENT then
			return nil, "not found"
		end
		return nil, errmsg("shmreg_get", n)
	end
	local i = info[0]
	return {
		mod_rev = tonumber(i.mod_rev),
		create_rev = tonumber(i.create_rev),
		owner_pid = tonumber(i.owner_pid),
		expires_at_ns = tonumber(i.expires_at_ns),
		vlen = tonumber(i.vlen),
		ephemeral = bit.band(i.flags, SHMREG_EPHEMERAL) ~= 0,
	}
end

-- The registry's revision (+1 per committed change), a Lua number.
function Registry:revision()
	return tonumber(self.lib.shmreg_revision(handle(self)))
end

-- The attributes of @key as a list of {name, value} pairs in the order
-- they were put (the shape find() takes); {} for none; nil, "not found".
function Registry:attrs(key)
	local h = handle(self)
	check_key(key, "attrs")
	local lib = self.lib
	local n = lib.shmreg_lua_get_attrs(h, key, #key, buf, buf_cap)
	while n > buf_cap do
		if n > ATTRS_BYTES_MAX then
			return nil, "shmreg_get_attrs: EPROTO (attributes too long)"
		end
		grow(n)
		n = lib.shmreg_lua_get_attrs(h, key, #key, buf, buf_cap)
	end
	if n < 0 then
		if n == -ENOENT then
			return nil, "not found"
		end
		return nil, errmsg("shmreg_get_attrs", n)
	end
	-- "name\0value\0" pairs; every scan is bounded by the n bytes copied
	-- (memchr, not strlen), whatever the bytes are.
	local out, pos, pair = {}, 0, {}
	while pos < n do
		local p = C.memchr(buf + pos, 0, n - pos)
		if p == nil then
			return nil, "shmreg_get_attrs: EPROTO (unterminated attribute)"
		end
		local len = tonumber(ffi.cast("uint8_t *", p) - (buf + pos))
		pair[#pair + 1] = ffi.string(buf + pos, len)
		pos = pos + len + 1
		if #pair == 2 then
			out[#out + 1] = pair
			pair = {}
		end
	end
	if #pair ~= 0 then
		return nil, "shmreg_get_attrs: EPROTO (a name without a value)"
	end
	return out
end

-- Callbacks.  list, find and children report entries through a C
-- callback (shmreg_list_fn).  A LuaJIT callback costs a C-to-Lua
-- transition per entry (some hundreds of ns, several times a get) and
-- takes one of a few hundred callback slots for good: so there is one,
-- made here once per VM, and the walk it serves is described by the
-- upvalues below (a worker runs one Lua call at a time and the callback
-- never yields, so one walk at a time uses them).  A Lua error must not
-- unwind through libshmreg's frames (it would leak what the walk holds):
-- the callback catches it and aborts the walk with -ECANCELED, and the
-- error is raised again once libshmreg has returned.
local walk_out, walk_n, walk_max, walk_err

local function collect(k, kl, v, vl)
	walk_n = walk_n + 1
	walk_out[walk_n] = { key = ffi.string(k, kl), value = ffi.string(v, vl) }
	return walk_n >= walk_max and 1 or 0
end

local walk_cb = ffi.cast("shmreg_list_fn", function(k, kl, v, vl)
	local ok, ret = pcall(collect, k, kl, v, vl)
	if ok then
		return ret
	end
	walk_err = ret
	return -125 -- -ECANCELED
end)

-- Run one walk (@call is a libshmreg function taking fn, arg last) with at
-- most @max entries.  Returns the entry list and whether the walk stopped
-- at @max, or nil and a message.
local function walk(what, max, call, h, a1, a2)
	max = max or 1000
	if type(max) ~= "number" or max < 0 then
		error("resty.shmreg " .. what .. ": max must be a number >= 0", 3)
	end
	if max == 0 then
		return {}, false
	end
	walk_out, walk_n, walk_max, walk_err = {}, 0, max, nil
	local ret = call(h, a1, a2, walk_cb, nil)
	local out, n, err = walk_out, walk_n, walk_err
	walk_out, walk_err = nil, nil
	if err then
		error(err, 0)
	end
	if ret < 0 then
		return nil, errmsg(what, ret)
	end
	return out, n >= max
end
-- A C function that calls back into Lua must not be called from a JIT
-- trace ("bad callback"): walk runs interpreted, which also stops any trace
-- from going through it.
jit.off(walk)

-- The entries whose key starts with @prefix ("" or nil: all), at most @max
-- of them (default 1000; math.huge for no limit: the walk then grows with
-- the registry, in one go, inside the worker's event loop).  Returns a list
-- of {key = ..., value = ...} in no particular order, and true when it
-- stopped at @max (more may follow, or none: the walk ended there); or nil
-- and a message.
function Registry:list(prefix, max)
	local h = handle(self)
	prefix = prefix or ""
	check_key(prefix, "list", "prefix")
	return walk("shmreg_list", max, self.lib.shmreg_list, h, prefix, #prefix)
end

-- The direct children of @key, as list() reports them.
function Registry:children(key, max)
	local h = handle(self)
	check_key(key, "children")
	return walk("shmreg_children", max, self.lib.shmreg_children, h, key, #key)
end

-- The match array of find(): the pairs' strings are anchored by the
-- caller's table for the duration of the call.
local match = ffi.new("shmreg_attr_t[?]", ATTRS_MAX)

local function add_pair(n, name, value)
	if type(name) ~= "string" or type(value) ~= "string" then
		error("resty.shmreg find: attribute names and values are strings", 4)
	end
	if name:find("\0", 1, true) or value:find("\0", 1, true) then
		error("resty.shmreg find: an attribute holds a NUL byte", 4)
	end
	if n >= ATTRS_MAX then
		return nil
	end
	match[n].name, match[n].value = name, value
	return n + 1
end

-- Fill the match array from {name = value, ...} or {{name, value}, ...}.
-- Returns the count, or nil when there are more than ATTRS_MAX pairs.
local function fill_match(attrs)
	local n = 0
	if attrs[1] ~= nil then
		for _, p in ipairs(attrs) do
			if type(p) ~= "table" then
				error("resty.shmreg find: a list of {name, value} pairs", 3)
			end
			n = add_pair(n, p[1], p[2])
			if not n then
				return nil
			end
		end
	else
		for k, v in pairs(attrs) do
			n = add_pair(n, k, v)
			if not n then
				return nil
			end
		end
	end
	return n
end

-- The entries carrying every pair of @attrs (AND): a table
-- {name = value, ...} or a list of {name, value} pairs (a name may then
-- repeat).  At most @max (default 1000) entries, as list() reports them.
function Registry:find(attrs, max)
	local h = handle(self)
	if type(attrs) ~= "table" then
		error("resty.shmreg find: attrs must be a table", 2)
	end
	local n = fill_match(attrs)
	if not n then
		return nil, "shmreg_find: E2BIG (more than 16 pairs)"
	end
	if n == 0 then
		return nil, "shmreg_find: EINVAL (no pair to match)"
	end
	return walk("shmreg_find", max, self.lib.shmreg_find, h, match, n)
end

return _M
