-- mailhook.service: what `mailhook run` tells the service manager, in the order
-- it must (fields recorded by replacing core.notify.send for this process;
-- the tests run as tasks, after the file's own lines).
local tap = require "tap"
local core = require "mailhook.core"
local service = require "mailhook.service"

local sent = {}
core.notify.send = function(fields) sent[#sent + 1] = fields; return true end
core.notify.watchdog = function() return nil end

local spool = { scan = function() return {}, 3 end }
local delivery = { workers = { { state = "idle" } } }

tap.test("a reload that ends after SIGTERM says nothing more (no READY=1 after STOPPING=1)", function(t)
  sent = {}
  local svc = service.start { spool = spool, delivery = delivery }
  t:is(sent[1] and sent[1].READY, 1, "READY=1 at start")
  svc:reloading()                 -- SIGHUP: the handler then waits for the rules worker ...
  svc:stopping()                  -- ... and SIGTERM comes meanwhile
  svc:reloaded()                  -- the reload finishes
  svc:tick()
  local last = sent[#sent]
  t:is(last.STOPPING, 1, "STOPPING=1 is the last thing sent")
  local after = false
  for i, f in ipairs(sent) do
    if f.STOPPING then after = i end
  end
  t:is(after, #sent, "nothing (READY, STATUS) after it")
  svc:close()
end)

tap.test("a reload before SIGTERM: RELOADING=1, then READY=1 with the status", function(t)
  sent = {}
  local svc = service.start { spool = spool, delivery = delivery }
  svc:reloading()
  svc:reloaded()
  t:is(sent[2] and sent[2].RELOADING, 1, "RELOADING=1")
  t:is(sent[3] and sent[3].READY, 1, "READY=1")
  t:like(sent[3] and sent[3].STATUS or "", "^3 queued; idle$", "with the status")
  svc:close()
end)

-- The status counts the spool, and counting waits (a scan on the thread pool): a
-- SIGTERM handled meanwhile sends STOPPING=1, and the status computed before it
-- must not follow (the fresh Debian 12 root saw STATUS= after STOPPING=1).
tap.test("a status counted while SIGTERM comes is not sent after STOPPING=1", function(t)
  sent = {}
  local svc
  local waiting = { scan = function()
    svc:stopping()                -- what the SIGTERM handler does while the scan waits
    return {}, 4
  end }
  svc = service.start { spool = spool, delivery = delivery }
  svc.spool = waiting
  svc:tick()
  svc.spool = spool
  svc:reloading(); svc:reloaded()
  t:is(sent[#sent].STOPPING, 1, "STOPPING=1 is the last thing sent (no STATUS= after it)")
  t:is(#sent, 2, "READY=1, then STOPPING=1 only")
  svc:close()
end)

return tap.done()
