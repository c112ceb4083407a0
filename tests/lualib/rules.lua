-- rules.lua — mh.on / mh.emit from a plain lua5.4 script: emit returns once
-- every handler is done (nothing else would run them), their mail durable; a
-- failing handler is named.  $MAILHOOK_CONF / $MAILHOOK_SPOOL name the settings
-- and the spool.
local t = require "lltap"
local mh = require "mailhook"

local seen = {}
mh.on("voicemail", function(ev)
  seen[#seen + 1] = ev.mailbox
  mh.sleep(0.01)                                   -- a handler may wait: it is a task
  local msg = mh.template.message("voicemail", ev)
  assert(mh.enqueue { to = "owner@example.com", subject = msg.subject, text = msg.text })
end, "vm")
mh.on("voicemail", function(ev)
  if ev.mailbox == "bad" then error("no owner for mailbox bad") end
end, "owner-check")

local ok, failures, n = mh.emit("voicemail", { mailbox = "200", caller = "+33123456789", duration = "42" })
t.ok(ok, "emit: every handler succeeded")
t.is(n, 2, "both handlers ran")
t.is(#failures, 0, "no failure")
t.is(seen[1], "200", "the handler saw the event's fields")
local listed = {}
for e in mh.queue.list() do listed[#listed + 1] = e end
t.is(#listed, 1, "its mail is in the queue when emit returns")
t.like(listed[1] and mh.queue.show(listed[1].id).path or "", "%.eml$", "as a spool file")

ok, failures = mh.emit("voicemail", { mailbox = "bad", caller = "+1" })
t.is(ok, false, "a handler that raises: emit says so")
t.is(failures[1] and failures[1].handler, "owner-check", "naming the handler")
t.like(failures[1] and failures[1].error or "", "no owner for mailbox bad", "with its error")
t.ok(not pcall(mh.emit, 42), "emit with a bad event name raises")

-- the same from inside mh.run: the emit yields instead of blocking
local r = mh.run(function()
  local ok2 = mh.emit("voicemail", { mailbox = "300", caller = "+2" })
  return ok2
end)
t.ok(r, "emit inside mh.run")
local count = 0
for _ in mh.queue.list() do count = count + 1 end
t.is(count, 3, "three messages queued in all")

-- rule budgets work in a stock interpreter too: the lifetime of a rule that
-- waits forever is enforced by a timer on this state's loop
mh.core.budget_limits { seconds = 0.3, life = 0.3 }
mh.on("sleepy", function() while true do mh.sleep(0.02) end end, "sleeper")
mh.on("spin", function() local n = 0 while true do n = n + 1 end end, "spinner")
local ok3, f3 = mh.emit("sleepy", {})
-- (by its lifetime, or, on a slow machine, by its running time first: stopped either way)
t.ok(not ok3 and f3[1] and f3[1].error:find("^stopped: ") ~= nil, "a rule waiting forever is stopped (its lifetime)",
     f3[1] and f3[1].error)
local ok4, f4 = mh.emit("spin", {})
t.ok(not ok4 and f4[1] and f4[1].error:find("stopped", 1, true), "a rule looping forever is stopped by its budget",
     f4[1] and f4[1].error)
t.ok(mh.core.heap() > 0, "the state's allocator counts its heap")
