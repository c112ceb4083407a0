-- A binding that starts a libuv handle and holds a Lua function for it must
-- take every registry reference (and pin) before the handle is in the loop:
-- luaL_ref and lua_rawsetp may grow the registry, and under a rule's memory
-- budget (runtime/l_sched.c budget_alloc) or out of memory that raises.
-- core.signal.on, the watches, mh.every, core.rstate.ticker and
-- core.http.listen took theirs after: a refused reference left a started
-- handle whose function was no function (a signal or a request: a Lua panic,
-- the process ended), or a running timer for a call that had failed, or a
-- userdata nothing held, collected while libuv still had its handles (their
-- close callbacks wrote to freed memory: AddressSanitizer says so).
--
-- Each case fills the registry's hash part until a new key's insertion must
-- grow it, then makes the call in a rule whose budget has room for the call's
-- own small allocations but not for that growth.  "ref": lauxlib's free list
-- is made to lead to a new key (an integer in the hash part, whose insertion
-- is checked to need the growth): the function's reference is refused.
-- "pin": the free list leads to an existing slot (no growth), and the pin that
-- follows the reference (a new key) is refused.
local tap = require "tap"
local mh = require "mailhook"
local core = mh.core

local reg = debug.getregistry()
local FREELIST = 3         -- lauxlib's free-list slot (LUA_RIDX_LAST + 1), Lua 5.4.3+
local ROOM = 1536          -- bytes left under the limit: the rule's machinery and a userdata fit
local filler              -- the limit must be at least 1 MB: the heap made that big

local PID = (function()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")   -- its first field
  f:close()
  return pid
end)()

-- fn() in a rule, its limit ROOM bytes above the heap now; the collector
-- left stopped with keep_stopped (nothing the rule left collected yet)
local function under_budget(fn, keep_stopped)
  filler = filler or string.rep("x", 1 << 20)
  collectgarbage()
  collectgarbage("stop")   -- no garbage an emergency collection could free to make room
  core.budget_limits { memory = core.heap() + ROOM }
  local r = table.pack(core.rule_call("handle-oom", fn))
  core.budget_limits { memory = 128 * 1048576 }
  if not keep_stopped then collectgarbage("restart") end
  return table.unpack(r, 1, r.n)
end

-- A new key's insertion needs the registry to grow, and a rule without one
-- fits in the budget
local function grows(key)
  return not under_budget(function() reg[key] = true end) and under_budget(function() return #reg end)
end

-- Fills the registry's hash part (string keys, dropped by unfill) until a new
-- key no longer fits in ROOM; true once there.
local fillers = 0
local function fill()
  for _ = 1, 20000 do
    fillers = fillers + 1
    local key = "handle-oom filler " .. fillers
    if grows(key) then return true end
    reg[key] = true
  end
  return false
end

local function unfill()
  for i = 1, fillers do reg["handle-oom filler " .. i] = nil end
end

-- the bindings opened now (first use registers their classes: new keys)
for _, name in ipairs { "signal", "maildrop", "rstate", "http" } do assert(core[name]) end
-- big enough that growing it takes kilobytes
for i = 1, 150 do reg["handle-oom base " .. i] = true end

-- fn() run under the budget with the registry full, until it is refused (in
-- "pin" mode the pin's key may find its place in the table free: the call went
-- through, and is tried again, with the allocator's state moved on).  right_after()
-- runs at once, the collector stopped: before the refused call's leftovers
-- can be collected.
local function refused(t, mode, fn, what, right_after)
  what = what and what .. " " .. mode or mode
  local keep = {}
  for try = 1, 100 do
    if not fill() then break end
    local old = reg[FREELIST]
    if mode == "ref" then
      local k = (1 << 30) + try            -- far past the array part (a hash key), an int
      while not grows(k) do k = k + 101 end
      reg[FREELIST] = k                    -- reg[k] is nil: luaL_ref sets it (new)
    else
      reg.handle_oom_slot = reg.handle_oom_slot or (1 << 30) - 1
      reg[reg.handle_oom_slot] = 0         -- an existing key, the free list's last
      reg[FREELIST] = reg.handle_oom_slot
    end
    local ok, got = under_budget(fn, true)
    reg[FREELIST] = old                    -- the state's own free list back
    if not ok then
      t:like(tostring(got), "memory limit", what .. ": the call is refused by the memory budget, said cleanly")
      unfill()
      if right_after then right_after() end
      collectgarbage("restart")
      -- the refused call's userdata collected, its memory freed, then the
      -- loop runs the close callbacks (of handles that should never have
      -- been made)
      collectgarbage()
      collectgarbage()
      mh.sleep(0.02)
      collectgarbage()
      return true
    end
    collectgarbage("restart")
    if got.stop then got:stop() else got:close() end
    keep[#keep + 1] = string.rep("k", 200 + try)   -- the next userdata elsewhere
  end
  unfill()
  return t:ok(false, what .. ": the call is refused by the memory budget", "no refusal in 100 tries")
end

-- waits (bounded) until cond() holds
local function until_(cond, secs)
  local t0 = mh.monotonic()
  while not cond() and mh.monotonic() - t0 < (secs or 5) do mh.sleep(0.01) end
  return cond()
end

tap.test("core.signal.on: a refused reference leaves no handle listening", function(t)
  for _, mode in ipairs { "ref" } do
    local dead = 0
    refused(t, mode, function() return core.signal.on("USR2", function() dead = dead + 1 end) end)
    local n = 0
    local h = core.signal.on("USR2", function() n = n + 1 end)
    assert(core.signal.kill(PID, "USR2"))
    t:ok(until_(function() return n == 1 end), mode .. ": a live handler gets the signal")
    mh.sleep(0.02)
    t:is(dead, 0, mode .. ": the refused one never runs (nor ends the process)")
    h:stop()
  end
end)

tap.test("watches: a refused reference or pin leaves no handle in the loop", function(t)
  local dir = os.tmpname()
  os.remove(dir)
  assert(core.rstate.mkdir(dir))
  for _, mode in ipairs { "ref", "pin" } do
    local dead = 0
    refused(t, mode, function() return core.maildrop.watch(dir, function() dead = dead + 1 end) end)
    local n = 0
    local w = assert(core.maildrop.watch(dir, function() n = n + 1 end))
    local f = assert(io.open(dir .. "/" .. mode, "w"))
    f:close()
    t:ok(until_(function() return n >= 1 end), mode .. ": a live watch sees the new file")
    mh.sleep(0.02)
    t:is(dead, 0, mode .. ": the refused one never runs")
    w:stop()
    os.remove(dir .. "/" .. mode)
  end
  os.remove(dir)
end)

tap.test("mh.every and core.rstate.ticker: a refused reference or pin leaves no timer", function(t)
  local makers = {
    every = function(fn) return core.every(0.01, fn) end,
    ticker = function(fn) return core.rstate.ticker(0.01, fn) end,
  }
  for _, what in ipairs { "every", "ticker" } do
    for _, mode in ipairs { "ref", "pin" } do
      local dead = 0
      -- a live timer of the same period ticks three times: the refused one would have too
      local function no_tick(when)
        local n = 0
        local h = makers[what](function() n = n + 1 end)
        t:ok(until_(function() return n >= 3 end), what .. " " .. mode .. ": a live timer ticks " .. when)
        h:stop()
        t:is(dead, 0, what .. " " .. mode .. ": the refused one never ticks " .. when)
      end
      refused(t, mode, function() return makers[what](function() dead = dead + 1 end) end, what,
              function() no_tick("at once") end)
      no_tick("once collected")
    end
  end
end)

tap.test("core.http.listen: a refused reference leaves no server listening", function(t)
  local probe = assert(core.http.listen { handler = function() end, host = "127.0.0.1", port = 0 })
  local _, port = probe:address()
  probe:close()
  -- one options table: its check is cached (core's table of checked options:
  -- a new one would be a new key there, refused before the server listens)
  local opts = { handler = function() end, host = "127.0.0.1", port = port }
  local function port_free(when)
    local srv, err = core.http.listen(opts)
    t:ok(srv, "the port is free " .. when .. " (the refused server is not listening)", err)
    if srv then srv:close() end
  end
  port_free("before")
  refused(t, "ref", function() return core.http.listen(opts) end, nil, function() port_free("at once") end)
  port_free("once collected")
end)

return tap.done()
