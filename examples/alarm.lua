-- examples/alarm.lua — alarms routed by severity, rate-limited with a summary,
-- held during quiet hours, with a critical bypass.
--
--   mailhook hook alarm severity=major source=ups1 message="on battery"
--
--   critical: at once to the on-call address and ops, never throttled or held
--   major:    to ops, at most 3 per source per 10 minutes, then one summary
--   minor:    collected into one digest per hour
--   quiet hours (weeknights 20:00-07:00 and weekends, Paris time): major alarms
--   go to the night desk instead; minor digests are held until the morning.

local ONCALL, OPS, NIGHT = "oncall@example.com", "ops@example.com", "night-desk@example.com"
local tpl = mh.template.default("alarm")

-- a range that crosses midnight belongs to the day it starts on: the nights
-- that start Sunday to Friday, so Monday 00:00-07:00 (Sunday's night) is quiet
-- too ("mon-fri" left it out: the weekend ends at Sunday midnight)
local quiet = period { weekdays = "sun-fri", times = "20:00-07:00", tz = "Europe/Paris" }
local weekend = period { weekdays = "sat-sun", times = "00:00-24:00", tz = "Europe/Paris" }

local function in_quiet_hours() return quiet:contains() or weekend:contains() end

local function quiet_end()
  local t = mh.now() // 1
  for _ = 1, 4 do                     -- weekend followed by a weeknight, and so on
    local e = math.max(quiet:ends(t), weekend:ends(t))
    if e == t then return t end
    t = e
  end
  return t
end

on("alarm", function(ev)
  local sev = tostring(ev.severity or "minor"):lower()
  local ctx = {}
  for k, v in pairs(ev) do ctx[k] = v end
  ctx.severity = sev
  ctx.time = ctx.time or os.date("%Y-%m-%d %H:%M:%S")
  local m = mh.template.message(tpl, ctx)
  local msg = { to = OPS, subject = m.subject, text = m.text }

  if sev == "critical" then                                  -- the bypass
    msg.to = { ONCALL, OPS }
    assert(mh.enqueue(msg))
    return
  end

  if sev == "major" then
    local source = tostring(ev.source or "unknown")
    if not throttle { key = "alarm:" .. source, max = 3, per = 600, summary = true, to = OPS,
                      item = m.subject } then
      return                                                 -- counted for the summary
    end
    if in_quiet_hours() then msg.to = NIGHT end              -- route elsewhere
    assert(mh.enqueue(msg))
    return
  end

  -- minor and anything else: one digest per hour, held through quiet hours
  if in_quiet_hours() then
    hold(msg, quiet_end(), "minor alarm held for the end of quiet hours")
  else
    digest { key = "minor-alarms", window = 3600, item = m.subject, to = OPS }
  end
end)
