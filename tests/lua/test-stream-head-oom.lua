-- spool stream:head() allocated its request, then took the stream's registry
-- reference: refused (it may grow the registry: out of memory, a rule's
-- memory budget), the request leaked (LeakSanitizer says so at exit, under
-- make asan: this test's check).  Now the reference comes first.
--
-- The registry's free list is emptied before each call, so the reference is
-- a new integer key appended to the array part; the calls go on until one
-- needs the array to grow, refused by a rule limit with a little room.
local tap = require "tap"
local mh = require "mailhook"
local core = mh.core

local reg = debug.getregistry()
local FREELIST = 3         -- lauxlib's free-list slot (LUA_RIDX_LAST + 1), Lua 5.4.3+
local ROOM = 1536          -- bytes left under the limit: the rule's machinery fits
local filler = string.rep("x", 1 << 20)   -- the limit must be at least 1 MB: the heap made that big
local NOFD = 987654        -- no such fd: a head that goes through fails at its read, at once

tap.test("stream:head() refused its reference: nothing leaks, the stream is usable after", function(t)
  assert(core.spool and #filler > 0)   -- core.spool opened now, outside the budget; the filler held
  local refused, went
  for _ = 1, 5000 do
    local s = core.spool.stream(NOFD)
    reg[FREELIST] = 0      -- no free slot: luaL_ref appends
    collectgarbage()
    collectgarbage("stop")
    core.budget_limits { memory = core.heap() + ROOM }
    local ok, err = core.rule_call("stream-head-oom", function() return s:head() end)
    core.budget_limits { memory = 128 * 1048576 }
    collectgarbage("restart")
    if not ok then refused = { err = err, s = s }; break end
    went = true
    s:close()
  end
  t:ok(went, "head() goes through while the registry has room")
  t:like(refused and refused.err or "", "memory limit", "then a head() is refused by the memory budget (its reference)")
  -- the refused call left the stream as it was (not busy): its head is read now
  -- (and fails at once: no such fd); the request the refused call allocated is
  -- what LeakSanitizer reported at exit
  if refused then
    local head, err = refused.s:head()
    t:ok(head == nil and tostring(err):find("Bad file descriptor", 1, true),
         "the refused stream is not left busy: head() runs (its read fails, no such fd)", err)
    refused.s:close()
  end
end)

return tap.done()
