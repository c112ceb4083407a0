-- mailhook.status (lua/mailhook/status.lua) with a scripted deliverer: the
-- tracker follows the on_change hook (states, an outage that keeps its start
-- across reconnection attempts, outcomes), writes SPOOL/status.json by rename
-- with a growing seq, says "stopped" last; flowing() decides the exit status
-- of `mailhook status`; text() names what an administrator acts on; a report
-- survives JSON.  The real service is exercised by tests/integration/status.sh.
local tap = require "tap"
local mh = require "mailhook"
local status = require "mailhook.status"
local json = require "mailhook.json"

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. p .. "/pickup " .. p .. "/failed"))
  return p
end

-- A deliverer as far as the tracker sees one: workers with states, stats, cfg.
local function fake_delivery(now)
  local d = { workers = { { state = nil } }, stats = { delivered = 0, deferred = 0, failed = 0, attempts = 0 },
              cfg = { server = { "smtp.example.com" }, port = 587, retry_interval = 30 },
              ready = function() return true end }
  function d:enter(state, detail)
    local w = self.workers[1]
    local old = w.state
    w.state, w.since = state, now()
    if self.on_change then self.on_change(self, "state", w, old, state, detail) end
  end
  function d:event(name, ...) if self.on_change then self.on_change(self, name, ...) end end
  return d
end

local function clock()
  local t = 1000
  return function() return t end, function(dt) t = t + dt end
end

tap.test("states, an outage and its recovery", function(t)
  local dir = tmpdir()
  local now, advance = clock()
  local d = fake_delivery(now)
  local tr = status.tracker { delivery = d, spool_dir = dir, now = now }
  d:enter("idle")
  t:is(tr:snapshot().connection.state, "idle", "idle at start")
  advance(5)
  d:enter("connecting")
  d:event("outage", d.workers[1], "could not connect to smtp.example.com port 587: connection refused",
          { stage = "connect", class = "transient" })
  d.outage = { since = now() }
  d:enter("waiting-retry", "refused")
  local s = tr:snapshot()
  t:is(s.connection.state, "waiting-retry", "waiting to retry")
  t:is(s.connection.outage.since, 1005, "outage since its first failure")
  t:is(s.connection.outage.stage, "connect", "with the stage")
  t:is(s.connection.next_attempt, 1035, "next attempt = last attempt + retry_interval")
  advance(30)
  d:enter("connecting")
  t:is(tr:snapshot().connection.state, "waiting-retry", "a reconnection attempt is still the outage")
  d:event("outage", d.workers[1], "535 5.7.8 authentication failed", { stage = "auth", smtp = 535,
          enhanced = "5.7.8", text = "5.7.8 authentication failed" })
  d:enter("waiting-retry")
  s = tr:snapshot()
  t:is(s.connection.outage.since, 1005, "its start did not move")
  t:is(s.connection.outage.stage, "auth", "the latest error's stage")
  t:is(s.connection.outage.reply.smtp, 535, "and the server's reply")
  t:is(s.connection.next_attempt, 1065, "next attempt follows the latest attempt")
  local r = { service = { running = true, settings_ready = true }, settings = { ready = true }, connection = s.connection }
  local flowing, why = status.flowing(r)
  t:is(flowing, false, "not flowing during an outage")
  t:like(why, "auth: 535 5.7.8 authentication failed", "why: the stage and the reply")
  advance(30)
  d.outage = nil
  d:enter("connecting")
  d.workers[1].session = { info = function() return { server = "smtp.example.com", security = "starttls" } end }
  d:enter("sending", "0001")
  s = tr:snapshot()
  t:is(s.connection.state, "connected", "connected while sending")
  t:is(s.connection.outage, nil, "the outage is over")
  t:is(s.connection.server, "smtp.example.com", "the server of the session")
  t:is(s.connection.last_error.stage, "auth", "the last error stays for the record")
  r.connection = s.connection
  t:is(status.flowing(r), true, "flowing again")
  d.stats.delivered = 3
  advance(1)
  d:event("delivered", { id = "0001" })
  t:is(tr:snapshot().connection.last_success, 1066, "last success time")
  t:is(tr:snapshot().counters.delivered, 3, "counters from the deliverer's stats")
  d.stats.partial = 1
  t:is(tr:snapshot().counters.partial, 1, "partial (failed, some recipients got it) too")
  d:event("deferred", { id = "0002" }, "451 4.3.0 try later")
  t:is(tr:snapshot().connection.last_error.id, "0002", "a deferral is the last error, with its message id")
  tr:stop()
  os.execute("rm -rf " .. dir)
end)

tap.test("stop: not held by the pause between two writes", function(t)
  local dir = tmpdir()
  local d = fake_delivery(mh.now)
  local was = status.MIN_WRITE_INTERVAL
  status.MIN_WRITE_INTERVAL = 6      -- (0.25 s in use: each service stop waited it out)
  local tr = status.tracker { delivery = d, spool_dir = dir }
  mh.sleep(0.05)                     -- the first write is done: the writer pauses
  local t0 = mh.monotonic()
  tr:stop()
  local took = mh.monotonic() - t0
  status.MIN_WRITE_INTERVAL = was
  t:ok(took < 3, "stop returns without waiting out the pause (" .. string.format("%.2f", took) .. " s of 6)")
  t:is(json.decode(tap.slurp(dir .. "/status.json")).connection.state, "stopped", "the last state written: stopped")
end)

tap.test("the file: written by rename, seq grows, stopped last", function(t)
  local dir = tmpdir()
  local d = fake_delivery(mh.now)
  local tr = status.tracker { delivery = d, spool_dir = dir }
  mh.sleep(0.05)
  local f1 = json.decode(tap.slurp(dir .. "/status.json"))
  t:ok(f1 and f1.seq >= 1, "written at start")
  t:is(f1.pid, status.pid(), "with this process's pid")
  tr:answer()
  local f2 = json.decode(tap.slurp(dir .. "/status.json"))
  t:ok(f2.seq > f1.seq, "an answer is a fresh write (seq grows)")
  t:is(tap.slurp(dir .. "/status.json.tmp"), nil, "no temporary file left")
  -- many outcomes: a few writes, not one each
  local before = f2.seq
  for i = 1, 2000 do d.stats.delivered = i; d:event("delivered", { id = tostring(i) }) end
  mh.sleep(0.6)
  local f3 = json.decode(tap.slurp(dir .. "/status.json"))
  t:is(f3.counters.delivered, 2000, "the file catches up")
  t:ok(f3.seq - before <= 4, "2,000 outcomes coalesced into " .. (f3.seq - before) .. " write(s)")
  tr:stop()
  local f4 = json.decode(tap.slurp(dir .. "/status.json"))
  t:is(f4.connection.state, "stopped", "the last write says stopped")
  t:ok(f4.stopped_at ~= nil, "and when")
  t:is(d.on_change, nil, "the hook is removed")
  os.execute("rm -rf " .. dir)
end)

tap.test("flowing: each reason", function(t)
  local base = function()
    return { service = { running = true, settings_ready = true }, settings = { ready = true },
             connection = { state = "idle" } }
  end
  t:is(status.flowing(base()), true, "running, ready, idle: flowing")
  local r = base(); r.service.running = false
  local ok, why = status.flowing(r)
  t:ok(not ok and why:find("no service is running", 1, true), "no service")
  r = base(); r.settings = { ready = false, error = "outgoing mail is disabled (mailhook update enabled=true)" }
  ok, why = status.flowing(r)
  t:ok(not ok and why:find("enabled=true", 1, true), "settings not ready, naming the setting")
  r = base(); r.service.settings_ready = false; r.service.settings_error = "no server is set"
  ok, why = status.flowing(r)
  t:ok(not ok and why:find("SIGHUP", 1, true), "the service's own settings not ready (not reloaded)")
  r = base(); r.connection.state = "disabled"
  t:is(status.flowing(r), false, "paused")
  r = base(); r.service.answered = false; r.service.note = "the service (pid 9) did not answer within 2 s"
  ok, why = status.flowing(r)
  t:ok(not ok and why:find("did not answer", 1, true), "a service that does not answer, even with a good last state")
  r = base(); r.connection = nil; r.service.note = "the service (pid 9) did not answer within 2 s"
  ok, why = status.flowing(r)
  t:ok(not ok and why:find("did not answer", 1, true), "a service that does not answer")
  -- a file of maildrop/ the service cannot adopt: a local user's mail that never leaves
  -- until someone acts; a 3 a.m. check reads only the exit status (it was 0)
  r = base(); r.service.maildrop_stuck_total = 2
  r.service.maildrop_stuck = { { name = "0000000000000001.00000001", reason = "maildrop: unreadable", since = 1 } }
  local but
  ok, why, but = status.flowing(r)
  t:is(ok, false, "a stuck maildrop/ file: not flowing (status exits 1)")
  t:is(but, "maildrop_stuck", "said as such: the rest flows")
  t:like(why, "^2 files of maildrop/ the service cannot adopt never leave until they are fixed or removed",
         "naming how many and what to do")
  r.checked_at, r.flowing, r.reason, r.maildrop_stuck = 2000, ok, why, true
  r.queue = { pickup = 0, failed = 0 }
  t:like(status.text(r), "^mail is flowing, but 2 files of maildrop/", "the first line: flowing, but")
  r = base(); r.service.maildrop_stuck_total = 0
  t:is(status.flowing(r), true, "no stuck file: flowing")
end)

tap.test("text and JSON of a report", function(t)
  local r = {
    checked_at = 2000, flowing = false, reason = "the server cannot be reached: connect: refused",
    service = { running = true, pid = 42, since = 1000, console = "http://127.0.0.1:8025" },
    settings = { ready = true, path = "/etc/mailhook.conf" },
    connection = { state = "waiting-retry", since = 1900, servers = { "smtp.example.com" }, port = 587,
                   outage = { since = 1900, error = "refused", stage = "connect" }, next_attempt = 2020,
                   last_error = { at = 1990, error = "refused", stage = "connect" } },
    queue = { pickup = 12, oldest_age = 185, failed = 2, drop_ins = 0 },
    counters = { delivered = 5, deferred = 1, failed = 2, attempts = 8 },
  }
  local text = status.text(r)
  t:like(text, "^mail is NOT flowing: the server cannot be reached", "first line: the verdict and why")
  t:like(text, "running, pid 42", "the service's pid")
  t:like(text, "console http://127.0.0.1:8025", "and its console")
  t:like(text, "waiting to retry since .* %(100s%): connect: refused", "waiting since when, the stage, the error")
  t:like(text, "next attempt .* %(in 20s%)", "the next attempt")
  t:like(text, "12 messages in pickup/, oldest 3m; 2 in failed/", "the queue")
  t:like(text, "delivered 5, deferred 1, failed 2\n", "counters since start")
  r.counters.partial, r.counters.partial_delivered, r.counters.partial_recipients = 1, 121, 123
  t:like(status.text(r), "delivered 5, deferred 1, failed 2 %(1 partly delivered: 121 of 123 recipients%)",
         "a failed message some recipients got is said partly delivered, with its recipients")
  r.counters.failed = 1
  t:like(status.text(r), "failed 1 %(partly delivered: 121 of 123 recipients%)", "every failed one partly delivered")
  local back = json.decode(json.encode(r))
  t:is(back.connection.outage.stage, "connect", "the report survives JSON")
  t:is(back.queue.pickup, 12, "numbers too")
end)

tap.test("partly delivered: the snapshot's counters carry the recipients too", function(t)
  local dir = tmpdir()
  local d = fake_delivery(mh.now)
  d.stats.failed, d.stats.partial, d.stats.partial_delivered, d.stats.partial_recipients = 3, 1, 121, 123
  local tr = status.tracker { delivery = d, spool_dir = dir }
  local k = tr:snapshot().counters
  t:is(k.partial, 1, "partial: the messages")
  t:is(k.partial_delivered, 121, "partial_delivered: the recipients that got them (status --json, /metrics)")
  t:is(k.partial_recipients, 123, "partial_recipients: of how many")
  tr:stop()
  os.execute("rm -rf " .. dir)
end)

tap.test("collect with the service's tracker: its spool and settings, not the default ones", function(t)
  local core = require "mailhook.core"
  local dir, other = tmpdir(), tmpdir()
  local sp = assert(require("mailhook.spool").open(dir))
  assert(sp:enqueue("Subject: s\r\n\r\nb\r\n", { from = "a@b.c", to = { "x@y.z" } }))
  assert(sp:enqueue("Subject: s\r\n\r\nb\r\n", { from = "a@b.c", to = { "x@y.z" } }))
  local saved_spool, saved_conf = core.paths.spool, core.paths.conf
  core.paths.spool, core.paths.conf = other, other .. "/none.conf"   -- the default: an empty spool
  local d = fake_delivery(mh.now)
  local tr = status.tracker { delivery = d, spool_dir = dir, conf = dir .. "/mailhook.conf" }
  local ok, r = pcall(status.collect, { tracker = tr })
  core.paths.spool, core.paths.conf = saved_spool, saved_conf
  t:ok(ok, "collected", not ok and r or nil)
  if ok then
    t:is(r.spool, dir, "the tracker's spool (the console's /api/status and /metrics)")
    t:is(r.queue and r.queue.pickup, 2, "its pickup/ counted (the default spool's is empty)")
    t:is(r.settings.path, dir .. "/mailhook.conf", "the settings file the service loaded")
  end
  tr:stop()
  os.execute("rm -rf " .. dir .. " " .. other)
end)

tap.test("cond: notify wakes a waiter, a timeout does not", function(t)
  local c = status.cond()
  local t0 = mh.monotonic()
  t:is(c:wait(0.05), false, "timeout: false")
  local waiter = mh.spawn(function() return c:wait(10) end)
  mh.sleep(0.01)
  c:notify()
  local ok, woke = waiter:wait()
  t:ok(ok and woke, "notified: true")
  t:ok(mh.monotonic() - t0 < 5, "at once, not after the timeout")
  c:notify()
  t:is(c:wait(10), true, "a notify before the wait is not lost")
end)

return tap.done()
