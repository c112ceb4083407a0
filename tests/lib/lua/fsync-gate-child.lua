-- tests/lib/lua/fsync-gate-child.lua SPOOL GATE — run by tests/lua/test-spool.lua in a child mailhook with
-- tests/lib/fsync-gate.c preloaded (MH_FSYNC_GATE=GATE): four tasks enqueue into SPOOL while a ticker
-- task on the loop counts its ticks into GATE/ticks; GATE/on holds every fsync until the ticker moved.
-- Prints "enqueued N TICKS" (N messages queued).
local mh = require "mailhook"
local spool = require "mailhook.spool"
local dir, gate = arg[1], arg[2]
local sp = assert(spool.open(dir))

local ticks, running = 0, true
local function put(n)
  local f = assert(io.open(gate .. "/ticks", "w"))
  f:write(n)
  f:close()
end
put(0)
local ticker = mh.spawn(function()
  while running do mh.sleep(0.001); ticks = ticks + 1; put(ticks) end
end)
assert(io.open(gate .. "/on", "w")):close()
local writers, n = {}, 0
for i = 1, 4 do
  writers[i] = mh.spawn(function()
    for _ = 1, 5 do assert(sp:enqueue("Subject: c\r\n\r\n", { to = { "c@x.y" } })); n = n + 1 end
  end)
end
for i = 1, 4 do writers[i]:wait() end
os.remove(gate .. "/on")
running = false
ticker:wait()
print("enqueued " .. n .. " " .. ticks)
