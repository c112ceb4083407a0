-- mailhook.delivery — the deliverer: it joins the spool (mailhook.spool) and the
-- SMTP engine (mailhook.smtp) into what `mailhook run` and `mailhook flush` do.
-- What a reply means is mailhook.outcome's to say; `flush` (one pass, or asking
-- the running service) is mailhook.flush; durations are read by mailhook.duration.
--
--   local delivery = require "mailhook.delivery"
--   local d = delivery.new{spool = sp, cfg = cfg}   -- other parts injectable (tests)
--   d:run()            -- waits: delivers until d:stop() (or, with once = true, until
--                      -- nothing is left that can be sent now)
--   d:kick()           -- something appeared in pickup/: look now
--   d:flush_request()  -- ignore backoff for one pass, reconnect now
--   d:reload(cfg)      -- new settings: sessions are reopened before the next message
--   d:stop()           -- finish the messages in flight (two with pipelining), QUIT, return
--   d:look_again()     -- the messages loaded ahead are looked at again before they go
--                      -- (`mailhook queue rm` asked: SIGUSR2, mailhook.status)
--
-- Each connection is a worker with an explicit state machine; in `sending` it
-- keeps two messages in flight (Worker:burst: the next one's commands ride with
-- the current one's final dot, its data waits until the current one is settled):
--
--   idle ──due message──> connecting ──ok──> sending ──queue empty──> idle
--     ^                      │  failed (dns, connect, tls, auth, 421)
--     │                      v
--     │                waiting-retry ──retry_interval──> connecting
--   disabled (settings not ready: no connection is attempted)
--   any state ──stop()──> stopping ──> stopped
--
-- enter() logs every transition at debug level; the lines an administrator
-- reads (paused, unreachable, reachable again, deferred, failed) are logged
-- once per change, never once per retry.
--
-- Outcomes of one message (the reply decides, not guesswork):
--   250 to the final dot, every recipient accepted   -> spool:delivered (unlink)
--   some recipients 4xx                              -> spool:defer with done = accepted
--   4xx for the message (MAIL, DATA, final dot)      -> spool:defer, backoff
--   5xx (message, or every recipient left)           -> spool:fail, sidecar, `failed` event
--   older than max_queue_age                         -> spool:fail "expired"
--   the session broke (421, EOF, timeout)            -> the queue waits retry_interval
--   530/538 to MAIL or RCPT (auth or TLS required)   -> the same: a setting, not the message
local M = {}
local math_type = math.type
local maillog = require "mailhook.maillog"   -- the per-recipient outcome lines (call sites: "maillog.")
local outcome = require "mailhook.outcome"
local duration = require "mailhook.duration"
local settings = require "mailhook.settings"

M.STATES = { "idle", "disabled", "connecting", "sending", "waiting-retry", "stopping", "stopped" }

-- Defaults (seconds) where the settings say nothing.
M.IDLE_CLOSE = 5       -- close a session after this long with nothing to send
M.SCAN_INTERVAL = 5    -- safety-net rescan of pickup/ when idle
M.STUCK_AFTER = 600    -- emit `queue_stuck` once an outage lasts this long
-- After stop(), how long the messages in flight may take before their sessions are cut
-- (they stay queued: sent again at the next start).  Below the unit's TimeoutStopSec=120:
-- a server stalling on the final dot would otherwise hold the stop for data_timeout
-- (600 s) and systemd would SIGKILL the service, a failed stop.
M.STOP_GRACE = 90
M.REFUSED_EXTRA = 2     -- first wait of a connection refused as one too many (W:outage)
M.BATCH = 1000         -- ids asked of spool:scan at a time (bounded memory on big backlogs)

-- The reply of a recipient mailhook refuses itself at a send, without asking
-- the server (Worker:burst: a non-ASCII address to a server without SMTPUTF8,
-- an angle bracket in a path), then why.
M.BY_MAILHOOK = "refused by mailhook (the server was not asked): "

-- by_mailhook(reply) -> "send" | "intake" | nil: a refusal no server made:
-- at a send (M.BY_MAILHOOK), or at intake (a drop-in's item that is no
-- address: runtime/spool.c dropin_refused, "... by mailhook, never sent",
-- recorded before any attempt, so no attempt's mail log line named it).
local function by_mailhook(reply)
  reply = tostring(reply)
  if reply:sub(1, #M.BY_MAILHOOK) == M.BY_MAILHOOK then return "send" end
  if reply:find(" by mailhook, never sent$") then return "intake" end
  return nil
end

-- backoff(attempts, base, cap [, random]) -> seconds before the next attempt of
-- a message that got a 4xx: base doubling with each attempt (base, 2 base, 4 base,
-- ...), times a jitter in [0.75, 1.25) so deferred messages do not come back in a
-- herd, never above cap.
function M.backoff(attempts, base, cap, random)
  random = random or math.random
  attempts = math.max(1, math.floor(attempts or 1))
  local d = base * 2 ^ math.min(attempts - 1, 40)
  if d > cap then d = cap end
  d = d * (0.75 + 0.5 * random())
  if d > cap then d = cap end
  return d
end

-- The uid the service's own mail is queued under (mh.enqueue from its rules:
-- the real uid, docs/spool.md), looked up once.
local the_uid
local function own_uid()
  if the_uid == nil then
    local ok, me = pcall(function() return require("mailhook.core").maildrop.whoami() end)
    the_uid = ok and type(me) == "table" and me.uid or false
  end
  return the_uid
end

-- The Subject of a spool file (for the `failed` event), read from its header.
local function subject_of(path)
  local f = path and require("mailhook.core").fsutil.open(path)   -- the core's rule: never a FIFO
  if not f then return nil end
  local head = f:read(65536) or ""
  f:close()
  -- lines end at CRLF, a bare CR or a bare LF (runtime/eol.h)
  head = head:gsub("\r\n", "\n"):gsub("\r", "\n")
  head = head:match("^(.-)\n\n") or head
  local s = head:match("\n[Ss][Uu][Bb][Jj][Ee][Cc][Tt]:[ \t]*([^\n]*)")
      or head:match("^[Ss][Uu][Bb][Jj][Ee][Cc][Tt]:[ \t]*([^\n]*)")
  -- a notice a `failed` rule queued (rules.notice_of): "failed ID"
  local n = ("\n" .. head):match("\n[Xx]%-[Mm][Aa][Ii][Ll][Hh][Oo][Oo][Kk]%-[Nn][Oo][Tt][Ii][Cc][Ee]:[ \t]*failed ([^\n]*)")
  return s, n
end

-- The deliverer's per-message disk work (load, the delivered record) runs on the loop thread
-- (`now`): files in the page cache, some 10 us of work, where a thread-pool
-- round trip cost more (two context switches each way: 12 per message were
-- measured, half the CPU of a drain).  Scans, fsyncs and the closes that free
-- the blocks stay on the pool.  A message up to DATA_MAX bytes comes with its
-- data, so it is not opened again to be sent, and its file is kept open for
-- the removal (no path lookup then: up to 16 kept per spool).  A bigger one is
-- streamed from its file: its clean lines go from the read buffer to the
-- socket, where held in memory it was copied twice (into a Lua string, then
-- stuffed): a 100 KB message drain cost 68 M instructions per 100 that way,
-- 39 M streamed (callgrind); an open and a close cost less than 2 x 16 KB.
-- `buffer`: the data comes as a handle on the bytes read (spool.md), which
-- s:submit hands to the engine, never copied into a Lua string.
M.DATA_MAX = 16 * 1024
local LOAD_OPTS = { data = M.DATA_MAX, keep = true, now = true, lean = true, buffer = true }   -- (done, refused: may be nil)
-- The spool's loader for those (sp:loader(LOAD_OPTS), made once per deliverer: D:next_entry):
-- load(id) is sp:load(id, LOAD_OPTS) without the five options read per message, and its
-- entry carries no `id` (set here), and no `attempts`, `next_attempt` when 0 (nil reads as
-- 0 wherever they are read).  A spool without one (a test's) is asked sp:load(id, LOAD_OPTS).
-- A message loaded ahead (Worker:burst) is looked at again before its
-- commands or its data go when it waited longer than this since its load (a
-- stalled or slow server): `mailhook queue rm` of it meanwhile is honoured,
-- as a streamed one's open at its send finds its file gone.  Not sooner: in
-- a fast drain a message waits a round trip, and the look costs two system
-- calls (spool:unchanged).  Seconds of the deliverer's clock (d.now).
M.RECHECK_AFTER = 0.1
local REMOVE_OPTS = { journal = true }

-- Whether any address of the list is not ASCII (per message: no table unless one is).
local sfind = string.find

local function eight_bit(list)
  for _, r in ipairs(list) do
    if r:find("[\128-\255]") then return true end
  end
  return false
end

local function plural(n, word) return n .. " " .. word .. (n == 1 and "" or "s") end

---------------------------------------------------------------- the deliverer

local D = {}
D.__index = D
-- (On the per-message path (Worker:burst, W:outcome, D:next_entry) a few
-- methods are called as D.f(d, ...) and W.f(w, ...): d:f() first looks for f
-- in d itself, misses, then finds it in D, some 120 instructions a call more
-- (callgrind; issue 16).  Nothing sets these on an object.)

-- The status hook (mailhook.status): d.on_change(d, event, ...) when set, for
-- "state" (worker, old, new, detail), "outage" (worker, err, info) and the
-- outcomes "delivered" (entry), "deferred" / "failed" (entry, reply).  It must
-- not wait; an error in it is logged and delivery goes on.
function D:changed(event, ...)
  local fn = self.on_change
  if not fn then return end
  local ok, err = pcall(fn, self, event, ...)
  if not ok then self.log.error("delivery: on_change: " .. require("mailhook.rules").error_text(err)) end
end

-- The engine, unless a test gives its own connect (a scripted session).
local function default_connect(cfg)
  return require("mailhook.smtp").connect(cfg)
end

-- The `failed`/`queue_stuck` events go to the rules when the rules module exists.
local function default_emit(event, fields)
  local mh = require "mailhook"
  local emit = rawget(mh, "emit")
  if not emit then
    local rules = mh.rules
    emit = rules and rules.emit
  end
  if emit then return emit(event, fields) end
end

-- new{spool =, cfg = [, connect =, ready =, emit =, log =, now =, sleep =, spawn =,
--      random =, idle_close =, scan_interval =, stuck_after =, connections =, once =, queue =]}
function M.new(opts)
  assert(type(opts) == "table" and opts.spool, "delivery.new needs {spool = ...}")
  local mh = require "mailhook"
  local d = setmetatable({
    spool = opts.spool,
    cfg = opts.cfg or {},
    connect = opts.connect or default_connect,
    ready = opts.ready or settings.ready,   -- settings not ready: paused, nothing attempted
    emit_fn = opts.emit or default_emit,
    log = opts.log or mh.log,
    now = opts.now or mh.now,
    sleep = opts.sleep or mh.sleep,
    spawn = opts.spawn or mh.spawn,
    random = opts.random or math.random,
    idle_close = opts.idle_close or M.IDLE_CLOSE,
    scan_interval = opts.scan_interval or M.SCAN_INTERVAL,
    stuck_after = opts.stuck_after or M.STUCK_AFTER,
    stop_grace = opts.stop_grace or M.STOP_GRACE,
    once = opts.once or false,          -- flush mode: one pass, backoff ignored, stop on outage
    n = opts.connections,
    workers = {},
    queue = opts.queue or {}, pos = 1,  -- the last scan, oldest first, and where we are in it
                                        -- (opts.queue: a scan the caller made, flush's count)
    claimed = {},                       -- id -> worker sending it
    later = {},                         -- id -> next_attempt of a deferred message
    unrecorded = {},                    -- id -> {done, refused, attempts} a deferral could not
                                        -- write (a full disk): kept here, never sent again
    seen = {},                          -- ids attempted in this forced pass (flush)
    forced = opts.once or false,        -- backoff ignored until the pass ends
    kicked = false,
    stopping = false,
    outage = nil,                       -- {err =, since =, stuck =} while the server is unreachable
    outage_file = opts.outage_file,     -- SPOOL/outage: the outage as `mailhook queue` shows it (M.record_outage)
    -- partial: of the failed, those some recipients got (partial_delivered of
    -- their partial_recipients recipients; mailhook.flush's summary)
    stats = { delivered = 0, deferred = 0, failed = 0, attempts = 0, errors = 0, partial = 0,
              partial_delivered = 0, partial_recipients = 0 },
    unsynced = 0,                       -- records (or removals) not yet covered by an fsync
    syncing = nil,                      -- the task running that fsync, if any
    marked = 0,                         -- delivered records since the last purge
    marked_bytes = 0,                   -- and the bytes of their files
    last_delivered = nil,               -- when the last one was recorded (flush's figures)
    purging = nil,                      -- the task removing their files, if any
    last_error = nil,                   -- once mode: why the pass stopped early
    verbose = true,                     -- info lines are logged (else not even built)
    -- false, not absent: read per message (Worker:burst's withdrawn, D:delivered),
    -- and a key absent here is looked up in D too (two lookups a read: some
    -- 120 instructions each, callgrind; issue 16)
    asked_at = false,                   -- when the last `queue rm` asked for a look again (D:look_again)
    on_change = false,                  -- the status tracker's hook (status.lua), if any
    load_fn = false,                    -- load(id): the spool's loader (D:next_entry), made at its first use
  }, D)
  d:check_verbose()
  d:load_outage()
  return d
end

-- The outage an earlier run (a service, a flush) recorded and did not see
-- end: it goes on until a server answers a message, so its start is kept (the
-- queue_stuck event, "reachable again after N s", the status's "since" count
-- from it, not from this start).  A server reachable again clears it at the
-- first answered message, as any outage.
function D:load_outage()
  if not self.outage_file then return end
  local o = require("mailhook.queue").outage_at(self.outage_file)
  if not o then return end
  -- an outage of another server (the settings changed since): not this one's
  -- start ("so since 10:28, before this start" named a port nothing used now)
  if o.server and o.server ~= require("mailhook.queue").outage_server(self.cfg or {}) then return end
  self.outage = { err = o.error, since = o.since, earlier = true }
  self.outage_shown = o.error     -- the file says it already: not written again for the same error
end

-- Is the per-message info line wanted?  (Building it cost as much as a syscall.)
function D:check_verbose()
  local level = type(self.log) == "table" and type(self.log.level) == "function" and self.log.level()
  self.verbose = not level or level == "debug" or level == "info"
end

function D:cfgn(key, default)
  return duration.seconds(self.cfg[key], default)
end

-- max_queue_age in seconds, parsed once per settings (next_entry asks per message).
function D:max_age()
  if self.max_age_of ~= self.cfg then
    self.max_age_of, self.max_age_s = self.cfg, self:cfgn("max_queue_age", 5 * 86400)
  end
  return self.max_age_s
end

-- Events run in their own task: a slow handler (an SMS gateway, a ticket system)
-- never holds the queue.
function D:emit(event, fields)
  self.spawn(function()
    local ok, err = pcall(self.emit_fn, event, fields)
    if not ok then
      self.log.error("delivery: a `" .. event .. "` handler raised: " .. require("mailhook.rules").error_text(err))
    end
  end)
end

-- Wakes every worker waiting in a sleep (and, when `hard`, one connecting): a new
-- message, a flush, a reload, a stop.  Sending workers are never interrupted.
function D:wake(hard)
  for _, w in ipairs(self.workers) do
    if w.task and (w.sleeping or (hard and w.state == "connecting" and w.interruptible)) then
      w.woken = true
      w.task:cancel()
    end
  end
end

function D:kick()
  self.kicked = true
  local scans = false
  for _, w in ipairs(self.workers) do
    -- an outage keeps its own cadence: a new message does not reconnect at once
    if w.state ~= "waiting-retry" and w.state ~= "disabled" then
      scans = true
      if w.sleeping then w.woken = true; w.task:cancel() end
    end
  end
  -- no worker will scan soon (each waits out an outage, or mail is disabled):
  -- one of them adopts maildrop/ now and sleeps on (W:wait), so that a local
  -- user's drop is queued, in its turn, not at the end of the outage
  if not scans then
    local asleep
    for _, w in ipairs(self.workers) do
      if w.sleeping then asleep = w; break end
    end
    if asleep then asleep.adopt_due = true; asleep.task:cancel()
    elseif self.workers[1] then
      -- none asleep: each is adopting (or about to), and its look at maildrop/
      -- may have come before this drop; the first adopts again before it sleeps
      self.workers[1].adopt_due = true
    end
  end
end

-- maildrop/ into pickup/ (the spool's adopt: the lock holder's), for a worker
-- that scans nothing meanwhile.  A spool without adopt (a test's) does nothing.
function D:adopt()
  local sp = self.spool
  local ok, adopt = pcall(function() return sp.adopt end)
  if not (ok and adopt) then return end
  local aok, err = pcall(adopt, sp)
  if not aok and type(err) == "userdata" and getmetatable(err) == nil then error(err, 0) end
  if not aok then self.log.error("delivery: maildrop adoption failed: " .. tostring(err)) end
end

function D:flush_request()
  self.forced = true
  -- when the last request came (the system's monotonic clock, as the waiting
  -- `mailhook flush` reads it): the answer says the requests it covers, so a
  -- pass that ended before a request was handled is not taken for its answer
  self.forced_asked = require("mailhook").monotonic()
  self.seen = {}
  self.kicked = true
  self:wake(false)
end

-- The forced pass asked by flush_request() is over (err: why it stopped early).
function D:end_forced(err)
  local asked = self.forced_asked
  self.forced, self.seen, self.forced_asked = false, {}, nil
  if self.on_flushed then
    local ok, e = pcall(self.on_flushed, self, err, asked)
    if not ok then self.log.error("delivery: on_flushed: " .. require("mailhook.rules").error_text(e)) end
  end
end

function D:reload(cfg)
  self.cfg = cfg
  -- the sender of drop-ins that name none follows the settings (`from`)
  if type(self.spool) == "userdata" then require("mailhook.spool").dropin_sender(self.spool, cfg) end
  self.auth_refusals = nil   -- new settings: a refused login is tried again at the usual pace
  self:check_verbose()
  for _, w in ipairs(self.workers) do w.stale = true end
  self.kicked = true
  self:wake(false)
end

function D:stop()
  if self.stopping then return end
  self.stopping = true
  self:wake(true)
  -- the grace of the messages in flight: then their sessions are cut (run() cancels it)
  self.grace_task = self.spawn(function()
    pcall(self.sleep, self.stop_grace)
    self.grace_task = nil
    for _, w in ipairs(self.workers) do
      local s = w.session
      if s and w.state ~= "stopped" then
        self.log.warn(string.format("delivery: stopping: the server has not finished %s after %g s; " ..
          "session closed, the message stays queued and is sent again at the next start",
          tostring(w.detail or "the message in flight"), self.stop_grace))
        w.session, w.cut = nil, true        -- its task ends on "interrupted": expected, not an error
        pcall(s.close, s)
      end
    end
  end)
end

-- The outage as the spool keeps it (SPOOL/outage, opts.outage_file): "since
-- UNIX" and "error STAGE: ERR" lines, written when it starts or its error
-- changes, removed once a session works again.  Only the message an attempt
-- was for records the reason in its own state (W:outage); this file is what
-- `mailhook queue` and mailq show for every other waiting message, also when
-- no service runs (a `mailhook flush` or `sendmail -q` found the server down).
function D:record_outage(now, why)
  if not self.outage_file or self.outage_shown == why then return end
  local since = self.outage and self.outage.since or now
  local ok, res, err = pcall(require("mailhook.core").fsutil.write_atomic, self.outage_file,
    string.format("since %d\nerror %s\nserver %s\n", math.floor(since), (why:gsub("%c", " ")),
                  (require("mailhook.queue").outage_server(self.cfg or {}):gsub("%c", " "))), 384, { sync = false })
  if not (ok and res) then
    self.log.warn("delivery: cannot write " .. self.outage_file .. ": " .. tostring(ok and err or res))
  end
  self.outage_shown = why
end

-- A server answered a message: an outage (a refusal of the session included)
-- is over, and SPOOL/outage goes.  Not at connect: a server that takes the
-- connection and drops it in every DATA would else be "reachable again" and
-- "unreachable" at every retry, two lines each time, and the record would
-- come and go.
function D:recovered()
  local outage = self.outage
  if outage then
    self.log.info(string.format(outage.refused and "delivery: the server accepts mail again after %d s (was: %s)"
                                or "delivery: server reachable again after %d s (was: %s)",
                                math.floor(self.now() - outage.since + 0.5), outage.err))
    self.outage = nil
  end
  self:clear_outage()
end

function D:clear_outage()
  if not self.outage_file or self.outage_shown == false then return end
  os.remove(self.outage_file)   -- (none left by an earlier run: nothing to do)
  self.outage_shown = false
end

-- Any worker still in an outage?
function D:state()
  local s = {}
  for i, w in ipairs(self.workers) do s[i] = w.state end
  return s
end

-- next_entry(w) -> entry | nil, soonest next_attempt.  Claims the entry for w.
-- Walks the last scan oldest first; scans again once when it is used up.
-- Expired messages met on the way go to failed/ here, so they expire even
-- while the server is unreachable.
function D:next_entry(w)
  local sp = self.spool
  local now = self.now()
  local rescanned, regone = false, false
  local soonest
  while not self.stopping do
    if self.pos > #self.queue then
      if rescanned then break end
      rescanned = true
      -- a sidecar another process wrote (`queue retry` of a deferred message):
      -- the next attempts kept here are looked at again (a retry did nothing
      -- while the service ran, until the old backoff ended)
      local mark = sp.sidecars and sp:sidecars()
      if mark ~= self.sidecars_mark then
        if self.sidecars_mark ~= nil then self.kicked = true end
        self.sidecars_mark = mark
      end
      if self.kicked then self.later = {}; self.kicked = false end
      -- the messages in flight are still in pickup/ and come back first (the
      -- oldest): the limit is for the ones to send next, so a batch does not
      -- fall short by them (a drain of 2,000 scanned a third time for the last two)
      local limit = M.BATCH
      for _ in pairs(self.claimed) do limit = limit + 1 end
      local ids, serr = sp:scan(limit)
      if type(ids) ~= "table" then
        -- pickup/ cannot be listed (an I/O error): said once per change, not
        -- at every scan (it waited without a word, and flush said "0 left")
        if serr ~= self.scan_error then
          self.scan_error = serr
          local why = "cannot list the queue: " .. tostring(serr)
          if self.once then self.last_error = why end
          self.log.error("delivery: " .. why .. "; the queue waits until it can be read")
        end
        ids = {}
      elseif self.scan_error then
        self.scan_error = nil
        self.log.info("delivery: the queue can be listed again")
      end
      -- a limited scan whose every id waits would starve the rest: look at all
      if #ids == limit then
        local due = false
        for _, id in ipairs(ids) do
          if not self.claimed[id] and not (self.later[id] and self.later[id] > now and not self.forced)
             and not self.seen[id] then due = true; break end
        end
        if not due then ids = sp:scan() or ids end
      end
      self.queue, self.pos = ids, 1
    else
      local id = self.queue[self.pos]
      self.pos = self.pos + 1
      local later = self.later[id]
      if self.claimed[id] or self.seen[id] then
        -- in flight on another worker, or already tried in this forced pass
      elseif later and later > now and not self.forced then
        if not soonest or later < soonest then soonest = later end
      else
        self.later[id] = nil
        self.claimed[id] = w
        local load = self.load_fn
        if not load then
          load = sp.loader and sp:loader(LOAD_OPTS) or function(i) return sp:load(i, LOAD_OPTS) end
          self.load_fn = load
        end
        local e, err, info = load(id)
        if e then e.id = e.id or id end   -- (a loader's entry names no id: the one asked for)
        -- (its own look first: a method call per message for a table that is
        -- empty but after a full disk; issue 16)
        if e and self.unrecorded[e.id] then self:apply_unrecorded(e) end
        if not e then
          self.claimed[id] = nil
          self.log.debug("delivery: " .. id .. " skipped: " .. tostring(err))
          -- gone meanwhile, or adopted under a fresh id (a file written straight
          -- into pickup/ under an id's name, not in the spool's form: spool.c's
          -- foreign): one more scan meets the new id, so a flush sends it too
          if info and info.code == "ENOTFOUND" and not regone then regone, rescanned = true, false end
        elseif e.next_attempt and e.next_attempt > now and not self.forced then
          self.claimed[id] = nil
          self.later[id] = e.next_attempt
          if not soonest or e.next_attempt < soonest then soonest = e.next_attempt end
        elseif e.queued_at and now - math.max(e.queued_at, e.retried_at or 0) > D.max_age(self) then
          -- (counted from a `queue retry` when there was one: a message that
          -- expired in an outage, retried once the server was fixed, failed
          -- again at once, never tried)
          local retried = e.retried_at and e.retried_at > e.queued_at
          self:fail(e, "expired: in the queue since " .. os.date("!%Y-%m-%d %H:%M:%S UTC", math.floor(e.queued_at))
                       .. (retried and (", retried " .. os.date("!%Y-%m-%d %H:%M:%S UTC", math.floor(e.retried_at)))
                           or "")
                       .. ", longer than max_queue_age (" .. self:max_age() .. " s)",
                    e.last_reply)
          self.claimed[id] = nil
        else
          e.loaded_at = now   -- (Worker:burst: a look again when it waited long)
          return e
        end
      end
    end
  end
  -- prune due times of messages that went away (else an idle worker would spin)
  for id, t in pairs(self.later) do
    if t <= now then self.later[id] = nil end
  end
  return nil, soonest
end

function D:release(e) self.claimed[e.id] = nil end

-- look_again(): the messages loaded so far are looked at again before their
-- commands or their data go, however short they waited (Worker:burst's
-- withdrawn): asked by `mailhook queue rm` after its removal (SIGUSR2,
-- mailhook.status Tracker:answer), so the one it removed is not sent unless
-- its data is with the server already (which `queue rm` then says).
function D:look_again()
  self.asked_at = self.now()
  -- an idle worker looks at the queue now: a `queue retry` of a deferred
  -- message writes only its sidecar, which the pickup/ watch skips, and it
  -- went at the idle rescan, up to SCAN_INTERVAL (5 s) later.  A worker
  -- waiting out an outage keeps its cadence.
  for _, w in ipairs(self.workers) do
    if w.task and w.sleeping and w.state == "idle" then
      w.woken = true
      w.task:cancel()
    end
  end
end

-- e was not settled (the session broke, or never opened): it must go first
-- again, so the next pick starts over from a fresh scan.
function D:requeue(e)
  self.claimed[e.id] = nil
  self.pos = #self.queue + 1
end

-- A spool failure about one message (what: "defer", "fail"), told once per
-- message and error: a full disk fails the same write at every retry.
-- true when it is news (log it); err nil: it worked (forget the failure, and
-- true when there was one).
local function spool_news(self, id, what, err)
  self.spool_errs = self.spool_errs or {}
  local k = id .. " " .. what
  local old = self.spool_errs[k]
  if err == nil then
    self.spool_errs[k] = nil
    return old ~= nil
  end
  if old == tostring(err) then return false end
  self.spool_errs[k] = tostring(err)
  return true
end

-- removed_meanwhile(e, info, what, reply) -> true when the spool's answer (info)
-- says e's file is gone: `mailhook queue rm` while its data was with the
-- server, whose reply was no 250 (what: "deferred", "failed").  Nothing is left to
-- record or to send again: said at info, not as a spool error.
local function removed_meanwhile(self, e, info, what, reply)
  if not (type(info) == "table" and info.code == "ENOTFOUND") then return false end
  self.unrecorded[e.id], self.later[e.id] = nil, nil
  self.log.info("delivery: " .. e.id .. " not delivered (" .. what .. ": " .. tostring(reply) .. "); it had been "
                .. "removed meanwhile (mailhook queue rm): nothing recorded, not sent again")
  return true
end

-- with_path(d, e): e.path set when e names none: a loader's entry sent from its
-- data leaves its path out (pickup/ID.eml: Spool:pickup_path, runtime/l_spool.c
-- push_entry), and the paths that read the file (the `failed` event's subject,
-- the mail log's Message-ID once the data went with the submit) ask for it here.
local function with_path(d, e)
  if e.path == nil and e.id and d.spool.pickup_path then e.path = d.spool:pickup_path(e.id) end
end

-- fail(e, reason, reply [, how]): to failed/ with its sidecar, and the `failed`
-- event.  how = {attempts =, refused = {{rcpt =, reply =}...} (this attempt's),
-- delivered = {...}, quoted = true when the reason quotes the reply already};
-- attempts is the count to record (the attempt that failed
-- included; nil keeps the stored one: an expiry is no attempt).  The event's
-- `to` is the recipients that failed; `refused` gives each one's reply (the
-- ones refused on earlier attempts too) and `delivered` those that got it.
function D:fail(e, reason, reply, how)
  how = how or {}
  with_path(self, e)
  local subject, notice = subject_of(e.path)   -- before the file moves
  -- the mark is the service's own (its rules run as it): a message another
  -- uid submitted (a local user's sendmail, the header typed in) is no notice,
  -- and its failure is told as any other (it silenced its own `failed`)
  if notice and e.uid and e.uid ~= 0 and e.uid ~= own_uid() then notice = nil end
  maillog.before_move(e)               -- (so is the journal's Message-ID)
  local ok, err, info = self.spool:fail(e.id, { reason = reason, reply = reply, attempts = how.attempts,
                                                refused = how.refused })
  if ok == nil and err and removed_meanwhile(self, e, info, "failed", reply or reason) then return end
  if ok == nil and err then
    self.stats.errors = self.stats.errors + 1
    if spool_news(self, e.id, "fail", err) then
      self.log.error("delivery: " .. e.id .. ": could not move to failed/: " .. tostring(err) ..
                     " (said once; tried again at each attempt)")
    end
    return
  end
  spool_news(self, e.id, "fail", nil)
  local refused, to = {}, {}
  for _, r in ipairs(e.refused or {}) do refused[#refused + 1] = r end
  for _, r in ipairs(how.refused or {}) do refused[#refused + 1] = r end
  for _, r in ipairs(refused) do to[#to + 1] = r.rcpt end
  if #refused == 0 then to = e.to end   -- the message itself failed: every pending recipient
  local delivered = {}
  for _, r in ipairs(e.done or {}) do delivered[#delivered + 1] = r end
  for _, r in ipairs(how.delivered or {}) do delivered[#delivered + 1] = r end
  local stats = self.stats
  stats.failed = stats.failed + 1
  if #delivered > 0 then
    -- partly delivered: failed/ holds it for the others (counted as failed too)
    local settled, failing = {}, #refused
    for _, r in ipairs(delivered) do settled[r] = true end
    for _, r in ipairs(refused) do settled[r.rcpt] = true end
    for _, r in ipairs(e.to or {}) do if not settled[r] then failing = failing + 1 end end
    stats.partial = (stats.partial or 0) + 1
    stats.partial_delivered = (stats.partial_delivered or 0) + #delivered
    stats.partial_recipients = (stats.partial_recipients or 0) + #delivered + failing
  end
  self:changed("failed", e, reply or reason)
  -- the reply once: a reason that quotes it already is not followed by it again
  self.log.warn("delivery: " .. e.id .. " moved to failed/: " .. reason
                .. ((reply and not how.quoted and not reason:find(reply, 1, true)) and (" (" .. reply .. ")") or ""))
  -- the lines not written yet: the pending recipients (failed, or sent when
  -- this attempt's send took them), this attempt's refused ones, and those
  -- left out at intake (no attempt named them); the ones refused on earlier
  -- attempts had theirs then
  local intake = {}
  for _, r in ipairs(e.refused or {}) do
    if by_mailhook(r.reply) == "intake" then intake[#intake + 1] = r end
  end
  maillog.outcome(self, e, "failed", reply or reason, nil, how.refused, intake)
  if notice then
    self.log.warn("delivery: " .. e.id .. ": no `failed` event: it is the notice a `failed` rule queued about " ..
                  notice .. ", and a notice of its failure would fail the same way (a loop); tell someone " ..
                  "by another path than this mail server")
    return
  end
  self:emit("failed", { id = e.id, reason = reason, reply = reply, to = to, from = e.from,
                        subject = subject, refused = refused, delivered = delivered,
                        attempts = how.attempts or e.attempts or 0 })   -- (a loader's entry: nil for 0)
end

-- joined(a, b) -> a new list: a's items, then b's
local function joined(a, b)
  local out = {}
  for _, x in ipairs(a or {}) do out[#out + 1] = x end
  for _, x in ipairs(b or {}) do out[#out + 1] = x end
  return out
end

-- A deferral the spool could not record (a full disk, no inode left): who took
-- the message and how many attempts it had are kept in memory, applied to the
-- message at each load and written with its next deferral that works.  Else
-- each attempt (every ~30 s, "attempt 1" for ever) sent it again to the
-- recipients that had taken it: thousands of copies over max_queue_age.
function D:apply_unrecorded(e)
  local u = self.unrecorded[e.id]
  if not u then return end
  local skip = {}
  for _, r in ipairs(u.done) do skip[r] = true end
  for _, r in ipairs(u.refused) do skip[r.rcpt] = true end
  local to = {}
  for _, r in ipairs(e.to or {}) do if not skip[r] then to[#to + 1] = r end end
  e.to = to
  -- as a recorded deferral gives them: who took it, who refused it for good
  -- (without these, the last recipient's 250 made the message "delivered"
  -- and the 550 was lost with it, never in failed/)
  e.done, e.refused = joined(e.done, u.done), joined(e.refused, u.refused)
  e.attempts = math.max(e.attempts or 0, u.attempts)
end

-- defer(e, reply [, done, refused]): a later attempt, after its backoff.  done:
-- recipients accepted now; refused: {{rcpt =, reply =}...} refused for good now
-- (both recorded, so neither is sent to again).
function D:defer(e, reply, done, refused)
  local now_done, now_refused = done, refused   -- this attempt's (for the mail log)
  with_path(self, e)
  local n = (e.attempts or 0) + 1
  local delay = M.backoff(n, math.min(self:cfgn("retry_interval", 30), 30),
                          self:cfgn("retry_max", 1800), self.random)
  local at = self.now() + delay
  local u = self.unrecorded[e.id]
  if u then done, refused = joined(u.done, done), joined(u.refused, refused) end
  local ok, err, info = self.spool:defer(e.id, { reply = reply, next_attempt = at, done = done, attempts = n,
                                                 refused = refused })
  if ok == nil and err and removed_meanwhile(self, e, info, "deferred", reply) then return end
  if ok == nil and err then
    self.stats.errors = self.stats.errors + 1
    self.unrecorded[e.id] = { done = done or {}, refused = refused or {}, attempts = n }
    if spool_news(self, e.id, "defer", err) then
      self.log.error("delivery: " .. e.id .. ": could not record the deferral: " .. tostring(err) ..
                     " (said once until it changes; who took it is kept in memory: not sent to them again)")
    end
  else
    self.unrecorded[e.id] = nil
    if spool_news(self, e.id, "defer", nil) then
      self.log.info("delivery: " .. e.id .. ": its deferral is recorded again")
    end
  end
  self.later[e.id] = at
  if self.forced then self.seen[e.id] = true end
  self.stats.deferred = self.stats.deferred + 1
  self:changed("deferred", e, reply)
  self.log.info(string.format("delivery: %s deferred (attempt %d): %s; next attempt in %d s",
                              e.id, n, reply or "temporary failure", math.floor(delay + 0.5)))
  maillog.outcome(self, e, "deferred", reply or "temporary failure", now_done, now_refused)
end

-- split(e, reply, done, refused, n): the server took some recipients and
-- refused the others only as over its per-message limit (outcome.overflow:
-- 452 "too many recipients", RFC 5321 §4.5.3.1.10, which asks the client to
-- send the rest in a new transaction).  The accepted ones are recorded done
-- (never sent again), the n others are due at once, unpenalised (no attempt
-- counted, no backoff), and the message goes first again.  Only a round that
-- settled a recipient for good (accepted, or refused by a 5xx of its own)
-- leads to another, so the rounds end; a round that settled none is an
-- ordinary deferral (a 552 "too many recipients" then stays pending, RFC 5321
-- §4.5.3.1.10 asks that it be taken as temporary).
function D:split(e, reply, done, refused, n)
  with_path(self, e)
  local ok, err = self.spool:defer(e.id, { reply = reply, next_attempt = self.now(), done = done,
                                           attempts = e.attempts or 0, refused = refused })
  if ok == nil and err then
    -- not recorded: resending now would repeat the accepted ones; wait instead
    return self:defer(e, reply, done, refused)
  end
  self.later[e.id] = nil
  self.log.info(string.format("delivery: %s: the server took %s and refused %s as over its limit (%s); "
                              .. "sending %s in a new transaction now",
                              e.id, plural(#(done or {}), "recipient"), n .. " more", reply,
                              n == 1 and "it" or "them"))
  maillog.outcome(self, e, "deferred", reply, done, refused)
end

-- A delivered message is recorded in the spool's delivered journal (one
-- write: runtime/spool.c, "the delivered journal") before the next message's
-- data may leave (the engine's gate, see Worker:burst), so a SIGKILL repeats
-- at most the one message in flight; its file is removed later with others
-- (spool:purge): when the deliverer has nothing more to send (before a wait
-- or a stop), and during a long drain every PURGE_EVERY records or
-- PURGE_BYTES of files, in a task of its own.  The unlink, which frees the
-- file's blocks, was half of a message's time when it sat between one 250
-- and the next data; a burst now goes out first and is tidied after.  Records are
-- group-committed: one fsync covers a run of them (at most SYNC_EVERY, and
-- always before a wait or a stop), in a task of its own so the sends do not
-- wait for it.  A power cut may undo the unsynced records: those messages are
-- sent again, never lost.
M.SYNC_EVERY = 64
M.PURGE_EVERY = 4096
M.PURGE_BYTES = 64 * 1024 * 1024
-- Worker:burst: the data of a message in flight of more bytes than this is
-- released before the next message is submitted (three 256 KiB pieces)
M.RELEASE_FIRST_BYTES = 2 * 262144

-- The fsync of pickup/ itself, for the removals already done.
function D:sync_now()
  if self.unsynced == 0 then return end
  self.unsynced = 0
  local ok, err = self.spool:sync()
  if ok == nil and err then
    self.stats.errors = self.stats.errors + 1
    -- the records (or removals) written since the last sync may not be on
    -- disk, and a later fsync of the same file may not say so again (the
    -- kernel reports a write-back error once): their files are removed now,
    -- by a purge, whose own fsync of pickup/ is what makes them gone
    self.log.error("delivery: the fsync of the delivered records failed: " .. tostring(err) ..
                   "; the delivered messages are removed now (a power cut before that may send them again)")
    if self.marked > 0 and not self.purging then self:purge_later() end
  end
end

-- purge_now(): the files of the messages recorded so far are removed (waits).
function D:purge_now()
  self.marked, self.marked_bytes = 0, 0
  if not self.spool.purge then return end
  local ok, res, err = pcall(self.spool.purge, self.spool)
  if not ok or (res == nil and err) then
    self.stats.errors = self.stats.errors + 1
    self.log.error("delivery: removing delivered messages failed (tried again later; they are not sent "
                   .. "again): " .. tostring(ok and err or res))
  end
end

-- in_background(slot, fn): fn(self) in a task of its own, one at a time: while
-- one runs (self[slot] is its task) another ask is dropped (it would redo the
-- same work a moment later).
function D:in_background(slot, fn)
  if self[slot] then return end
  self[slot] = self.spawn(function()
    fn(self)
    self[slot] = nil
  end)
end

-- purge_later(): the same, in the background (one at a time).
function D:purge_later() self:in_background("purging", D.purge_now) end

-- sync(): every record so far is on disk, and the files of the delivered
-- messages removed, when it returns (waits).
function D:sync()
  if self.syncing then self.syncing:wait() end
  self:sync_now()
  if self.purging then self.purging:wait() end
  if self.marked > 0 then self:purge_now() end
end

-- sync_later(): the same, in the background (one at a time).
function D:sync_later() self:in_background("syncing", D.sync_now) end

local function removal_failed(d, id, err, info)
  if type(info) == "table" and info.code == "ENOTFOUND" then   -- `queue rm` raced the send: gone already
    d.log.info("delivery: " .. id .. " was delivered; it had been removed meanwhile (mailhook queue rm)")
    return
  end
  d.stats.errors = d.stats.errors + 1
  if type(info) == "table" and info.kept_in_memory then
    -- the journal's record failed, then the unlink: the file stays, known
    -- here as delivered (the next scan sent it again at once, sp:delivered)
    d.log.error("delivery: " .. id .. " was delivered but could be neither recorded nor removed: " ..
                tostring(err) .. "; this process does not send it again and tries the removal again " ..
                "later (a restart before that sends it again)")
    return
  end
  d.log.error("delivery: " .. id .. " was delivered but could not be removed (it may be sent again): "
              .. tostring(err))
end

function D:delivered(e, n)
  self.unrecorded[e.id] = nil
  if self.outage or self.outage_shown ~= false then self:recovered() end
  local sp = self.spool
  local ok, res, err, info = pcall(sp.delivered, sp, e.id, REMOVE_OPTS)
  if not ok then removal_failed(self, e.id, res)
  elseif res == nil and err then removal_failed(self, e.id, err, info) end
  local unsynced, marked, bytes = self.unsynced + 1, self.marked + 1, self.marked_bytes + (e.size or 0)
  self.unsynced, self.marked, self.marked_bytes = unsynced, marked, bytes
  self.last_delivered = self.now()
  if unsynced >= M.SYNC_EVERY then self:sync_later() end
  if marked >= M.PURGE_EVERY or bytes >= M.PURGE_BYTES then self:purge_later() end
  local stats = self.stats
  stats.delivered = stats.delivered + 1
  if self.on_change then self:changed("delivered", e) end
  if self.verbose then with_path(self, e); maillog.outcome(self, e, "sent") end   -- (a "sent" line is at info)
end

-- settle(e, result): every recipient settled by its own reply (RFC 5321
-- §4.2.1; docs/delivery.md): accepted -> done, never sent again; 5xx -> refused
-- for good, recorded once with its reply, never sent again; 4xx (or no reply)
-- -> still pending, retried after the backoff.  The message leaves pickup/
-- only when nothing is pending: removed when no recipient ever failed, else
-- moved to failed/ with every refused recipient and its reply.  result =
-- {accepted = {...}, rejected = {{rcpt, smtp, enhanced, text, class}...}}: what
-- a send returns, or the same fields of a failed send's info (no recipient
-- accepted, DATA or the final dot refused: the engine gives that reply to each
-- recipient it had accepted).  whole = {reply =, reason =} when a reply to
-- DATA or to the final dot refused the message itself: the deferral and the
-- failure are worded by it (each recipient is still settled as above).
function D:settle(e, res, whole)
  local accepted = res.accepted or {}
  maillog.note(e, res)
  local pending, refused = {}, {}
  local tlines, plines = {}, {}
  -- recipients over the server's per-message limit (outcome.overflow), and
  -- how many this round settled for good (accepted, or refused by a 5xx of
  -- their own): a new transaction at once only when the round made progress
  local overflow, settled = 0, #accepted
  local over = {}
  for i, r in ipairs(res.rejected or {}) do
    over[i] = not whole and outcome.overflow(r, #accepted)
    if not over[i] and outcome.permanent(r) then settled = settled + 1 end
  end
  for i, r in ipairs(res.rejected or {}) do
    local rcpt = r.rcpt or r[1] or "?"
    local reply = outcome.reply_text(r) or "rejected"
    if over[i] then
      overflow = overflow + 1
      pending[#pending + 1] = rcpt
      tlines[#tlines + 1] = rcpt .. ": " .. reply
    elseif outcome.permanent(r) then
      refused[#refused + 1] = { rcpt = rcpt, reply = reply }
      plines[#plines + 1] = rcpt .. ": " .. reply
    else
      pending[#pending + 1] = rcpt
      tlines[#tlines + 1] = rcpt .. ": " .. reply
    end
  end
  if #pending == 0 and #refused == 0 and #(e.refused or {}) == 0 then
    if #accepted == 0 and #(e.to or {}) > 0 then
      -- no word on any recipient: never taken for a delivery
      return self:defer(e, "no result for any recipient")
    end
    return self:delivered(e, #accepted)
  end
  for i, line in ipairs(plines) do
    -- (a refusal of the message itself is logged once, by defer or fail)
    if not (whole and refused[i].reply == whole.reply) then
      self.log.warn("delivery: " .. e.id .. ": " .. line .. " (refused for good: not sent to again)"
                    .. (#pending > 0 and ("; " .. plural(#pending, "recipient") .. " still pending") or ""))
    end
  end
  if #pending > 0 then
    local all = {}
    for _, l in ipairs(tlines) do all[#all + 1] = l end
    for _, l in ipairs(plines) do all[#all + 1] = l end
    if overflow > 0 and settled > 0 then
      return self:split(e, table.concat(all, "; "), accepted, refused, #pending)
    end
    return self:defer(e, whole and whole.reply or table.concat(all, "; "), accepted, refused)
  end
  -- nothing pending: some recipients failed for good (now or on an earlier attempt)
  local n = (e.attempts or 0) + 1
  if #accepted > 0 then
    -- the accepted ones first, so a later `queue retry` never resends to them
    self.spool:defer(e.id, { reply = table.concat(plines, "; "), next_attempt = self.now(),
                             done = accepted, refused = refused, attempts = n })
  end
  -- the reason names who the server refused apart from those mailhook
  -- refused itself (left out at intake, or not sendable to this server): no
  -- server was asked about them
  local all, server, mine = {}, {}, {}
  for _, list in ipairs({ e.refused or {}, refused }) do
    for _, r in ipairs(list) do
      local l = r.rcpt .. ": " .. r.reply
      local t = by_mailhook(r.reply) and mine or server
      t[#t + 1] = l
    end
  end
  for _, l in ipairs(server) do all[#all + 1] = l end
  for _, l in ipairs(mine) do all[#all + 1] = l end
  local delivered = #accepted + #(e.done or {})
  local reason = whole and whole.reason
  if not reason then
    local parts = {}
    if #server > 0 then parts[#parts + 1] = "rejected by the server: " .. table.concat(server, "; ") end
    if #mine > 0 then parts[#parts + 1] = "not sent: " .. table.concat(mine, "; ") end
    reason = table.concat(parts, "; ")
  end
  if delivered > 0 then
    reason = reason .. " (delivered to " .. plural(delivered, "other recipient") .. ")"
  end
  return self:fail(e, reason, whole and whole.reply or table.concat(all, "; "),
                   { attempts = n, refused = refused, delivered = accepted, quoted = not whole })
end

---------------------------------------------------------------- a worker

local W = {}
W.__index = W

-- enter(state [, detail]): the one place a worker changes state.
function W:enter(state, detail)
  if self.state == state and self.detail == detail then return end
  local d = self.d
  d.log.debug(string.format("delivery[%d]: %s -> %s%s", self.i, self.state or "-", state,
                            detail and (" (" .. detail .. ")") or ""))
  local old = self.state
  self.state, self.detail, self.since = state, detail, d.now()
  d:changed("state", self, old, state, detail)
  if state == "disabled" and (old ~= "disabled") then
    d.log.warn("delivery paused: " .. tostring(detail) .. "; no connection is attempted")
  elseif old == "disabled" and state ~= "stopping" and state ~= "stopped" then
    d.log.info("delivery resumed: the settings are ready")
  end
end

-- wait(seconds) -> true when woken early (kick, flush, reload, stop)
function W:wait(seconds)
  self.d:sync()
  if self.d.stopping then return true end
  -- a kick (a new file in pickup/) that came while this worker was not yet
  -- asleep (the rescan, the sync above: both wait on the thread pool) found
  -- nothing to cancel; it must not wait for the next rescan.  Not in an
  -- outage (its own cadence) nor while disabled (nothing would consume it).
  if self.d.kicked and self.state == "idle" then return true end
  local d = self.d
  -- a worker that scans nothing meanwhile (an outage, mail disabled) adopts
  -- maildrop/ before it sleeps (what came while it was connecting), and when
  -- woken for that only (D:kick), then sleeps the rest of the wait
  self.adopt_due = false
  -- a flush asked for during an adoption (below), not one already running: a
  -- worker whose extra connection was refused waits (W:outage) while another
  -- one's forced pass goes on, and must not reconnect at once for it
  local forced0 = d.forced
  if self.state == "waiting-retry" or self.state == "disabled" then
    d:adopt()
    -- (the adoption waits: a stop or a flush request meanwhile found this
    -- worker awake, nothing to cancel; a pass forced before it was ended above)
    if d.stopping or (d.forced and not forced0) then return true end
  end
  local deadline = d.now() + math.max(0, seconds)
  repeat
    self.woken = false
    -- (a kick during an adoption found no worker asleep: adopt again at once)
    if not self.adopt_due then
      self.sleeping = true
      pcall(d.sleep, math.max(0, deadline - d.now()))
      self.sleeping = false
    end
    local adopt = self.adopt_due and not self.woken and not d.stopping
    self.adopt_due = false
    if adopt then
      d:adopt()
      if d.stopping or (d.forced and not forced0) then self.woken = true end   -- (as above)
    end
  until not adopt or self.woken or d.stopping or d.now() >= deadline
  local woken = self.woken
  self.woken = false
  return woken
end

function W:close_session(polite)
  local s = self.session
  if not s then return end
  self.session = nil
  self.sent, self.mails, self.answered = 0, 0, nil
  self.quitting = true   -- (others_connected: open at the server until closed)
  if polite and s.alive and s:alive() then pcall(s.quit, s) end
  pcall(s.close, s)
  self.quitting = nil
  -- the state is the same ("idle"), but it was shown as "connected" while a
  -- session stayed open: said again, `status` read "connected" long after QUIT
  self.d:changed("state", self, self.state, self.state, self.detail)
end

-- A 5xx to AUTH (535 credentials refused, 534 mechanism too weak, 538):
-- nothing changes by itself before the settings do.  Such refusals are
-- retried less and less often (retry_interval doubling up to retry_max, as a
-- message's backoff) rather than every retry_interval: a server counting
-- failed logins (fail2ban's postfix-sasl and exim jails ban after a handful)
-- would else ban this host, and the next error would be a misleading
-- "connection refused".  A reload (the settings changed) or a success starts
-- the count again; `mailhook flush` still tries at once.
local function auth_refused(info)
  local code = info and tonumber(info.smtp)
  return info and info.stage == "auth" and code and code >= 500 and code < 600 or false
end

-- A login that cannot be made with these settings, the server asked nothing:
-- no mechanism in common (ENOAUTH: a server offering only DIGEST-MD5, or AUTH only
-- under TLS while tls = none), credentials refused in the clear (EPLAINAUTH), an
-- empty password (EAUTH without a reply).  The server is up and answered: it
-- was called "server unreachable", which sent the administrator to the network.
local function login_unusable(info)
  return info and info.stage == "auth" and not tonumber(info.smtp) and
    (info.code == "ENOAUTH" or info.code == "EPLAINAUTH" or info.code == "EAUTH") or false
end

-- Another worker of this deliverer holds a session, is opening one or is
-- closing one (if that one fails too, it is the one that declares the
-- outage).  Any session it holds, not only an alive() one: alive() is true
-- only between transactions, and a worker sending a burst is mid-transaction
-- nearly all the time; a session being closed is still open at the server
-- until its QUIT is answered.
function W:others_connected()
  for _, w in ipairs(self.d.workers) do
    if w ~= self and (w.session or w.quitting or w.state == "connecting") then
      return true
    end
  end
  return false
end

-- The server is unreachable: log once per distinct error, then wait.  e:
-- the message the attempt was for; the reason is recorded in its state
-- (last_reply, its attempts and next attempt unchanged: an outage is no
-- attempt of the message), so `sendmail -bp` and `mailhook queue` show why it
-- waits, as Postfix's mailq shows "(connect to host[addr]:25: Connection
-- refused)".  One state write per connection attempt, never one per message.
-- The stages a 4xx can refuse one connection too many at (W:outage): before
-- any mail transaction, at the greeting or the EHLO/HELO that follows it.
local REFUSED_AT = { connect = true, greeting = true, ehlo = true, helo = true }

-- Another worker holds an open session with the server (not one opening or
-- being closed): the server is up and takes our mail right now.
function W:others_open()
  for _, w in ipairs(self.d.workers) do
    if w ~= self and w.session and not w.quitting then return true end
  end
  return false
end

-- The connection was refused (RST to the SYN) by every address tried, no
-- timeout, no unreachable network among them: info.errno, the cause the
-- transport gives every address by errno name (runtime/transport.c, l_smtp.c;
-- docs/smtp.md).  It matched uv_strerror's English in the message before.
local function connect_refused(err, info)
  return info ~= nil and info.stage == "connect" and info.errno == "ECONNREFUSED"
end

-- "stage: err" as the log and the queue show a failure, without the stage twice
-- (the engine's "greeting: 554 ..." was shown "greeting: greeting: 554 ...").
local function staged(info, err)
  local stage = info and info.stage
  err = tostring(err)
  if not stage or err:sub(1, #stage + 1) == stage .. ":" then return err end
  return stage .. ": " .. err
end

-- A 5xx greeting, or a 5xx to EHLO and HELO: the server is up and refuses this
-- client (a blocklist, an access rule) or its greeting; "server unreachable"
-- sent the administrator to the network.
local function client_refused(info)
  local code = info and tonumber(info.smtp)
  return info and code and code >= 500 and code < 600 and
    (info.stage == "greeting" or info.stage == "ehlo" or info.stage == "helo") or false
end

-- The server's certificate was refused (chain, host name, dates, pin): the
-- server answered, and TLS stopped the session before anything was sent.
local function cert_refused(info)
  return info and info.stage == "tls" and info.code == "ECERT" or false
end

function W:outage(err, info, e)
  local d = self.d
  -- the stop's grace cut this session (D:stop): the server stalled, it was not
  -- unreachable; the message stays queued as it was, and no outage is kept
  -- (status, queue and mailq said "server unreachable (data: session closed
  -- (c:close() while this task waited))" after such a stop)
  if self.cut and d.stopping then return "stop" end
  local code = info and tonumber(info.smtp)
  -- a plain "connection refused" while another of our sessions is open and
  -- delivering: the server (or a firewall before it) limits connections per
  -- client by refusing the extra ones (iptables' connlimit --reject-with
  -- tcp-reset, a proxy's per-client cap), not an outage: the same as a 4xx
  -- greeting.  With no other session open, a refusal stays an outage.
  if (code and code >= 400 and code < 500 and REFUSED_AT[info.stage] and self:others_connected())
     or (connect_refused(err, info) and self:others_open()) then
    -- a 4xx greeting, or reply to EHLO/HELO (421 "too many concurrent
    -- connections": Exim's smtp_accept_max and smtp_accept_max_per_host,
    -- Postfix's smtpd_client_connection_count_limit; a server may count at
    -- EHLO, as Exim's and OpenSMTPD's limits per host can) while another connection of ours
    -- delivers: the server limits how many it takes at once; no outage.  The
    -- others go on; this one tries again soon (REFUSED_EXTRA, doubling up to
    -- retry_interval), as a slot may free any moment (another client's
    -- connection ends): waiting retry_interval would drain the queue at one
    -- connection meanwhile.  A server whose limit stays costs a 421 every
    -- retry_interval, as before, after a few quicker ones.  A flush pass ends it.
    local interval = d:cfgn("retry_interval", 30)
    self.extra_refusals = (self.extra_refusals or 0) + 1
    local again = M.backoff(self.extra_refusals, math.min(M.REFUSED_EXTRA, interval), interval, d.random)
    if self.refused_extra ~= err then
      self.refused_extra = err
      d.log.info(string.format("delivery[%d]: the server refuses one more connection (%s); another "
                               .. "connection delivers, this one tries again in %.0f s, then less often "
                               .. "(at most every %g s)", self.i, err, again, interval))
    end
    self:enter("waiting-retry", err)
    if d.once then return "stop" end
    self:wait(again)
    return
  end
  self.refused_extra, self.extra_refusals = nil, nil
  d:changed("outage", self, err, info)
  if e and e.id then
    local why = staged(info, err)
    if e.last_reply ~= why then
      local ok = pcall(d.spool.defer, d.spool, e.id, { reply = why, attempts = e.attempts or 0,
                                                       next_attempt = e.next_attempt or 0 })
      if ok then e.last_reply = why end
    end
  end
  local now = d.now()
  local interval = d:cfgn("retry_interval", 30)
  local how = ", retrying every " .. interval .. " s"
  if auth_refused(info) then
    d.auth_refusals = (d.auth_refusals or 0) + 1
    interval = M.backoff(d.auth_refusals, interval, math.max(interval, d:cfgn("retry_max", 1800)), d.random)
    how = string.format(", retrying in %.0f s, then less and less often (at most every %g s) until the settings "
                        .. "change: the server refuses these credentials", interval,
                        math.max(d:cfgn("retry_interval", 30), d:cfgn("retry_max", 1800)))
  else
    d.auth_refusals = nil
  end
  if d.once then
    -- a flush (or `sendmail -q`) retries nothing: "retrying every 30 s" told
    -- a newcomer with no service running that something would
    how = string.format("; this pass stops here: the service (`mailhook run`) retries every %g s, "
                        .. "`mailhook test` shows where it fails", d:cfgn("retry_interval", 30))
  end
  local what = info and info.session_refused and "server refuses mail on this session"
               or auth_refused(info) and "server refuses the login"
               or login_unusable(info) and "no login possible with these settings (the server answers)"
               or client_refused(info) and "server refuses this client"
               or cert_refused(info) and "the server's certificate is refused"
               or "server unreachable"
  if d.outage then d.outage.refused = info and info.session_refused end
  d:record_outage(now, staged(info, err))
  if not d.outage or d.outage.earlier then
    -- the first one of this run is said in full, an earlier run's start kept (load_outage)
    local since = d.outage and d.outage.since
    d.outage = { err = err, since = since or now, refused = info and info.session_refused }
    d.log.warn(string.format("delivery: %s (%s); the queue waits%s%s", what, staged(info, err), how,
                             since and string.format(" (so since %s, before this start)",
                                                     os.date("!%Y-%m-%d %H:%M:%SZ", math.floor(since))) or ""))
  elseif d.outage.err ~= err then
    -- "still" only when it was unreachable before too: after a refused login or
    -- certificate the server had answered, it was never unreachable
    local was = d.outage.what or "server unreachable"   -- an earlier run's outage: its kind unknown
    d.outage.err = err
    d.log.warn(string.format("delivery: %s, now: %s",
                             what == "server unreachable" and was == what and "server still unreachable" or what,
                             staged(info, err)))
  end
  d.outage.what = what
  -- (mailhook.service words the state with it)
  d.outage.login = (auth_refused(info) or login_unusable(info) or client_refused(info) or cert_refused(info))
                   and what:gsub(" %(.*", "") or nil
  if not d.outage.stuck and now - d.outage.since >= d.stuck_after then
    d.outage.stuck = true
    d:emit("queue_stuck", { reason = err, since = d.outage.since })
  end
  self:enter("waiting-retry", err)
  if d.forced and not d.once then d:end_forced(err) end
  if d.once then
    d.last_error = err
    return "stop"
  end
  -- a flush request reconnects at once; a new message does not
  self:wait(interval)
end

-- A session with send() only (a test's, a host's): submit/result on top of
-- it, one message at a time.
local function sequential(s)
  local q = {}
  return setmetatable({
    submit = function(_, m) q[#q + 1] = m; return true end,
    result = function() return s:send(table.remove(q, 1)) end,
  }, { __index = function(_, k)
         local v = s[k]
         if type(v) == "function" then return function(_, ...) return v(s, ...) end end
         return v
       end })
end

-- Per-connection message limits met, per server ("host:port" -> {n =, at =,
-- by = the id whose refusal taught it}), shared by every deliverer and worker
-- of the process: Exim's smtp_accept_max_per_connection (421 to MAIL and a
-- close), OpenSMTPD's 452 4.5.3 to every MAIL after the 100th.  Sessions then
-- close just before the limit, as Postfix's smtp_connection_reuse_count_limit
-- does, so later ones pay no refused command.  Forgotten after LIMIT_TTL, so a
-- one-off refusal (a server restart) does not cap the sessions for ever.
M.limits = {}
M.LIMIT_TTL = 3600

function W:server_key()
  local s = self.session
  local info = s and s.info and s:info() or {}
  return tostring(info.server or (s and s.server) or "?") .. ":" .. tostring(info.port or self.d.cfg.port or "")
end

-- The limit in force for this session's server, or nil.
function W:limit()
  local l = M.limits[self.key or ""]
  if l and self.d.now() - l.at > M.LIMIT_TTL then M.limits[self.key] = nil; l = nil end
  return l and l.n
end

function W:connected(s)
  local d = self.d
  if not s.submit then s = sequential(s) end
  self.session, self.sent, self.mails, self.answered = s, 0, 0, nil
  self.relay = maillog.relay(s)
  self.key = self:server_key()
  d.auth_refusals = nil   -- logged in (or no login asked): the usual pace again
  self.extra_refusals = nil   -- a later refusal as one connection too many starts quick again
  -- a server that says it has no SMTPUTF8 (a session that does not say: the
  -- engine decides) gets no RCPT for a non-ASCII address (RFC 6531 §3.4)
  local info = s.info and s:info() or {}
  self.no_utf8 = info.smtputf8 == false
  if d.outage then
    -- over only once the server answers a message (D:recovered)
    d.log.debug("delivery: connected during the outage (was: " .. tostring(d.outage.err) .. ")")
  else
    d.log.debug("delivery: connected to " .. tostring(info.server or "?") .. " ("
                .. tostring(info.security or "?") .. ")")
  end
end

-- A send's result with the recipients refused before sending (non-ASCII
-- addresses to a server without SMTPUTF8) added to its rejected list.
local function with_local(e, res)
  if not e.local_refused then return res end
  local rejected = {}
  for _, r in ipairs(res.rejected or {}) do rejected[#rejected + 1] = r end
  for _, r in ipairs(e.local_refused) do rejected[#rejected + 1] = r end
  return { accepted = res.accepted, rejected = rejected, reply = res.reply }
end

-- The outcome of one message whose result came back: settles it and returns
-- nil, or "outage"/"again", err, info when the session broke or must be
-- replaced (a per-connection limit met: "again" reconnects at once and the
-- message goes first again, unpenalised).  What the reply means is
-- outcome.classify's; what is done about it is the worker's.
-- The context outcome's rules read (the settings' auth, the session's
-- capability lines): asked of the session only where a rule reads it, never
-- for a message every recipient took (session:info builds a table of some
-- twenty fields: a fifth of a drained message's instructions, callgrind).
function W:outcome_ctx()
  local s = self.session
  local ci = s and s.info and s:info()
  local cfg = self.d.cfg
  return { auth = cfg and cfg.auth, caps = ci and ci.capabilities }
end

function W:outcome(e, res, err, info)
  local d = self.d
  local ctx
  if res and math_type(res) ~= "integer" and not (res.accepted and res.accepted[1]) then
    ctx = self:outcome_ctx()
  end
  if ctx and outcome.login_wanted({ stage = "rcpt", accepted = {}, rejected = res.rejected }, ctx) then
    -- every recipient refused for a login the settings do not give: the
    -- session's refusal (below), not each recipient's
    local r = res.rejected[#res.rejected]
    res, err, info = nil, tostring(r.text), { stage = "rcpt", smtp = r.smtp, enhanced = r.enhanced, text = r.text,
                                             accepted = {}, rejected = res.rejected }
  end
  if res then
    self.broke = nil
    self.mails = (self.mails or 0) + 1
    if math_type(res) == "integer" then return D.delivered(d, e, res) end   -- brief (burst): all took it
    if d.outage or d.outage_shown ~= false then d:recovered() end
    local accepted = res.accepted
    if not d.verbose and not e.local_refused and accepted and accepted[1] and not (res.rejected and res.rejected[1])
       and not (e.refused and e.refused[1]) then
      -- settle's usual case, per message: every recipient took it, none was
      -- refused before, and no "sent" line is logged (else settle notes it)
      return d:delivered(e, #accepted)
    end
    return d:settle(e, with_local(e, res))
  end
  info = info or {}
  local reply = outcome.reply_text(info) or err
  local code = tonumber(info.smtp)
  local reused = (self.mails or 0) > 0
  -- the server answered an earlier message on this session, if only to refuse
  -- it: a break now is no outage (a server that hangs up after a refusal,
  -- Exim's `drop`, takes the message sent behind it down with it)
  local answered = self.answered
  local kind = outcome.classify(info, reused, ctx or self:outcome_ctx())
  if kind == "limit" then
    -- a connection that has delivered messages refused one more: the server's
    -- per-connection limit (Exim: 421 and a close; OpenSMTPD: 452 4.5.3, kept
    -- open).  A new connection at once, in order; the limit is remembered.
    local n = self.mails
    local known = M.limits[self.key]
    if not known or known.n ~= n then
      d.log.info(string.format("delivery: %s refuses more than %s on one connection (%s); "
                               .. "reconnecting, and closing before that from now on",
                               self.key, plural(n, "message"), reply))
    end
    M.limits[self.key] = { n = n, at = d.now(), by = e.id }
    self:close_session(code ~= 421)
    return "again"
  end
  if kind == "file" then
    -- its own spool file failed while it streamed (cut short, an I/O error):
    -- the engine closed the session before the final dot, so the server took
    -- nothing.  That message waits its backoff (its next load sets it aside
    -- when the file no longer has the size it was queued with, docs/spool.md);
    -- the server is fine: no outage, the rest go on over a new session
    self.broke = nil
    local how = "not sent"
    if info.connection then
      self:close_session(false)
      how = "the session was closed before its final dot: not sent (the server takes nothing without it)"
    end
    d.log.warn("delivery: " .. tostring(e.id) .. ": " .. tostring(err) .. " (its spool file changed or "
               .. "cannot be read); " .. how .. "; it waits, the rest of the queue goes on")
    d:defer(e, tostring(err))
    return nil
  end
  if kind == "connection" and info.rejected then
    -- the server refused recipients for good (their own 5xx) and then the
    -- session broke, before the data went (Exim's `drop` on a spam trap among
    -- the recipients): those are settled, as without the break, so the next
    -- attempt goes to the others alone; the ones it accepted never got the data
    -- and stay pending.  (Retried whole, the same refusal broke it every time:
    -- the others never got it, the refusal never recorded.)
    local rejected, final = {}, false
    for _, r in ipairs(info.rejected) do
      rejected[#rejected + 1] = r
      if r.smtp and outcome.permanent(r) then final = true end
    end
    if final then
      self:close_session(false)
      for _, a in ipairs(info.accepted or {}) do
        rejected[#rejected + 1] = { rcpt = a, class = "transient", text = "not sent: the session broke before "
                                    .. "the data went (" .. tostring(err) .. ")" }
      end
      return d:settle(e, with_local(e, { accepted = {}, rejected = rejected }))
    end
  end
  if kind == "connection" then
    self:close_session(false)
    -- the same message broke the session before: do not let it block the queue
    if self.broke == e.id then
      self.broke = nil
      return d:defer(e, reply)
    end
    self.broke = e.id
    if outcome.stalled(info) then
      -- a stall on this message: it waits its backoff, the rest go on
      return d:defer(e, reply)
    end
    if (reused or answered) and not info.smtp then
      -- a kept-alive session that died under us: reconnect at once, no outage
      -- yet.  Said at info, naming the message: it goes again, and may arrive
      -- twice when only the reply to its final dot was lost (docs/delivery.md)
      d.log.info("delivery: the session broke with " .. tostring(e.id) .. " in flight (" .. tostring(err)
                 .. "); reconnecting, it goes again")
      return "again"
    end
    return "outage", err, info
  end
  self.broke = nil
  if kind == "session" then
    -- about the session, not this message: every message would get it, so none
    -- is failed; the queue waits as for an outage, saying what to change
    local s = self.session
    local why = outcome.session_refusal_text(s and s.info and s:info(), info, reply, d.cfg and d.cfg.auth == true)
    self:close_session(true)
    info.session_refused = true
    return "outage", why, info
  end
  -- the server answered this message (a 4xx or 5xx of its own): it works
  self.answered = true
  if d.outage or d.outage_shown ~= false then d:recovered() end
  local n = (e.attempts or 0) + 1
  if kind == "not_sent" then
    -- decided here (the server's advertised SIZE; no 8BITMIME/SMTPUTF8 and
    -- nothing to convert it with): the server was not asked, the reason says so
    return d:fail(e, tostring(err), nil, { attempts = n })
  end
  if kind == "bad_address" then
    return d:fail(e, "not sent: " .. tostring(err), nil, { attempts = n })
  end
  if kind == "recipients" then
    -- the server answered MAIL: each recipient is settled by its own reply
    self.mails = (self.mails or 0) + 1
    local whole = info.stage == "data" and { reply = reply, reason = "rejected by the server at data: " ..
                                             tostring(err) } or nil
    return d:settle(e, with_local(e, { accepted = info.accepted or {}, rejected = info.rejected or {} }), whole)
  end
  if info.stage == "mail" and code and code >= 400 and code < 500 then
    -- a 4xx to MAIL on a fresh connection: about this message after all (a
    -- limit learnt from its refusal on the connection before was not one)
    local l = M.limits[self.key or ""]
    if l and l.by == e.id then M.limits[self.key] = nil end
  end
  if kind == "permanent" then
    return d:fail(e, "rejected by the server at " .. tostring(info.stage or "send") .. ": " .. tostring(err),
                  reply, { attempts = n })
  end
  return d:defer(e, reply)
end

-- burst(e): e and the messages after it on the open session, two in flight:
-- the next one's MAIL, RCPT and DATA ride with this one's final dot
-- (mailhook.smtp submit/result), one round trip per message.  Each message is
-- settled (removed, deferred, failed) before the next result is asked for,
-- which is what lets the next one's data leave.  Returns nil when nothing more
-- is ready, or "outage"/"again", err, info when the session broke (every
-- message not settled is requeued, oldest first again).
function W:burst(e)
  local d, s = self.d, self.session
  local flight = {}
  local stats = d.stats
  -- a real session's release and result are its client's own: called
  -- directly, per message (a scripted session of the tests has no client)
  local smtp = package.loaded["mailhook.smtp"]
  local c = smtp and getmetatable(s) == smtp.Session and rawget(s, "c") or nil
  -- withdrawn(x, submitted) -> nil (it goes) | "gone" | "replaced": x, loaded
  -- ahead, waited longer than RECHECK_AFTER since its load (or its last look),
  -- or was loaded before a `queue rm` asked (D:look_again), and is no longer
  -- the file it was loaded from: removed meanwhile, or replaced (edited in
  -- place).  A look costs two system calls, never made in a fast drain (a round
  -- trip of wait).  A streamed one (no data) has its own look at its submit
  -- (its file opened then: gone, or of another size); once submitted, its
  -- data comes from the file opened then, so only its removal counts
  local unchanged = d.spool.unchanged
  local function withdrawn(x, submitted)
    local t = x.loaded_at
    if not t or not unchanged or not (submitted or x.data) then return nil end
    local now = d.now()
    local waited = now - t
    if waited <= M.RECHECK_AFTER and waited >= -M.RECHECK_AFTER   -- (a clock step: a look)
       and not (d.asked_at and t <= d.asked_at) then return nil end
    x.loaded_at = now
    local same, why = unchanged(d.spool, x.id)
    if same == false and (x.data or why == "gone") then return why end
    return nil
  end
  -- drop(x, why, how): x is not sent, said why (withdrawn); a replaced one is
  -- loaded again (its next load reads what is there now and decides)
  local function drop(x, why, how)
    if why == "gone" then
      d.log.info("delivery: " .. x.id .. " was removed meanwhile (mailhook queue rm); not sent" .. (how or ""))
      d:release(x)
    else
      d.log.info("delivery: " .. x.id .. ": pickup/" .. x.id .. ".eml was replaced since its load; not sent as "
                 .. "loaded" .. (how or "") .. ", it is loaded again")
      d:requeue(x)
    end
  end
  local function submit(x)
    local why = withdrawn(x)
    if why then return drop(x, why) end
    stats.attempts = stats.attempts + 1
    -- an angle bracket in a quoted local part ("a>b"@x: RFC 5321 allows it, the
    -- intake takes it, as Postfix does) is never put in a path (smtp.c addr_ok: a
    -- server that does not parse quotes would end the path there and read the rest
    -- as parameters): that recipient fails by itself, saying why, not the message
    -- (x.angle: the spool's lean load says whether one holds an angle bracket; else looked at)
    if x.to and (x.angle or x.utf8 == nil) then
      local keep, bad
      for i, r in ipairs(x.to) do
        if sfind(r, "<", 1, true) or sfind(r, ">", 1, true) then   -- (plain: no pattern per message)
          if not bad then keep, bad = table.move(x.to, 1, i - 1, 1, {}), x.local_refused or {} end
          bad[#bad + 1] = { rcpt = r, class = "permanent", text = M.BY_MAILHOOK .. "the address holds an angle " ..
                            "bracket, which mailhook never puts in an SMTP path (a server that does not " ..
                            "parse quotes would read what follows as parameters)" }
        elseif keep then
          keep[#keep + 1] = r
        end
      end
      if bad then x.to, x.local_refused = keep, bad end
    end
    -- (x.utf8: the spool's lean load says whether an address is not ASCII; else looked at)
    if self.no_utf8 and x.to and (x.utf8 or (x.utf8 == nil and eight_bit(x.to))) then
      -- each non-ASCII recipient fails by itself, with why; the others go on
      local ascii, bad = {}, {}
      for _, r in ipairs(x.to) do
        if r:find("[\128-\255]") then
          bad[#bad + 1] = { rcpt = r, class = "permanent", text = M.BY_MAILHOOK .. "the address is not ASCII and " ..
                            "the server does not offer SMTPUTF8 (RFC 6531)" }
        else
          ascii[#ascii + 1] = r
        end
      end
      if #bad > 0 then
        if x.local_refused then   -- (after the angle brackets' refusals)
          bad = table.move(bad, 1, #bad, #x.local_refused + 1, x.local_refused)
        end
        x.to, x.local_refused = ascii, bad
      end
    end
    if not x.to or #x.to == 0 then
      d:settle(x, { accepted = {}, rejected = x.local_refused or {} })
      d:release(x)
      return
    end
    x.relay = self.relay
    -- the entry is the message: from, to, data or path and offset, from_params, to_params;
    -- its data a handle (LOAD_OPTS.buffer) that the engine takes, a string for any other session.
    -- A real session's submit_entry: the entry carries fields a message has not (id,
    -- attempts, ...), which s:submit refuses (its check is for a script's typo)
    if not c then
      if type(x.data) == "userdata" then x.data = x.data:bytes() end
      with_path(d, x)   -- (a loader's entry names no path: a host's session gets it as before)
    end
    local ok, err, info
    if c then ok, err, info = smtp.submit_entry(s, x) else ok, err, info = s:submit(x) end
    self.sent = self.sent + 1
    if ok then flight[#flight + 1] = x; return end
    if info and info.code == "ENOTFOUND" then
      -- a streamed one's file, gone since its load: `mailhook queue rm` (no
      -- deferral to record, nothing to say at error level)
      d.log.info("delivery: " .. x.id .. " was removed meanwhile (mailhook queue rm); not sent")
      d:release(x)
      return
    end
    -- the file could not be read: it waits its backoff, the rest go on
    d:defer(x, outcome.reply_text(info) or err)
    d:release(x)
  end
  -- the server's per-connection limit, when one was met: no more than that
  local limit = self:limit()
  local function full() return limit and self.sent >= limit end
  local drained = false   -- nothing more was due: no rescan per message at the tail
  d:check_verbose()
  local function pick()
    if drained or d.stopping or self.stale or (limit and self.sent >= limit) then return nil end
    local x = D.next_entry(d, self)
    if not x then drained = true end
    return x
  end
  local claimed = d.claimed
  submit(e)
  local nxt = pick()      -- picked and loaded ahead, while the server works
  while #flight > 0 do
    -- the oldest in flight: its commands went (with the final dot of the one
    -- before it), its data leaves at the next release.  Waited long (the one
    -- before it stalled) and removed meanwhile: the session is closed before
    -- its data, so the server takes nothing of it (no final dot), and the rest
    -- go over a new session
    local why = withdrawn(flight[1], true)
    if why then
      self:close_session(false)
      for i, g in ipairs(flight) do
        pcall(s.result, s)
        if i == 1 then drop(g, why, " (its transaction was abandoned before its data: the session is closed)")
        else d:requeue(g) end
      end
      if nxt then d:requeue(nxt) end
      return "again"
    end
    if nxt and #flight < 2 then
      if d.stopping or self.stale then
        d:requeue(nxt)
      else
        -- the one in flight goes from its file in three pieces or more
        -- (runtime/client.c, 256 KiB each): its data leaves first, since the
        -- next one's submit reads that one's file whole (client.c's pre-scan;
        -- 5 MB: a few ms the server would wait for the data), and its final
        -- dot, pieces later, still takes the next one's commands along.  Not
        -- for a smaller one: its dot would leave at once and the commands
        -- after it alone, and smtp-sink answered them up to 40 ms late
        -- (Nagle on its side, its replies then in two writes)
        local f = flight[1]
        if f and not f.data and (f.size or 0) - (f.offset or 0) > M.RELEASE_FIRST_BYTES then
          if c then c:release() elseif s.release then s:release() end
        end
        submit(nxt)
      end
      nxt = nil
    end
    -- every result so far is settled: the oldest in flight sends its data,
    -- with the commands of the one just submitted, and while the server
    -- works the next one is loaded
    if c then c:release() elseif s.release then s:release() end
    if not nxt then nxt = pick() end
    local f = table.remove(flight, 1)
    self.sending = f.id   -- its data went: with the server (status.json; `mailhook queue rm` says so)
    local res, err, info
    if c then
      -- brief: the usual message's outcome as the number of recipients that
      -- took it (no result table), where settle and the maillog need nothing more
      res, err, info = c:result(not d.verbose and not f.local_refused and not (f.refused and f.refused[1]))
    else
      res, err, info = s:result()
    end
    self.sending = nil
    local outcome, oerr, oinfo = W.outcome(self, f, res, err, info)
    if outcome == "outage" or outcome == "again" then d:requeue(f) else claimed[f.id] = nil end   -- (release)
    if not self.session then
      -- the session is gone: what was in flight behind it goes first again
      for _, g in ipairs(flight) do
        pcall(s.result, s)
        d:requeue(g)
      end
      if nxt then d:requeue(nxt) end
      if outcome ~= "outage" then outcome = "again" end
      return outcome, oerr, oinfo
    end
  end
  if nxt then d:requeue(nxt) end
  if full() then
    -- the limit reached: a new connection before the server refuses one more
    self:close_session(true)
    return "again"
  end
  return nil
end

function W:loop()
  local d = self.d
  while not d.stopping do
    local ready, why = d.ready(d.cfg)
    if not ready then
      self:close_session(true)
      self:enter("disabled", why or "settings not ready")
      if d.once then d.last_error = why; break end
      if d.forced then d:end_forced(why or "settings not ready") end
      self:wait(d.scan_interval)
    else
      if self.stale then self.stale = false; self:close_session(true) end
      local e, soonest = d:next_entry(self)
      if not e then
        if d.stopping then break end
        if d.forced and not d.once then d:end_forced() end
        if d.once then break end
        self:enter("idle")
        local now = d.now()
        local wait = d.scan_interval
        if soonest then wait = math.min(wait, soonest - now) end
        if self.session then
          local left = self.idle_since and (self.idle_since + d.idle_close - now) or d.idle_close
          if not self.idle_since then self.idle_since = now end
          if left <= 0 then
            self:close_session(true)
            self.idle_since = nil
          else
            wait = math.min(wait, left)
          end
        end
        self:wait(wait)
      else
        self.idle_since = nil
        local go = true
        if self.session and not (self.session.alive and self.session:alive()) then
          self:close_session(false)
        end
        if not self.session then
          self:enter("connecting")
          self.interruptible = true
          local ok, s, err, info = pcall(d.connect, d.cfg)
          self.interruptible = false
          if not ok then
            d:requeue(e)
            if d.stopping then break end
            -- (a table raised: its text or fields, not "table: 0x55...")
            s, err, info = nil, require("mailhook.rules").error_text(s), { stage = "connect" }
          end
          if s then
            self:connected(s)
          else
            d:requeue(e)
            go = false
            if self:outage(err, info, e) == "stop" then break end
          end
        end
        if go then
          self:enter("sending", e.id)
          local outcome, err, info = self:burst(e)
          if outcome == "outage" then
            if self:outage(err, info, e) == "stop" then break end
          end
        end
      end
    end
  end
  self:enter("stopping")
  d:sync()
  self:close_session(true)
  self:enter("stopped")
end

-- A worker's task: its loop, and whatever ends it (an error raised on the way,
-- a cancel) leaves no message said to be with the server (w.sending: status.json,
-- which `mailhook queue rm` reads).
function W:run_loop()
  local ok, err = pcall(W.loop, self)
  self.sending = nil
  if not ok then error(err, 0) end
end

-- run() waits: delivers until stop() (service) or, once = true, until the pass
-- ends.  Returns the stats table.
function D:run()
  local n = math.max(1, math.floor(tonumber(self.n or self.cfg.connections) or 1))
  for i = 1, n do
    -- (stale: false, not absent, as d's fields read per message: see M.new)
    local w = setmetatable({ d = self, i = i, sent = 0, stale = false }, W)
    self.workers[i] = w
    w.task = self.spawn(W.run_loop, w)
  end
  for _, w in ipairs(self.workers) do
    local ok, err = w.task:wait()
    self:sync()
    if not ok and not w.cut then
      -- an error raised as a table (a session's or a spool's error{...})
      -- by its __tostring, else its fields, on one bounded line: it was
      -- "table: 0x55...", what went wrong lost (the rules' own rendering)
      local text = require("mailhook.rules").error_text(err)
      self.log.error("delivery[" .. w.i .. "] stopped on an error: " .. text)
      self.last_error = self.last_error or text
      self.stats.errors = self.stats.errors + 1
    end
  end
  if self.grace_task then self.grace_task:cancel(); self.grace_task = nil end
  return self.stats
end

M.Deliverer = D
M.Worker = W

return M
