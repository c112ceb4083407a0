-- examples/admin.lua — the service's own events, told to the administrator by
-- another path than the one that is failing where possible.
--
--   failed       a message went to failed/ ({id, reason, reply, to, subject})
--   queue_stuck  the server has been unreachable for a while ({reason, since})
--   disk_full    the spool's file system is nearly full ({path, percent})
--                (checked every 5 minutes by `mailhook run` itself, below)

local ADMIN = "postmaster@example.com"
local DISK_LIMIT = 90   -- percent

local function list(v)
  if type(v) == "table" then return table.concat(v, ", ") end
  return tostring(v or "?")
end

on("failed", function(ev)
  -- at most 10 per hour, then one summary: a dead server must not flood the admin
  if not throttle { key = "admin:failed", max = 10, per = 3600, summary = true, to = ADMIN,
                    item = tostring(ev.id) .. " " .. tostring(ev.subject) } then return end
  assert(mh.enqueue {
    to = ADMIN,
    subject = template("[mailhook] message {{id}} failed: {{reason|no reason}}", { header = true })(ev),
    text = template("Message {{id}} to {{to}} (\"{{subject|no subject}}\") could not be delivered.\n\n" ..
                    "Reason: {{reason|unknown}}\nServer reply: {{reply|none}}\n\n" ..
                    "It is kept in the spool's failed/ folder: `mailhook queue show {{id}}`, " ..
                    "`mailhook queue retry {{id}}`.\n")({ id = ev.id, to = list(ev.to), subject = ev.subject,
                                                         reason = ev.reason, reply = ev.reply }),
  })
end)

on("queue_stuck", function(ev)
  -- the mail server itself may be what is down: this is queued and goes as soon
  -- as it is back; a site could also run a pager command here.
  if not throttle { key = "admin:stuck", max = 1, per = 3600 } then return end
  assert(mh.enqueue {
    to = ADMIN,
    subject = "[mailhook] queue stuck: " .. tostring(ev.reason or "server unreachable"):gsub("[\r\n]", " "),
    text = template("The queue has not moved since {{since}}: {{reason|unknown}}.\n")
             ({ since = ev.since and os.date("%Y-%m-%d %H:%M", ev.since // 1) or "?", reason = ev.reason }),
  })
end)

on("disk_full", function(ev)
  if not throttle { key = "admin:disk", max = 1, per = 6 * 3600 } then return end
  assert(mh.enqueue {
    to = ADMIN,
    subject = template("[mailhook] disk nearly full: {{path}} at {{percent}}%", { header = true })(ev),
    text = template("The file system holding {{path}} is {{percent}}% full.\n" ..
                    "Queued mail is kept until it is delivered; free some space.\n")(ev),
  })
end)

-- Under `mailhook run` only: watch the spool's disk and emit disk_full
-- (every() is the rules' timer: it never keeps a process alive).
if SERVICE then
  every(300, function()
    local p = io.popen("df -P " .. mh.paths.spool .. " 2>/dev/null")
    local out = p and p:read("a") or ""
    if p then p:close() end
    local pct = tonumber(out:match("\n%S+%s+%d+%s+%d+%s+%d+%s+(%d+)%%"))
    if pct and pct >= DISK_LIMIT then mh.emit("disk_full", { path = mh.paths.spool, percent = pct }) end
  end)
end
