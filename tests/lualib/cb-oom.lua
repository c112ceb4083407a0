-- cb-oom.lua — a libuv callback whose Lua work is refused by a rule's memory
-- budget.  Outside a task (a stock lua5.4), a rule's blocking wait runs the
-- loop with the rule charged: a timer, signal, watch or request it started
-- fires there, and the callback's spawn (a new thread, a reference) may be
-- refused.  No protected call surrounded those callbacks: the refusal
-- unwound through uv_run into rule_call's pcall (where no pcall is, as
-- around the mailhook binary's loop, a Lua panic: the process aborted), the
-- loop was left marked running, and no wait worked again in that state.
-- Now the callback fails alone, logged ("WHAT (in RULE): stopped: exceeded
-- the memory limit ..."), the rule fails for it, and everything goes on.
-- Run by tests/integration/lualib-cb-oom.sh, one process a kind of handle (a
-- wedged loop stops the process's later checks):
--   lua5.4 cb-oom.lua DIR every|ticker|signal|watch|job|resolve
-- (DIR: the folder watched; DIR/spool/maildrop holds 200 files, for "job")
local t = require "lltap"
local dir, only = arg[1], arg[2]
assert(dir and only, "usage: cb-oom.lua DIR KIND")
local mh = require "mailhook"
local core = mh.core

local PID = (function()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end)()

local filler = string.rep("x", 1 << 20)   -- the limit must be at least 1 MB: the heap made that big
assert(#filler > 0)

-- waits (bounded) until cond() holds
local function until_(cond, secs)
  local t0 = core.monotonic()
  while not cond() and core.monotonic() - t0 < (secs or 5) do core.sleep(0.005) end
  return cond()
end

-- the rule's handle: a rule stopped by its budget never reaches its own stop
local left
local function stop_left()
  if left then left:stop() end
  left = nil
end

-- Sweeps the room left under the rule's limit (the collector stopped: no
-- garbage to free): rule(made) starts the handle, says so, makes it fire
-- and waits (blocking).  Each firing spawns a task (a thread, a userdata):
-- sooner or later an allocation is refused, in a callback or in a task the
-- callback spawned (the shell finds the callbacks' in the log).  Returns the
-- first error of a rule whose handle was made, and how many were.
local function refused_in_callback(what, rule)
  local first, n, oks = nil, 0, 0
  for room = 0, 64 * 1024, 8 do
    local made = false
    collectgarbage()
    collectgarbage("stop")
    core.budget_limits { memory = core.heap() + room }
    local ok, err = core.rule_call("cb-oom " .. what, function() rule(function() made = true end) end)
    core.budget_limits { memory = 128 * 1048576 }
    stop_left()
    collectgarbage("restart")
    if made and not ok then first, n = first or err, n + 1 end
    oks = ok and oks + 1 or 0
    if oks == 10 or n == 200 then break end   -- past the band (a firing may come late), or tries enough
  end
  return first, n
end

-- a name in the watched folder, renamed back and forth: news for the watch
-- (os.rename of strings made before allocates nothing under the budget)
local A, B = dir .. "/a", dir .. "/b"
assert(io.open(A, "w")):close()
local function news()
  if not os.rename(A, B) then os.rename(B, A) end
end

-- the loop still runs after it: a plain wait, and a fresh handle of the same kind fires
local function goes_on(what, fresh)
  local ok, err = pcall(core.sleep, 0.001)
  t.ok(ok, what .. ": a wait after it works (the loop was not left half-run)", err)
  local n = 0
  local ok2, h = pcall(fresh, function() n = n + 1 end)
  if what == "watch" then news() end
  t.ok(ok2 and until_(function() return n >= 1 end), what .. ": a fresh handle fires", h)
  if ok2 and h then if h.stop then h:stop() else h:close() end end
end

local cases = {
  { "every", function(fn) return core.every(0.002, fn) end },
  { "ticker", function(fn) return core.rstate.ticker(0.002, fn) end },
  { "signal", function(fn)
      local h = core.signal.on("USR2", fn)
      assert(core.signal.kill(PID, "USR2"))
      return h
    end },
  { "watch", function(fn) return assert(core.maildrop.watch(dir, fn)) end },
}

-- A thread-pool job's results (mh_l_work: after_work_cb pushed them, where
-- no protected call is): a listing of DIR/spool's maildrop/, a table of 200
-- names, pushed while the rule waits (blocking) under its budget.
-- mh.resolve's results (resolve_cb pushed them unprotected too)
if only == "resolve" then
  local err, n = refused_in_callback("resolve", function(made)
    made()
    for _ = 1, 8 do core.resolve("localhost") end
  end)
  t.like(err, "memory limit", "resolve: a rule whose lookup's results are refused by its memory budget fails" ..
         " (" .. n .. " times)")
  local ok, e = pcall(core.sleep, 0.001)
  t.ok(ok, "resolve: a wait after it works (the loop was not left half-run)", e)
  local addrs = core.resolve("localhost")
  t.ok(addrs and #addrs >= 1, "resolve: a lookup outside the budget gets its addresses")
end

-- An SMTP session's outcomes (l_smtp.c's wake pushed them, where no protected
-- call is): the rule opens a session to smtp-sink (port in $SINK_PORT) and sends
-- one message, each step a blocking wait under its budget.
if only == "smtp" then
  local port = assert(tonumber(os.getenv("SINK_PORT")), "SINK_PORT")
  local function session()
    return core.smtp.new { host = "127.0.0.1", port = port, tls = "none", tls_required = false,
                           connect_timeout = 5, command_timeout = 5, data_timeout = 5 }
  end
  local function send(c)
    assert(c:open())
    assert(c:send("a@x.test", { "b@x.test" }, "Subject: cb-oom\r\n\r\nbody\r\n"))
    assert(c:quit())
  end
  local err, n = refused_in_callback("smtp", function(made)
    local c = session()
    left = { stop = function() c:close() end }
    made()
    send(c)
  end)
  t.like(err, "memory limit", "smtp: a rule whose session's outcome is refused by its memory budget fails" ..
         " (" .. n .. " times)")
  local ok, e = pcall(core.sleep, 0.001)
  t.ok(ok, "smtp: a wait after it works (the loop was not left half-run)", e)
  local c = session()
  ok, e = pcall(send, c)
  c:close()
  t.ok(ok, "smtp: a session outside the budget sends", e)
end

-- A channel's frames (l_proc.c's deliver pushed them, where no protected call
-- is): a child (this interpreter, core.proc.spawn) echoes each frame it gets,
-- and the rule sends one and waits (blocking, under its budget) for the echo.
if only == "proc" then
  local p, ch = assert(core.proc.spawn { "-e", [[
    local ch = require("mailhook.core").proc.channel()
    while true do
      local m = ch:recv()
      if not m then break end
      ch:send(m .. string.rep("y", 200))
    end
    ch:close()]] })
  local err, n = refused_in_callback("proc", function(made)
    made()
    for _ = 1, 4 do
      assert(ch:send("x"))
      assert(ch:recv())
    end
  end)
  t.like(err, "memory limit", "proc: a rule whose channel's frame is refused by its memory budget fails" ..
         " (" .. n .. " times)")
  local ok, e = pcall(core.sleep, 0.001)
  t.ok(ok, "proc: a wait after it works (the loop was not left half-run)", e)
  ok, e = pcall(function() assert(ch:send("z")); return ch:recv() end)
  t.ok(ok and type(e) == "string" and e:find("y", 1, true), "proc: a frame outside the budget is received", e)
  ch:close()
  t.is(p:wait(), 0, "proc: the child ends when the channel does")
end

if only == "job" then
  local spool = dir .. "/spool"
  local err, n = refused_in_callback("job", function(made)
    made()
    core.maildrop.list(spool)
  end)
  t.like(err, "memory limit", "job: a rule whose job's results are refused by its memory budget fails" ..
         " (" .. n .. " times)")
  local ok, e = pcall(core.sleep, 0.001)
  t.ok(ok, "job: a wait after it works (the loop was not left half-run)", e)
  local names = core.maildrop.list(spool)
  t.is(names and #names, 200, "job: the listing, outside the budget, is whole")
end

for _, c in ipairs(cases) do
  local what, start = c[1], c[2]
  if what ~= only then goto next end
  local err, n = refused_in_callback(what, function(made)
    left = start(function() end)
    made()
    for _ = 1, 25 do
      core.sleep(0.002)
      if what == "signal" then core.signal.kill(PID, "USR2") elseif what == "watch" then news() end
    end
  end)
  t.like(err, "memory limit", what .. ": a rule whose handle's firing is refused by its memory budget fails" ..
         " (" .. n .. " times)")
  goes_on(what, start)
  ::next::
end

os.exit(t.failed == 0 and 0 or 1)
