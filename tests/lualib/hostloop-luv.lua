-- hostloop-luv.lua — the same as hostloop.lua with luv (Debian's lua-luv) as
-- the host: its own libuv loop watches mailhook's fd with a poll handle and
-- re-arms a timer for mh.timeout(); each wake-up calls mh.step().  Two loops,
-- one thread: mailhook's runs only inside mh.step().  $MAILHOOK_CONF names
-- settings for a real server.
local t = require "lltap"
local uv = require "luv"
local mh = require "mailhook"

local log, ticks = {}, 0
local task = mh.spawn(function()
  local report, err = mh.smtp.test {}
  log[#log + 1] = report and "mh:tested" or ("mh:test failed: " .. tostring(err))
  while ticks < 3 do mh.sleep(0.005) end     -- only the host's timer moves `ticks`
  log[#log + 1] = "mh:saw the ticks"
  return report ~= nil
end)

-- the host's own work: a periodic luv timer
local tick = uv.new_timer()
tick:start(1, 1, function()
  ticks = ticks + 1
  log[#log + 1] = "host:tick"
  if ticks >= 3 then tick:stop() end
end)

local poll = uv.new_poll(mh.pollfd())
local timer = uv.new_timer()
local wakes = 0
local function drive()
  mh.step()
  local st = task:status()
  if st == "done" or st == "failed" then
    poll:stop(); timer:stop()
    return
  end
  local ms = mh.timeout()
  timer:stop()
  if ms >= 0 then timer:start(ms, 0, drive) end
end
poll:start("r", function() wakes = wakes + 1; drive() end)
timer:start(0, 0, drive)
local t0 = uv.hrtime()
uv.run()
local elapsed = (uv.hrtime() - t0) / 1e9

local ok, res = task:wait()
t.ok(ok and res, "the mailhook task finished inside luv's loop", table.concat(log, ", "))
t.is(ticks, 3, "luv's own timer ran meanwhile")
t.is(log[#log], "mh:saw the ticks", "both progressed")
-- at least once: after a step has sent a command, only the fd can wake the host
-- before the session's long timeouts (how many replies one step takes in varies
-- with load: the fresh Debian 12 root saw fewer than 3 wake-ups)
t.ok(wakes >= 1, "luv's poll of mailhook's fd fired (" .. wakes .. " times)")
t.ok(elapsed < 60, "no reply waited for a timer (" .. string.format("%.2f", elapsed) .. " s)")
for _, h in ipairs { poll, timer, tick } do h:close() end
uv.run()
t.is(mh.core.handles(), 0, "mailhook left no handle open")
