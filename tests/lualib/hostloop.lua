-- hostloop.lua — a host with its own event loop (a plain poll loop on
-- LuaSocket's socket.select) drives mailhook's: it polls mh.pollfd() beside
-- its own sockets, sleeps at most mh.timeout(), and calls mh.step().  The
-- mailhook task (mh.smtp.test against a real server, an enqueue, a sleep) and
-- the host's own traffic (ping-pong on a TCP pair) must both progress: the
-- task waits for the host's pings, the host counts wake-ups that came from
-- mailhook's fd.  $MAILHOOK_CONF names settings for a real server.
--   lua5.4 hostloop.lua
local t = require "lltap"
local socket = require "socket"
local mh = require "mailhook"

-- the host's own traffic: a listening socket, a client, and a ping-pong of N lines
local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0)
local host_ip, host_port = server:getsockname()
local client = assert(socket.connect(host_ip, host_port))
client:settimeout(0)
local peer                                   -- the accepted side
local pings, PINGS = 0, 5

-- mailhook's fd as LuaSocket's select wants a socket: anything with getfd()
local mhfd = { getfd = function() return mh.pollfd() end, dirty = function() return false end }

local log = {}
local task = mh.spawn(function()
  log[#log + 1] = "mh:start"
  local report, err = mh.smtp.test {}
  log[#log + 1] = report and "mh:tested" or ("mh:test failed: " .. tostring(err))
  local id = mh.enqueue { to = "host@example.org", subject = "from a host loop", text = "x" }
  log[#log + 1] = id and "mh:queued" or "mh:enqueue failed"
  while pings < PINGS do mh.sleep(0.005) end  -- only the host's loop moves `pings`
  log[#log + 1] = "mh:saw the pings"
  return report and id and true
end)

client:send("ping 1\n")
local t0 = mh.monotonic()
local wakes_mh, turns, steps_busy = 0, 0, 0
while true do
  turns = turns + 1
  if mh.step() then steps_busy = steps_busy + 1 end
  if task:status() == "done" or task:status() == "failed" then break end
  if turns > 100000 then break end           -- a runaway loop fails the test below
  local ms = mh.timeout()
  local watch = { mhfd, server, client }
  if peer then watch[#watch + 1] = peer end
  local readable = socket.select(watch, nil, ms >= 0 and ms / 1000 or nil)
  for _, s in ipairs(readable) do
    if s == mhfd then
      wakes_mh = wakes_mh + 1
    elseif s == server then
      peer = server:accept()
      if peer then peer:settimeout(0) end
    elseif s == peer then                   -- the host's server: answer each ping
      local line = peer:receive("*l")
      if line then peer:send("pong " .. line:match("%d+") .. "\n") end
    elseif s == client then                 -- the host's client: count, ping again
      local line = client:receive("*l")
      if line then
        pings = pings + 1
        log[#log + 1] = "host:" .. line
        if pings < PINGS then client:send("ping " .. (pings + 1) .. "\n") end
      end
    end
  end
end
local elapsed = mh.monotonic() - t0

local ok, res = task:wait()
t.ok(ok and res, "the mailhook task finished inside the host's loop", table.concat(log, ", "))
t.is(pings, PINGS, "the host's own traffic went on meanwhile")
local first_host, tested
for i, e in ipairs(log) do
  if e:sub(1, 5) == "host:" and not first_host then first_host = i end
  if e == "mh:tested" then tested = i end
end
t.ok(first_host and tested and log[#log] == "mh:saw the pings", "both progressed, interleaved", table.concat(log, ", "))
t.ok(wakes_mh >= 3, "mailhook's fd woke the host's poll (" .. wakes_mh .. " times)")
-- had the fd never woken the poll, each SMTP reply would have waited for the
-- next mailhook timer (the command timeout, 120 s): the run takes far less
t.ok(elapsed < 60, "no reply waited for a timer (" .. string.format("%.2f", elapsed) .. " s)")
t.ok(turns < 100000, "the loop ended (" .. turns .. " turns, " .. steps_busy .. " busy steps)")
client:close(); server:close(); if peer then peer:close() end
mh.step()
t.is(mh.core.handles(), 0, "mailhook left no handle open")
