-- core.signal: signals delivered as tasks, stop, kill, bad names.
local tap = require "tap"
local mh = require "mailhook"
local sig = mh.core.signal

local function getpid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("l"):match("^(%d+)"))
  f:close()
  return pid
end

tap.test("a signal runs the callback as a task, once per delivery", function(t)
  local got = {}
  local h = sig.on("USR1", function(name)
    mh.sleep(0)                 -- the callback is a task: it may wait
    got[#got + 1] = name
  end)
  t:like(tostring(h), "Signal%(USR1%)", "tostring names the signal")
  t:ok(sig.kill(getpid(), "USR1"), "kill returns true")
  local t0 = mh.monotonic()
  while #got < 1 and mh.monotonic() - t0 < 2 do mh.sleep(0.01) end
  t:same(got, { "USR1" }, "delivered once with its name")
  assert(sig.kill(getpid(), "SIGUSR1"))
  t0 = mh.monotonic()
  while #got < 2 and mh.monotonic() - t0 < 2 do mh.sleep(0.01) end
  t:is(#got, 2, "a second delivery runs it again ('SIGUSR1' spelling accepted)")
  h:stop()
  h:stop()
  t:like(tostring(h), "stopped", "stop is idempotent")
end)

tap.test("two handlers for one signal both run; a stopped one does not", function(t)
  local a, b = 0, 0
  local ha = sig.on("USR2", function() a = a + 1 end)
  local hb = sig.on("usr2", function() b = b + 1 end)
  assert(sig.kill(getpid(), "USR2"))
  local t0 = mh.monotonic()
  while (a < 1 or b < 1) and mh.monotonic() - t0 < 2 do mh.sleep(0.01) end
  t:same({ a, b }, { 1, 1 }, "both ran")
  hb:stop()
  assert(sig.kill(getpid(), "USR2"))
  t0 = mh.monotonic()
  while a < 2 and mh.monotonic() - t0 < 2 do mh.sleep(0.01) end
  mh.sleep(0.05)
  t:same({ a, b }, { 2, 1 }, "only the live one ran")
  ha:stop()
end)

tap.test("a handle does not keep the loop alive", function(t)
  local h = sig.on("HUP", function() end)
  t:is(mh.core.handles(), 0, "no ref'd handle while listening")
  h:stop()
end)

tap.test("misuse and failures", function(t)
  local ok, err = pcall(sig.on, "NOPE", function() end)
  t:ok(not ok, "unknown name raises")
  t:like(err, "unknown signal 'NOPE'", "naming it")
  t:ok(not pcall(sig.on, "TERM"), "missing callback raises")
  t:ok(not pcall(sig.on, "KILL", function() end), "KILL cannot be caught")
  local r, msg, info = sig.kill(2147483000, 0)
  t:is(r, nil, "kill of a missing pid fails")
  t:like(msg, "kill 2147483000", "naming the pid")
  t:is(info and info.code, "ESRCH", "with the errno name")
  t:ok(sig.kill(getpid(), 0), "signal 0 probes a live pid")
end)

return tap.done()
