-- mailhook.status — the answer to "is mail flowing, and if not, why?" for
-- `mailhook status`, the console and /metrics.
--
-- The service side: status.tracker{delivery = d, ...} follows the deliverer
-- (the d.on_change hook of mailhook.delivery) and keeps the live state; it
-- rewrites SPOOL/status.json by rename on each change of state (message
-- outcomes coalesced to a few writes a second), at once when asked by SIGUSR2,
-- and a last time when the service stops.
--
-- The asking side: status.collect{...} (waits) finds who holds the spool's
-- lock (/proc/locks: never taking the lock), asks that service with SIGUSR2 and
-- waits for a fresher status.json (the channel `mailhook flush` uses: a signal,
-- and a file written by rename), falls back to the last file when the service
-- does not answer, and reads the queue from the spool itself.  One report
-- table, rendered as text (status.text) or JSON; status.flowing(report) is the
-- exit status of `mailhook status`.
--
--   local t = status.tracker{delivery = d, spool_dir = dir, conf = path, console = url}
--   t:snapshot() -> the service part of a report     t:stop()  (waits: the last write)
--   status.collect{[spool_dir =, conf =, tracker =, ask = true, timeout = 2, now =]} -> report
--   status.text(report) -> text                       status.flowing(report) -> bool, why
local core = require "mailhook.core"
local seconds = require("mailhook.duration").seconds   -- a cfg value read again

local M = {}

M.FILE = "status.json"           -- in the spool folder, beside flush.done
M.MIN_WRITE_INTERVAL = 0.25      -- seconds between two writes of the file (coalescing)
M.ASK_TIMEOUT = 2                -- seconds `mailhook status` waits for the service's answer
M.STUCK_LIST = 100               -- files of maildrop/ the service cannot adopt named in status.json (the rest counted)
M.STUCK_SHOWN = 10               -- of which `mailhook status` shows

-- States of the connection, as the report names them.
M.STATES = { "idle", "connecting", "connected", "waiting-retry", "disabled", "stopping", "stopped" }

function M.file_path(dir) return dir .. "/" .. M.FILE end

-- ------------------------------------------------------------------ cond
-- A wake-up between tasks: cond:wait(seconds) sleeps until cond:notify() or
-- the timeout (returns true when notified).  One waiter at a time.
local Cond = {}
Cond.__index = Cond

function M.cond() return setmetatable({ set = false }, Cond) end

function Cond:wait(seconds)
  if self.set then self.set = false; return true end
  local mh = require "mailhook"
  self.task, self.sleeping = mh.current_task(), true
  pcall(mh.sleep, seconds)
  self.sleeping, self.task = false, nil
  local was = self.set
  self.set = false
  return was
end

function Cond:notify()
  self.set = true
  if self.sleeping and self.task then
    self.sleeping = false
    self.task:cancel()
  end
end

-- ---------------------------------------------------------------- helpers

-- status.json is a spool file: read by the core's rule (a regular file, no
-- link followed, bounded), replaced by its atomic write (an O_EXCL temporary
-- file, never a fixed name a link could be planted on; mode 0600).
local function read_file(path) return (core.fsutil.read(path)) end
local function write_file(path, data) return core.fsutil.write_atomic(path, data, 384) end

-- running(dir) -> the connection part of SPOOL/status.json | nil: what the
-- running service last wrote, when the spool's lock holder wrote it (a file
-- left by a stopped service is not its state).  Never a signal: read by
-- commands monitors poll (mailq, mailhook queue).
function M.running(dir)
  dir = dir or core.paths.spool
  local okj, snap = pcall(require("mailhook.json").decode, read_file(M.file_path(dir)) or "")
  local pid = okj and type(snap) == "table" and core.admin.lock_holder(dir)
  local c = pid and snap.pid == pid and type(snap.connection) == "table" and snap.connection
  return c or nil
end

-- maildrop_stuck(dir) -> {NAME = reason...} | nil: the files of maildrop/
-- the running service (the lock holder that wrote SPOOL/status.json) left
-- there, with the reason it logged; nil without a running service.  Never a
-- signal (the service writes the file when that list changes).
function M.maildrop_stuck(dir)
  dir = dir or core.paths.spool
  local okj, snap = pcall(require("mailhook.json").decode, read_file(M.file_path(dir)) or "")
  local pid = okj and type(snap) == "table" and core.admin.lock_holder(dir)
  if not (pid and snap.pid == pid and type(snap.maildrop_stuck) == "table") then return nil end
  local m = {}
  for _, w in ipairs(snap.maildrop_stuck) do
    if type(w) == "table" and type(w.name) == "string" then m[w.name] = tostring(w.reason) end
  end
  return m
end

local function reply_of(info)
  if type(info) ~= "table" or not (info.smtp or info.text) then return nil end
  return { smtp = info.smtp, enhanced = info.enhanced,
           text = info.text and (tostring(info.text):gsub("[\r\n]+", " ")) or nil }
end

-- The state the report shows for the workers (one connection by default):
-- the worst of them, in this order.
local RANK = { ["waiting-retry"] = 1, disabled = 2, connecting = 3, connected = 4, idle = 5,
               stopping = 6, stopped = 7 }

local function worker_state(w)
  local s = w.state
  if s == "sending" or (s == "idle" and w.session) then return "connected" end
  return s or "idle"
end

-- ---------------------------------------------------------------- tracker

local Tracker = {}
Tracker.__index = Tracker

-- tracker{delivery = d, spool_dir =, conf =, console = url | nil, now =}
-- Sets d.on_change; starts the writer task.  Call t:stop() when the service stops.
function M.tracker(opts)
  local mh = require "mailhook"
  local d = assert(opts.delivery, "status.tracker needs {delivery = d}")
  local t = setmetatable({
    d = d,
    dir = opts.spool_dir or core.paths.spool,
    conf = opts.conf or core.paths.conf,
    console = opts.console,
    settings_stamp = opts.settings_stamp,   -- settings.stamp of the files the service loaded
    now = opts.now or mh.now,
    started_at = (opts.now or mh.now)(),
    pid = opts.pid or M.pid(),
    seq = 0,                     -- bumped by each write: `mailhook status` waits for a new one
    state = "idle", since = nil, -- the aggregated connection state and since when
    server = nil,                -- the server of the last session opened
    outage = nil,                -- {since, error, stage, reply, refused}
    last_error = nil,            -- {at, error, stage, reply, id}: kept after recovery
    last_success = nil,          -- time of the last message delivered
    dirty = true, urgent = true,
    cond = M.cond(),
    pause = M.cond(),            -- the pause after a write, cut short by stop() alone
    listeners = {},              -- fn(t) called after each change (the console's live page)
  }, Tracker)
  t.since = t.started_at
  d.on_change = function(_, event, ...) t:on_change(event, ...) end
  -- a file of maildrop/ the adoption leaves there (or one it takes again):
  -- written at once, `mailhook queue` reads it (M.maildrop_stuck)
  require("mailhook.maildrop").on_change(t, function() t.dirty = true; t.cond:notify() end)
  t.writer = mh.spawn(function() t:write_loop() end)
  return t
end

-- The process id, from /proc/self/stat (no getpid in Lua).
function M.pid()
  local f = io.open("/proc/self/stat", "rb")
  local s = f and f:read(64)
  if f then f:close() end
  return s and tonumber(s:match("^(%d+)")) or nil
end

function Tracker:on_change(event, w, a, b, c)
  local now = self.now()
  if event == "state" then
    -- (worker, old, new, detail)
    if w and w.session and w.session.info then
      local ok, i = pcall(w.session.info, w.session)
      if ok and type(i) == "table" then self.server, self.security = i.server or self.server, i.security end
    end
    local agg = self:aggregate()
    -- a reconnection attempt during an outage is still the outage (its since stays)
    if agg == "connecting" and self.outage then agg = "waiting-retry" end
    if agg ~= self.state then
      self.state, self.since = agg, now
      self.urgent = true
    end
    if agg == "connected" or agg == "disabled" or (agg == "idle" and not self.d.outage) then
      self.outage = nil              -- over (a reconnection attempt is still part of it)
    end
  elseif event == "outage" then
    -- (worker, err, info): the connection failed; the queue waits retry_interval
    local info = type(b) == "table" and b or {}
    local e = { at = now, error = tostring(a), stage = info.stage, reply = reply_of(info),
                refused = info.session_refused or nil }
    if not self.outage then
      self.outage = { since = (type(self.d.outage) == "table" and self.d.outage.since) or now }
    end
    self.outage.error, self.outage.stage, self.outage.reply = e.error, e.stage, e.reply
    self.outage.last_attempt = now
    self.last_error = e
    self.urgent = true
  elseif event == "delivered" then
    self.last_success = now
  elseif event == "deferred" or event == "failed" then
    -- (entry, reply): a message-level outcome, kept as the last error seen
    self.last_error = { at = now, error = (event == "failed" and "moved to failed/" or "deferred"),
                        id = w and w.id, reply = a and { text = tostring(a) } or nil }
  end
  self.dirty = true
  if self.urgent then self.cond:notify() end
  for _, fn in pairs(self.listeners) do pcall(fn, self) end
end

-- The workers' states folded into one (the worst), and the earliest since.
function Tracker:aggregate()
  local best, since
  for _, w in ipairs(self.d.workers or {}) do
    local s = worker_state(w)
    if not best or RANK[s] < RANK[best] then best, since = s, w.since end
  end
  return best or "idle", since
end

-- The service part of a report, as the file holds it.
function Tracker:snapshot()
  local d = self.d
  local st = d.stats or {}
  local ready, why = true, nil
  if d.ready then ready, why = d.ready(d.cfg) end
  local state = self.stopped and "stopped" or (d.stopping and "stopping") or self.state
  -- the ids whose data is with the server now, their outcome awaited
  -- (delivery.lua Worker:burst; `mailhook queue rm` says so of them)
  local sending
  for _, w in ipairs(d.workers or {}) do
    if w.sending then sending = sending or {}; sending[#sending + 1] = w.sending end
  end
  local stuck, stuck_total = require("mailhook.maildrop").stuck(M.STUCK_LIST)
  if stuck_total == 0 then stuck, stuck_total = nil, nil end
  local next_attempt
  if state == "waiting-retry" and self.outage then
    next_attempt = (self.outage.last_attempt or self.outage.since) + seconds(d.cfg.retry_interval, 30)
  end
  return {
    pid = self.pid, started_at = self.started_at, updated_at = self.now(), seq = self.seq,
    stopped_at = self.stopped_at, console = self.console,
    settings_ready = ready and true or false, settings_error = (not ready) and why or nil,
    settings_stamp = self.settings_stamp,
    reload_error = self.reload_error,   -- {at, error}: the last SIGHUP's settings did not load
    -- the last flush pass's answer (SPOOL/flush.done) could not be written: why
    -- (what a waiting `mailhook flush` says and stops on: mailhook.flush)
    flush_error = d.flush_error,
    sending = sending,
    -- the files of maildrop/ the service's adoption had to leave there (it
    -- cannot read them: a mode, an owner its user namespace hides), tried
    -- again at each scan and logged once each: named here for `status`
    maildrop_stuck = stuck,
    maildrop_stuck_total = stuck_total,
    connection = {
      state = state, since = self.since, server = self.server, security = self.security,
      servers = d.cfg.server, port = d.cfg.port,
      outage = self.outage, next_attempt = next_attempt,
      last_error = self.last_error, last_success = self.last_success,
      connections = #(d.workers or {}),
    },
    -- partial: of the failed, those some recipients got (mailhook.delivery D:fail),
    -- partial_delivered of their partial_recipients recipients (as `mailhook flush`
    -- says them; /metrics has each counter here: mailhook.console metrics_text)
    counters = { delivered = st.delivered or 0, deferred = st.deferred or 0, failed = st.failed or 0,
                 attempts = st.attempts or 0, partial = st.partial or 0,
                 partial_delivered = st.partial_delivered or 0, partial_recipients = st.partial_recipients or 0 },
  }
end

function Tracker:write()
  local json = require "mailhook.json"
  self.seq = self.seq + 1
  self.dirty, self.urgent = false, false
  local ok, err = write_file(M.file_path(self.dir), json.encode(self:snapshot()) .. "\n")
  if not ok and not self.warned then
    self.warned = true
    require("mailhook").log.warn("status: cannot write " .. M.file_path(self.dir) .. ": " .. tostring(err))
  end
  self.last_write = self.now()
end

-- Writes when something changed: at once for a change of state, else at most
-- every MIN_WRITE_INTERVAL (a drain of thousands of messages costs a few writes).
function Tracker:write_loop()
  local mh = require "mailhook"
  while not self.stopped do
    if self.dirty then
      self:write()
      -- (stop() ends the pause: every service stop waited it out, 0.25 s
      -- after the last write, idle or not)
      self.pause:wait(M.MIN_WRITE_INTERVAL)
    end
    if not self.dirty and not self.stopped then self.cond:wait(30) end
  end
end

-- SIGUSR2: `mailhook status` asks (and `mailhook queue rm`, after its removal);
-- the answer is a fresh file.  The messages the deliverer loaded ahead are looked
-- at again before they go (mailhook.delivery D:look_again): one removed meanwhile
-- is not sent.
function Tracker:answer()
  local d = self.d
  if d.look_again then d:look_again() end
  self:write()
end

-- The service stops: the last state, said so.
function Tracker:stop()
  if self.stopped then return end
  self.stopped = true
  self.stopped_at = self.now()
  self.state, self.since = "stopped", self.stopped_at
  self.cond:notify()
  self.pause:notify()
  if self.writer then self.writer:wait() end
  self:write()
  self.d.on_change = nil
end

-- ---------------------------------------------------------------- collect

local function exists(path) return core.rstate.exists(path) end   -- a stat: nothing is opened

local function decode(text)
  if not text then return nil end
  local ok, v = pcall(require("mailhook.json").decode, text)
  return ok and type(v) == "table" and v or nil
end

-- json.null -> nil, recursively (a file written by json.encode holds no null, but be strict).
local function denull(v)
  local json = require "mailhook.json"
  if v == json.null then return nil end
  if type(v) == "table" then for k, x in pairs(v) do v[k] = denull(x) end end
  return v
end

-- holder(pid) -> what holds the spool's lock, in words, and the command
-- ("mailhook flush"), when it is a mailhook command that is no service
-- (`mailhook flush`, `sendmail -q`, a script's mh.queue.flush()): it delivers
-- the queue once and ends; nil otherwise.
function M.holder(pid)
  local f = io.open("/proc/" .. tostring(pid) .. "/cmdline", "rb")
  local text = f and f:read(4096) or ""
  if f then f:close() end
  local argv = {}
  for a in text:gmatch("([^%z]*)%z") do argv[#argv + 1] = a end
  if not (argv[1] and argv[1]:find("mailhook", 1, true) or argv[1] and argv[1]:find("sendmail", 1, true)) then
    return nil
  end
  -- named by the program and the argument that made it a deliverer, global
  -- options left out (the first three words read `mailhook -c /etc/mailhook.conf`,
  -- or `mailhook flush --timeout`)
  local prog = argv[1]:gsub("^.*/", "")
  for i = 2, #argv do
    if argv[i] == "run" then return nil end
    if argv[i] == "flush" or argv[i] == "-q" or argv[i]:match("^%-q%d") or argv[i] == "-e" or argv[i]:match("%.lua$") then
      local what = argv[i] == "-e" and (prog .. " -e CODE") or (prog .. " " .. argv[i]:gsub("^.*/", ""))
      -- the words are the process's own (any user names their program and its
      -- arguments): shown by mailhook.display's rule for text local users
      -- wrote (a control byte, a C1 control as \xNN, a direction override as
      -- \u202e), the whole cut to 200 bytes on a character boundary (a cut
      -- inside a character wrote a byte that is no UTF-8)
      local display = require "mailhook.display"
      what = display.cut(display.raw(what), 200)
      return string.format("a `%s` (pid %d) holds the spool: it delivers the queue once and " ..
                           "ends; wait for it", what, pid), what
    end
  end
  return nil
end

-- Asks the service holding the lock for a fresh file (SIGUSR2) and waits up
-- to timeout for it.  Returns the snapshot and whether it answered.  The signal
-- is sent only to a service that wrote the file itself (its pid is in it): one
-- that does not know SIGUSR2 would be killed by it.
local function ask(dir, pid, timeout)
  local mh = require "mailhook"
  local path = M.file_path(dir)
  local old = denull(decode(read_file(path)))
  if not old or old.pid ~= pid then
    return nil, false, M.holder(pid) or ("the lock holder (pid " .. pid .. ") wrote no status file: not asked " ..
      "(an older mailhook, or another program; SIGUSR2 could stop it)")
  end
  local seq = old.seq
  local ok = core.signal.kill(pid, "USR2")
  if not ok then return old, false, "cannot signal pid " .. pid end
  local deadline = mh.monotonic() + timeout
  repeat
    mh.sleep(0.02)
    local cur = denull(decode(read_file(path)))
    if cur and cur.pid == pid and (cur.seq or 0) > (seq or 0) then return cur, true end
  until mh.monotonic() > deadline
  return old, false, string.format("the service (pid %d) did not answer within %g s", pid, timeout)
end

M.ask = ask   -- (mailhook.queue sending: `queue rm` of a message in flight)

-- The queue, read from the spool (no lock, nothing moved): pickup/ count and
-- oldest message, failed/ count, drop-ins not adopted yet.
function M.queue_facts(dir, now)
  local q = { pickup = 0, failed = 0, drop_ins = 0 }
  local ids, total, _, others = core.admin.page(dir .. "/pickup", { limit = 1 })
  if not ids then q.error = total; return q end
  q.pickup, q.drop_ins = total, others
  if ids[1] then
    q.oldest_id = ids[1]
    local sp = require("mailhook.queue").spool(dir)       -- opened once per folder
    local e = sp and sp:load(ids[1])
    if type(e) == "table" and e.queued_at then
      q.oldest_queued_at = e.queued_at
      q.oldest_age = math.max(0, math.floor(now - e.queued_at))
    end
  end
  local fids, ftotal = core.admin.page(dir .. "/failed", { limit = 0 })
  if fids then q.failed = ftotal end
  -- what waits outside pickup/, and what will never be sent: a local user's
  -- message still in maildrop/ (the service stopped, or refusing it: its log
  -- says why), and files set aside in corrupt/ (they were nowhere in the report)
  q.maildrop = require("mailhook.maildrop").count(dir)
  local cids, ctotal, _, cothers = core.admin.page(dir .. "/corrupt", { limit = 0 })
  q.corrupt = cids and (ctotal + (cothers or 0)) or 0
  return q
end

-- collect{...} -> report (waits).  Options: spool_dir, conf (paths), tracker (in
-- the service itself: no signal), ask (false: never signal), timeout.  With a
-- tracker and no paths, those of the tracker's service (its spool and settings
-- file: the queue, failed/ and the outage of the spool it delivers, never the
-- default one's; the console's /api/status and /metrics).
function M.collect(opts)
  opts = opts or {}
  local mh = require "mailhook"
  local now = (opts.now or mh.now)()
  local tr = opts.tracker
  local dir = opts.spool_dir or (tr and tr.dir) or core.paths.spool
  local conf = opts.conf or (tr and tr.conf) or core.paths.conf
  local r = { checked_at = now, spool = dir }

  -- the settings file, as a service would load it now
  local settings = require "mailhook.settings"
  local cfg, err = settings.load(conf)
  r.settings = { path = conf }
  if not cfg then
    r.settings.ready, r.settings.error = false, err
  else
    local ok, why = settings.ready(cfg)
    r.settings.ready, r.settings.error = ok and true or false, (not ok) and why or nil
    r.settings.server, r.settings.port = cfg.server, cfg.port
  end

  -- the service
  local snap, answered, why
  r.service = { running = false }
  if opts.tracker then
    snap, answered = opts.tracker:snapshot(), true
    r.service.running, r.service.pid = true, snap.pid
  elseif not exists(dir .. "/pickup") then
    -- a spool this user may not look into (0710, the service's: a monitoring
    -- agent's `status`) is no missing spool (it said "no spool" of a healthy one)
    local o = core.fsutil.owner(dir)
    local _, perr, pinfo = core.fsutil.owner(dir .. "/pickup")
    if o and pinfo and pinfo.code == "ENOTDIR" then
      -- a file where the spool belongs (a -s typo, a path swapped): said so, not
      -- "cannot look into" with a fix (run as root) that cannot work
      r.service.error = string.format("the spool %s is not a folder (%s)", dir, tostring(perr):match(": ([^:]*)$") or
                                      "Not a directory")
    elseif o and pinfo and pinfo.code == "EACCES" then
      local me = core.maildrop.whoami()
      r.service.error = string.format("this user (%s) cannot look into the spool %s (mode %04o, %s's): run " ..
        "`mailhook status` as root%s", me.elogin or tostring(me.euid), dir, o.mode, o.user,
        o.uid ~= 0 and (" or as " .. o.user) or "")
      r.spool_unreadable = true
    elseif o then
      -- a folder with no pickup/ yet (what `make install` leaves before the
      -- service first ran): root was told it "cannot look into" it, and to run
      -- as root.  Only a denied look is that; this one is an empty spool.
      r.service.error = "no spool at " .. dir .. " (it has no pickup/ folder yet: the service, " ..
                        "`mailhook sendmail` and `mailhook enqueue` make it)"
    else
      r.service.error = "no spool at " .. dir
    end
  else
    local pid, lerr = core.admin.lock_holder(dir)
    if pid == nil then r.service.error = lerr end
    -- a `mailhook flush` (or sendmail -q) holding the lock is no service: not
    -- listed as one running "since ?" (what it is, and to wait for it, said)
    local held, what = nil, nil
    if pid then held, what = M.holder(pid) end
    if held then
      r.service.error, r.service.flush_pid, r.service.holder = held, pid, what
    elseif pid then
      r.service.running, r.service.pid = true, pid
      if opts.ask ~= false then
        snap, answered, why = ask(dir, pid, opts.timeout or M.ASK_TIMEOUT)
      else
        snap = denull(decode(read_file(M.file_path(dir))))
        if snap and snap.pid ~= pid then snap = nil end
      end
      r.service.answered = answered
      if not answered then r.service.note = why end
    else
      local last = denull(decode(read_file(M.file_path(dir))))
      if last then
        r.service.last_pid = last.pid
        r.service.last_seen = last.stopped_at or last.updated_at
        r.service.last_stopped = last.stopped_at ~= nil
        r.service.last_connection = last.connection
      end
    end
  end
  if snap then
    r.service.since = snap.started_at
    r.service.updated_at = snap.updated_at
    r.service.console = snap.console
    r.service.settings_ready = snap.settings_ready
    r.service.settings_error = snap.settings_error
    r.service.reload_error = snap.reload_error
    r.service.maildrop_stuck = snap.maildrop_stuck
    r.service.maildrop_stuck_total = snap.maildrop_stuck_total
    -- a file written since the service loaded it: a fix saved and not reloaded
    -- (the service still delivers with the old settings; said, not "flowing" alone)
    if snap.settings_stamp and cfg then
      r.service.settings_changed = snap.settings_stamp ~= settings.stamp(conf)
    end
    r.connection = snap.connection
    r.counters = snap.counters
  end

  -- the queue
  if exists(dir .. "/pickup") then r.queue = M.queue_facts(dir, now) end
  -- the server outage the spool's last deliverer met and has not seen end
  -- (SPOOL/outage: the service's, or a flush's, or a run's before a restart,
  -- as `mailhook queue` and the console show it): {since, age, error}
  local queue = require "mailhook.queue"
  local o = queue.outage(dir)
  -- (one about another server than the settings name now is over for them)
  if o and o.server and cfg and o.server ~= queue.outage_server(cfg) then o = nil end
  if o then r.outage = { since = o.since, age = math.max(0, math.floor(now - o.since)), error = o.error } end

  local ok, reason, but = M.flowing(r)
  r.flowing, r.reason = ok, reason
  r.old_settings = but == "old_settings" or nil
  -- (both may hold: flowing() names the first, and the stuck file is no less
  -- stuck for it; /metrics' mailhook_attention{maildrop_stuck} read 0 then)
  local stuck = r.service and r.service.maildrop_stuck_total
  r.maildrop_stuck = (but and type(stuck) == "number" and stuck > 0) or nil
  -- flowing, but only because nothing was tried: no message delivered, no
  -- connection failed since the service started (a restart at 3 a.m. with a
  -- wrong server read "mail is flowing" until the first message was queued).
  -- Still exit 0 (nothing waits), said as what it is.
  local c = r.connection
  if ok and c and c.state == "idle" and not c.last_success and not c.last_error and not c.outage then
    r.untried = true
  end
  return r
end

-- flowing(report) -> true | false, why [, but]: the exit status of `mailhook
-- status`.  Mail flows when a service runs on the spool and answers, the
-- settings are ready (for the file and for the service, which may not have
-- reloaded it), the connection is not waiting out an outage, and no file of
-- maildrop/ waits on a human.  but: the mail that can go goes, and yet exit 1
-- ("old_settings": the next restart or reload stops delivery;
-- "maildrop_stuck": a local user's message the service cannot adopt never
-- leaves until someone fixes or removes the file, and a 3 a.m. check reads only
-- the exit status; failed/ and corrupt/ hold mail whose fate is settled, so
-- they do not count).
function M.flowing(r)
  if not r.service.running then
    return false, r.service.error or "no service is running on this spool (start it: systemctl start mailhook, or mailhook run)"
  end
  if r.service.answered == false then
    -- a service whose loop does not answer within seconds delivers nothing either
    return false, tostring(r.service.note or "the service did not answer")
  end
  -- the file is not ready, but the service loaded good settings before and
  -- still delivers with them: not "NOT flowing" (the reviewer saw mail go 1 s
  -- later), but not fine either (the next restart stops delivery): exit 1,
  -- said as what it is, once the connection is known to work
  local file_only = not r.settings.ready and r.service.settings_ready == true
  if not r.settings.ready and not file_only then
    return false, "settings not ready: " .. tostring(r.settings.error)
  end
  if r.service.settings_ready == false then
    return false, "the service's settings are not ready: " .. tostring(r.service.settings_error) ..
      " (the file may have changed since: SIGHUP reloads it)"
  end
  local c = r.connection
  if not c then return false, r.service.note or "the service did not say how delivery goes" end
  if c.state == "waiting-retry" then
    local o = c.outage or c.last_error or {}
    return false, "the server cannot be reached: " .. tostring(o.stage and (o.stage .. ": ") or "") ..
      tostring(o.error or "?")
  end
  if c.state == "disabled" then return false, "delivery is paused: " .. tostring(r.service.settings_error or "settings not ready") end
  if c.state == "stopping" or c.state == "stopped" then return false, "the service is stopping" end
  if file_only then
    return false, "the settings file is not ready: " .. tostring(r.settings.error) .. "; a restart or a reload (SIGHUP) " ..
      "would stop delivery", "old_settings"
  end
  local n = r.service.maildrop_stuck_total
  if type(n) == "number" and n > 0 then
    return false, string.format("%d %s of maildrop/ the service cannot adopt never leave%s until %s fixed or " ..
      "removed (below; `mailhook queue rm NAME`)", n, n == 1 and "file" or "files", n == 1 and "s" or "",
      n == 1 and "it is" or "they are"), "maildrop_stuck"
  end
  return true
end

-- ---------------------------------------------------------------- text

local function clock(t)
  if not t then return "?" end
  return os.date("%Y-%m-%d %H:%M:%S", math.floor(t))
end

function M.ago(secs)
  if not secs then return "?" end
  secs = math.max(0, math.floor(secs + 0.5))
  if secs < 120 then return secs .. "s" end
  if secs < 7200 then return string.format("%dm", secs // 60) end
  if secs < 172800 then return string.format("%dh %dm", secs // 3600, secs % 3600 // 60) end
  return string.format("%dd %dh", secs // 86400, secs % 86400 // 3600)
end

local function reply_text(rep)
  if type(rep) ~= "table" then return nil end
  local parts = {}
  if rep.smtp then parts[#parts + 1] = tostring(rep.smtp) end
  if rep.text and rep.text ~= "" then parts[#parts + 1] = rep.text end
  return #parts > 0 and table.concat(parts, " ") or nil
end
M.reply_text = reply_text

local function plural(n, word) return n .. " " .. word .. (n == 1 and "" or "s") end

M.UNTRIED = "nothing to send: the server has not been tried since the service started " ..
  "(`mailhook test` tries it now)"

-- (messages wait, deferred before a restart, their next attempt not due yet:
-- not "nothing to send")
M.UNTRIED_WAITING = "idle: nothing sent since start, the server not tried yet; %s wait%s " ..
  "next attempt (`mailhook test` tries the server now)"

-- text(report) -> the lines `mailhook status` prints.  Each line is shown by
-- mailhook.display's rule for text local users wrote (a stuck maildrop/
-- file's name, a process's name, an error quoting either): a control byte, a
-- C1 control, a byte that is no UTF-8 as \xNN, a direction override or
-- U+2028/9 as \u202e, so nothing in them drives the terminal or forges a
-- line; what is escaped already stays as it is (the backslashes are kept).
function M.text(r)
  local now = r.checked_at
  local out = {}
  local function row(k, v) out[#out + 1] = string.format("%-13s%s", k, v) end
  local waiting = r.untried and r.queue and (r.queue.pickup or 0) > 0 and r.queue.pickup
  out[#out + 1] = waiting and M.UNTRIED_WAITING:format(plural(waiting, "message"),
                                                       waiting == 1 and "s for its" or " for their") or
    r.untried and M.UNTRIED or r.flowing and "mail is flowing" or
    r.old_settings and ("mail is flowing with the settings the service loaded before, but " .. tostring(r.reason)) or
    r.maildrop_stuck and ("mail is flowing, but " .. tostring(r.reason)) or
    ("mail is NOT flowing: " .. tostring(r.reason))
  local s = r.service
  if s.running then
    row("service", string.format("running, pid %s, since %s (%s)%s", tostring(s.pid), clock(s.since),
      M.ago(s.since and now - s.since), s.console and (", console " .. s.console) or ""))
    if s.note then row("", s.note .. (s.updated_at and (", last state from " .. clock(s.updated_at)) or "")) end
  elseif s.error then
    row("service", "not running: " .. s.error)
  else
    row("service", "not running" .. (s.last_pid and string.format(" (pid %d %s %s)", s.last_pid,
      s.last_stopped and "stopped at" or "last seen at", clock(s.last_seen)) or ""))
  end
  if r.settings.ready then
    row("settings", "ready (" .. tostring(r.settings.path) .. ")")
  else
    row("settings", "NOT ready: " .. tostring(r.settings.error))
  end
  if s.running and type(s.reload_error) == "table" then
    row("", string.format("the reload at %s failed: %s; the service still uses the settings it loaded " ..
      "before", clock(s.reload_error.at), tostring(s.reload_error.error)))
  elseif s.running and s.settings_changed then
    row("", string.format("changed since the service loaded them: it still uses the old ones until " ..
      "reloaded (systemctl reload mailhook, or kill -HUP %s)", tostring(s.pid)))
  end
  local c = r.connection
  if c then
    local servers = type(c.servers) == "table" and table.concat(c.servers, ", ") or tostring(c.servers or "?")
    local line
    if c.state == "connected" then
      line = "connected to " .. tostring(c.server or servers) .. (c.security and c.security ~= "none" and
        (" (" .. c.security .. ")") or "") .. " since " .. clock(c.since)
    elseif c.state == "waiting-retry" then
      local o = c.outage or {}
      line = string.format("waiting to retry since %s (%s): %s%s", clock(o.since or c.since),
        M.ago(now - (o.since or c.since or now)), o.stage and (o.stage .. ": ") or "", tostring(o.error))
      if reply_text(o.reply) and not tostring(o.error):find(reply_text(o.reply), 1, true) then
        line = line .. " (server said: " .. reply_text(o.reply) .. ")"
      end
    elseif c.state == "disabled" then
      line = "paused: " .. tostring(s.settings_error or "settings not ready")
    elseif r.untried then
      -- (not "idle since": that read as a session that works and has nothing to do)
      line = "idle: nothing sent since start, the server not tried yet (" .. servers .. " port " ..
        tostring(c.port or "?") .. ")"
    else
      line = c.state .. " (" .. servers .. " port " .. tostring(c.port or "?") .. ") since " .. clock(c.since)
    end
    row("connection", line)
    if c.next_attempt then
      row("next attempt", string.format("%s (in %s)", clock(c.next_attempt), M.ago(c.next_attempt - now)))
    end
    local e = c.last_error
    if e then
      local what = e.id and (e.id .. " " .. e.error) or e.error
      row("last error", string.format("%s %s%s%s", clock(e.at), e.stage and ("at " .. e.stage .. ": ") or "",
        tostring(what), reply_text(e.reply) and not tostring(what):find(reply_text(e.reply), 1, true)
          and (" (" .. reply_text(e.reply) .. ")") or ""))
    end
    row("last success", c.last_success and (clock(c.last_success) .. " (" .. M.ago(now - c.last_success) .. " ago)")
      or "none since start")
  end
  local q = r.queue
  if q then
    local line = plural(q.pickup, "message") .. " in pickup/"
    if q.oldest_age then line = line .. ", oldest " .. M.ago(q.oldest_age) end
    if q.drop_ins and q.drop_ins > 0 then line = line .. ", " .. q.drop_ins .. " dropped in, not adopted yet" end
    line = line .. "; " .. q.failed .. " in failed/"
    if q.maildrop and q.maildrop > 0 then
      line = line .. "; " .. q.maildrop .. " in maildrop/ (from local users: wait for the service)"
    end
    row("queue", line)
    local stuck, n = r.service.maildrop_stuck, r.service.maildrop_stuck_total
    if type(stuck) == "table" and type(n) == "number" and n > 0 then
      row("", string.format("%s of maildrop/ the service cannot adopt (tried again at each scan, logged once " ..
                            "each; fix the file, or `mailhook queue rm NAME`):", plural(n, "file")))
      for i, w in ipairs(stuck) do
        if i > M.STUCK_SHOWN then break end
        row("", string.format("  %s since %s: %s", tostring(w.name), clock(w.since),
                              (tostring(w.reason):gsub("^maildrop: ", ""))))
      end
      local shown = math.min(#stuck, M.STUCK_SHOWN)
      if n > shown then row("", string.format("  and %d more (`mailhook queue` lists them)", n - shown)) end
    end
    if q.corrupt and q.corrupt > 0 then
      row("", string.format("%s in %s/corrupt/: set aside as unusable, never sent (the log says why; " ..
                            "look at them, then remove them)", plural(q.corrupt, "file"), r.spool))
    end
  end
  if r.outage then
    row("outage", string.format("since %s (%s): %s", clock(r.outage.since), M.ago(r.outage.age), tostring(r.outage.error)))
  end
  local k = r.counters
  if k then
    -- the partly delivered as `mailhook flush` says them (their recipients too)
    local p = math.min(k.partial or 0, k.failed)
    row("since start", string.format("delivered %d, deferred %d, failed %d%s", k.delivered, k.deferred, k.failed,
                                     p > 0 and string.format(" (%spartly delivered: %d of %d recipients)",
                                                             p == k.failed and "" or (p .. " "),
                                                             k.partial_delivered or 0, k.partial_recipients or 0)
                                     or ""))
  end
  local shown = require("mailhook.display").kept
  for i, line in ipairs(out) do out[i] = shown(line) end
  return table.concat(out, "\n") .. "\n"
end

return M
