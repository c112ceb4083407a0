-- mailhook.service — what `mailhook run` tells the system around it.
--
-- The log: the settings' `log` (stderr, syslog, journal), `syslog_facility`
-- and `log_level` (which -v, -q and $MAILHOOK_LOG_LEVEL override):
--
--   service.setup(cfg)     first thing of `mailhook run`: takes the manager's
--                          variables out of the environment (programs the
--                          service starts never speak for it), applies the log
--   service.apply_log(cfg) -> true | nil, message   (the sink stays stderr then)
--
-- The service manager: systemd's notification protocol (runtime/notify.h),
-- a no-op when no manager listens ($NOTIFY_SOCKET unset):
--
--   local svc = service.start{spool = sp, delivery = d}
--       READY=1 and a first STATUS=: call it once the spool lock is held and
--       the rules are loaded, so `systemctl start` returns when mail can flow
--   svc:reloading()  svc:reloaded()   RELOADING=1 ... READY=1 around SIGHUP
--   svc:stopping()                    STOPPING=1 (SIGTERM, SIGINT)
--   svc:close()                       stops the status/watchdog timer
--
-- While it runs, a timer sends STATUS= when it changed ("3 queued; sending",
-- "12 queued; server unreachable since 12:03:10Z: connect: ...") and WATCHDOG=1
-- at half the interval the manager asked for ($WATCHDOG_USEC): a loop that no
-- longer turns stops pinging, and systemd restarts the service.
local core = require "mailhook.core"
local mh = require "mailhook"

local M = {}

M.STATUS_EVERY = 5       -- seconds between status checks when no watchdog asks for more often
M.STATUS_MAX = 200       -- characters of a STATUS= line (systemctl status shows one line)

function M.apply_log(cfg)
  if cfg.log_level then core.logsink.default_level(cfg.log_level) end
  local ok, err = core.logsink.set(cfg.log or "stderr", { facility = cfg.syslog_facility })
  if not ok then
    core.logsink.set("stderr")
    mh.log.warn("log = " .. tostring(cfg.log) .. " is not possible here (" .. tostring(err) .. "); logging to stderr")
    return nil, err
  end
  return true
end

function M.setup(cfg)
  core.notify.init()
  return M.apply_log(cfg)
end

-- One line of text for STATUS=: no control characters (a newline would end the
-- assignment and start another), bounded.
local function clean(s)
  s = tostring(s):gsub("%c+", " ")
  if #s > M.STATUS_MAX then s = s:sub(1, M.STATUS_MAX - 3) .. "..." end
  return s
end

-- How many messages wait in pickup/ (scan(1): only one id crosses into Lua).
local function count(sp)
  local ok, ids, total = pcall(sp.scan, sp, 1)
  if not ok then return nil end
  if type(total) == "number" then return total end
  return type(ids) == "table" and #ids or nil
end

-- The connection state of a deliverer (mailhook.delivery): its outage if any,
-- else what its workers do ("sending", "idle", "2 sending, 1 idle").
function M.connection_state(d)
  if not d then return "starting" end
  if d.outage then
    return string.format("%s since %s: %s", d.outage.refused and "server refuses mail"
                         or d.outage.login or "server unreachable",
                         os.date("!%H:%M:%SZ", math.floor(d.outage.since or 0)), tostring(d.outage.err))
  end
  local counts, order = {}, {}
  for _, w in ipairs(d.workers or {}) do
    local s = w.state or "starting"
    if s == "disabled" then s = "paused: " .. tostring(w.detail or "settings not ready") end
    if not counts[s] then order[#order + 1] = s end
    counts[s] = (counts[s] or 0) + 1
  end
  if #order == 0 then return "starting" end
  local parts = {}
  for i, s in ipairs(order) do
    parts[i] = (#d.workers > 1 and (counts[s] .. " ") or "") .. s
  end
  return table.concat(parts, ", ")
end

-- status_text(sp, d [, reload_error]): a SIGHUP whose settings did not load
-- leads the line while it stands (the old settings still deliver): systemctl
-- status showed "idle" after a failed reload.
function M.status_text(sp, d, reload_error)
  local n = sp and count(sp)
  return clean(string.format("%s%s queued; %s",
    reload_error and ("reload failed, the previous settings stay in use: " .. reload_error .. "; ") or "",
    n and tostring(n) or "?", M.connection_state(d)))
end

local S = {}
S.__index = S

-- Sends the fields; the first failure is logged (a manager that vanished is
-- no reason to stop delivering), later ones are not.
function S:send(fields)
  if not self.on then return false end
  local ok, err = core.notify.send(fields)
  if ok == nil and not self.failed then
    self.failed = true
    -- (err names it already: "cannot notify the service manager: ...", said twice)
    mh.log.warn("mailhook run: " .. tostring(err))
  end
  return ok
end

-- The timer's work: WATCHDOG=1 each time (also while stopping: the message in
-- flight may take a while), STATUS= when it changed (not once stopping).
function S:tick()
  local fields = {}
  if self.watchdog then fields.WATCHDOG = 1 end
  local st = not self.stopped and M.status_text(self.spool, self.delivery, self.reload_error)
  -- counting the spool waits (a scan on the thread pool): a SIGTERM handled
  -- meanwhile has sent STOPPING=1, after which no status may follow
  if self.stopped then st = nil end
  if st and st ~= self.last_status then
    fields.STATUS = st
    self.last_status = st
  end
  if next(fields) then self:send(fields) end
end

-- A SIGHUP's reload waits for the rules worker; a SIGTERM may come meanwhile.
-- Once STOPPING=1 is sent nothing says READY or RELOADING again (systemd would
-- take the stopping service for running again).
function S:reloading()
  if self.stopped then return end
  self:send { RELOADING = 1, STATUS = "reloading the settings and the rules",
              MONOTONIC_USEC = string.format("%d", math.floor(mh.monotonic() * 1e6)) }
end

function S:reloaded()
  if self.stopped then return end
  local st = M.status_text(self.spool, self.delivery, self.reload_error)
  if self.stopped then return end   -- SIGTERM while the spool was counted (see tick)
  self.last_status = st
  self:send { READY = 1, STATUS = self.last_status }
end

function S:stopping()
  self.stopped = true
  self:send { STOPPING = 1, STATUS = "stopping: finishing the message in flight" }
end

function S:close()
  if self.timer then self.timer:stop(); self.timer = nil end
end

-- start{spool =, delivery =} -> svc (see the top of the file)
function M.start(opts)
  local svc = setmetatable({ spool = opts.spool, delivery = opts.delivery }, S)
  svc.watchdog = core.notify.watchdog()
  svc.last_status = M.status_text(svc.spool, svc.delivery)
  local ok, err = core.notify.send { READY = 1, STATUS = svc.last_status }
  svc.on = ok ~= false
  if ok == nil then
    svc.failed = true
    mh.log.warn("mailhook run: " .. tostring(err))
  end
  if not svc.on then return svc end
  local every = M.STATUS_EVERY
  if svc.watchdog then every = math.min(every, svc.watchdog / 2) end
  svc.timer = mh.every(every, function() svc:tick() end)
  return svc
end

return M
