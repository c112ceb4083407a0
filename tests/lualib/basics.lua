-- basics.lua — require from a stock lua5.4, the two ways of waiting (blocking
-- outside the loop, yielding in tasks), mh.run with concurrent tasks, a second
-- require, paths and mh.configure.  Run by tests/integration/lualib.sh:
--   lua5.4 basics.lua SCRATCH_DIR
local t = require "lltap"
local dir = assert(arg[1], "usage: basics.lua DIR")

-- ---------------------------------------------------------------- require
-- the signal dispositions the process has (caught, ignored), from /proc
local function signals()
  local st = assert(io.open("/proc/self/status")):read("a")
  return st:match("SigIgn:%s*(%x+)") .. " " .. st:match("SigCgt:%s*(%x+)")
end
local before = signals()
local mh = require "mailhook"
t.ok(type(mh) == "table" and type(mh.enqueue) == "function", "require 'mailhook' gives the API")
t.like(mh.version, "^%d+%.%d+", "with its version")
t.is(signals(), before, "require installs no signal handler and ignores no signal (SIGPIPE included)")
t.ok(require "mailhook" == mh, "a second require gives the same module")
local core = require "mailhook.core"
t.ok(core == mh.core, "mailhook.core is the one mailhook uses")
t.like(package.searchpath("mailhook.core", package.cpath), "/lua/mailhook/core%.so$", "core.so found on LUA_CPATH")

-- loading the C module again in the same state (package.loaded cleared) keeps
-- the state's loop and tasks: one context per lua_State
local waiting = mh.spawn(function() mh.sleep(0.01); return "kept" end)
package.loaded["mailhook.core"] = nil
local core2 = require "mailhook.core"
t.ok(core2 ~= core, "luaopen_mailhook_core ran again")
t.is(core2.pollfd(), core.pollfd(), "it found the state's loop, not a new one")
t.is(select(2, waiting:wait()), "kept", "a task spawned before it still runs")
package.loaded["mailhook.core"] = core

-- ---------------------------------------------------------------- paths
t.is(mh.paths.library, true, "paths: loaded as a library")
t.like(mh.paths.lua, "/lua$", "paths.lua: the folder init.lua came from")
t.is(mh.paths.conf, os.getenv("MAILHOOK_CONF"), "paths.conf: $MAILHOOK_CONF")
t.is(mh.paths.spool, os.getenv("MAILHOOK_SPOOL"), "paths.spool: $MAILHOOK_SPOOL")
mh.configure { conf = dir .. "/other.conf", spool = dir .. "/other-spool" }
t.is(mh.paths.conf, dir .. "/other.conf", "mh.configure sets the settings file")
t.is(mh.paths.spool, dir .. "/other-spool", "and the spool")
local cfg, err = mh.settings.load()
t.ok(cfg == nil and err:find("other.conf: no such settings file", 1, true) and err:find("mh.configure", 1, true),
     "a settings file named by mh.configure must exist, and the error says who named it", err)
t.ok(not pcall(mh.configure, { conf = 42 }), "mh.configure refuses a path that is not a string")
t.ok(not pcall(mh.configure, { spol = "x" }), "and an unknown key")

-- ---------------------------------------------------------------- waiting
t.is(mh.wait_mode(), "block", "at the top of a script a waiting call blocks")
local t0 = mh.monotonic()
mh.sleep(0.05)
t.ok(mh.monotonic() - t0 >= 0.049, "mh.sleep blocks the caller (no task, no mh.run)")
t.is(signals(), before, "nor does running the loop")
local addrs = mh.resolve("localhost")
t.ok(type(addrs) == "table" and #addrs >= 1, "mh.resolve blocks and returns the addresses")
t.is(coroutine.wrap(function() return mh.wait_mode() end)(), "block",
     "a plain coroutine (a host's) outside the loop blocks too")
t.ok(coroutine.wrap(function() mh.sleep(0); return true end)(), "and may wait there")

-- a task spawned from the main thread runs while the main thread waits on it
local spawned = mh.spawn(function(a, b) mh.sleep(0.01); return a + b end, 2, 3)
t.is(spawned:status(), "ready", "a spawned task waits for the loop to run")
local ok, sum = spawned:wait()
t.ok(ok and sum == 5, "task:wait() from the main thread runs the loop until the task is done")

-- a wait that can never end is an error, not a hang
local stuck = mh.spawn(function() coroutine.yield() mh.core.current_task():wait() end)
-- (the task's own wait raises: the task fails with that error, which its joiner gets)
local okw, tok, errw = pcall(function() return stuck:wait() end)
t.ok(okw and tok == false and tostring(errw):find("a task cannot wait for itself", 1, true),
     "joining a task that waits on itself: an error, not a hang", errw)

-- ---------------------------------------------------------------- mh.run
local order = {}
local function worker(name, n)
  for i = 1, n do
    order[#order + 1] = name .. i
    coroutine.yield()                        -- a task's plain yield lets the others run
  end
  return name
end
local modes = {}
local r1, r2 = mh.run(function()
  modes[#modes + 1] = mh.wait_mode()
  local a = mh.spawn(worker, "a", 3)
  local b = mh.spawn(worker, "b", 3)
  local c = mh.spawn(function()               -- a grandchild outlives its parent's wait
    mh.spawn(function() mh.sleep(0.02); order[#order + 1] = "late" end)
  end)
  local _, ra = a:wait()
  local _, rb = b:wait()
  c:wait()
  return ra, rb
end)
t.is(modes[1], "task", "inside mh.run, waiting calls yield")
t.is(table.concat(order, " "), "a1 b1 a2 b2 a3 b3 late", "the tasks interleave, and mh.run waits for every task")
t.ok(r1 == "a" and r2 == "b", "mh.run returns the function's results")
local okr, errr = pcall(mh.run, function() mh.sleep(0); error("boom in a task") end)
t.ok(not okr and tostring(errr):find("boom in a task", 1, true), "mh.run raises the task's error", errr)
local okn, errn = pcall(mh.run, function() mh.run(function() end) end)
t.ok(not okn and tostring(errn):find("inside the running loop", 1, true),
     "mh.run inside a task is refused, by name", errn)
local oks, errs = pcall(mh.run, function() mh.step() end)
t.ok(not oks and tostring(errs):find("running already", 1, true), "so is mh.step", errs)

-- waiting where nothing can wait: inside the running loop, outside a task
local okc, errc = pcall(mh.run, function()
  local ok2, e2 = pcall(table.sort, { 3, 2, 1 }, function(a, b) mh.sleep(0); return a < b end)
  assert(not ok2)
  error(e2, 0)
end)
t.ok(not okc and tostring(errc):find("cannot wait here", 1, true),
     "a wait in a table.sort comparator inside a task is still refused", errc)

-- ---------------------------------------------------------------- step/timeout
t.is(mh.step(), false, "step() with nothing to do: not busy")
t.is(mh.timeout(), -1, "timeout() with nothing to do: -1")
local h = mh.every(3600, function() end)
local ms = mh.timeout()
t.ok(ms > 3500000 and ms <= 3600000, "timeout() is the next timer's due time in ms", ms)
t.is(mh.step(), true, "step() while a timer runs: busy, and it returned at once")
h:stop()
mh.step()
t.is(mh.core.handles(), 0, "a stopped timer leaves no handle")
local later = mh.spawn(function() return 1 end)
t.is(mh.timeout(), 0, "a task ready to run: timeout() is 0")
mh.step()
t.is(later:status(), "done", "and step() ran it")

-- things left running at exit are closed by lua_close (lua5.4 closes its state):
-- a sleeping task, a periodic timer, a name lookup on the thread pool
mh.spawn(function() mh.sleep(3600) end)
mh.every(3600, function() end)
mh.spawn(function() mh.resolve("localhost") end)
mh.step()
t.ok(mh.core.handles() >= 2, "work left running at exit (closed by lua_close)")
