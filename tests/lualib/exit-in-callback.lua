-- exit-in-callback.lua — a host calls os.exit from a callback that mh.step runs
-- while enqueues are in flight (started, not returned).
--   lua5.4 exit-in-callback.lua N close|keep
-- Spawns N enqueue tasks, lets them start, and from an mh.every callback calls
-- os.exit(0, close): with "close" lua5.4 closes the state inside the step (the
-- context's __gc runs inside the running loop).  Every enqueue asked for must
-- land in pickup/, whole, and nothing may crash (the message object's __gc ran
-- before the context waited for the job that wrote it) nor hang.
local mh = require "mailhook"
local n, close = tonumber(arg[1]), arg[2] == "close"
for i = 1, n do
  mh.spawn(function()
    assert(mh.enqueue { to = "ops@example.com", subject = "in flight " .. i, text = string.rep("x", 100000) })
  end)
end
mh.step()   -- the tasks start: their enqueues are on the thread pool
mh.every(0.001, function() os.exit(0, close) end)
while true do mh.step() end
