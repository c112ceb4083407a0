-- bench/spool-enqueue.lua DIR N [BATCH]: durable enqueues of 1 KB messages in
-- one process; prints messages/s.  BATCH > 1 uses enqueue_many (group commit:
-- the batch's tmp files are fsynced together, then renamed, then one folder fsync).
local mh = require "mailhook"
local sp = assert(require("mailhook.spool").open(arg[1]))
local n, batch = tonumber(arg[2]), tonumber(arg[3] or "1")
local msg = "From: bench@ex.org\r\nTo: sink@ex.org\r\nSubject: bench\r\n\r\n" .. string.rep("x", 958) .. "\r\n"
local env = { from = "bench@ex.org", to = { "sink@ex.org" } }
local t = mh.monotonic()
if batch <= 1 then
  for _ = 1, n do assert(sp:enqueue(msg, env)) end
else
  local done = 0
  while done < n do
    local items = {}
    for i = 1, math.min(batch, n - done) do items[i] = { msg, env } end
    assert(sp:enqueue_many(items))
    done = done + #items
  end
end
print(string.format("%.1f", n / (mh.monotonic() - t)))
