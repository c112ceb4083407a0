-- mailhook.flush — deliver the queue now and wait: what `mailhook flush`
-- (mailhook.cmd.flush) and mh.queue.flush() do.  One pass of the deliverer
-- (mailhook.delivery) with backoff ignored, or, while a service holds the
-- spool lock, a request to that service (SIGUSR1) and a wait for its answer
-- in SPOOL/flush.done: never two deliverers on one spool.
--
--   flush.run{...} -> summary                         (waits; below)
--   flush.queue(opts) -> summary | nil, err, summary   (waits; mh.queue.flush)
--   flush.count(sp) -> messages in pickup/             (waits)
--   flush.failed_count([dir]) -> messages in failed/ | nil
--   flush.write_done(dir, left [, err])                the service's answer (cmd/run.lua)
local M = {}

-- Seconds a flush waiting for the service sees nothing leave pickup/ before
-- it asks the service whether it is alive (a status request: SIGUSR2); no
-- answer within status.ASK_TIMEOUT ends the wait (exit 1, said why).
M.QUIET = 10

-- count(sp): how many messages wait in pickup/ (scan(1): only one id crosses into Lua).
function M.count(sp)
  local ids, total = sp:scan(1)
  if type(total) == "number" then return total end
  return type(ids) == "table" and #ids or 0
end
local count = M.count

-- failed_count([dir]): how many messages wait in failed/ (dead letters: never
-- part of "left", which is what pickup/ still holds).  A readdir, no file
-- opened; nil when unreadable.
function M.failed_count(dir)
  local core = require "mailhook.core"
  local names = core.rstate.list((dir or core.paths.spool) .. "/failed")
  if type(names) ~= "table" then return nil end
  local n = 0
  for _, name in ipairs(names) do
    if not name:match("%.state$") and not name:find(".state.", 1, true) then n = n + 1 end
  end
  return n
end

-- failed_ids([dir]) -> {ID = true...} | nil: the messages in failed/ (a readdir).
function M.failed_ids(dir)
  local core = require "mailhook.core"
  local names = core.rstate.list((dir or core.paths.spool) .. "/failed")
  if type(names) ~= "table" then return nil end
  local ids = {}
  for _, name in ipairs(names) do
    local id = name:match("^(.+)%.eml$")
    if id then ids[id] = true end
  end
  return ids
end

-- partial_since(before [, dir]) -> partial, delivered, recipients: of the
-- messages in dir's failed/ now and not in before (failed_ids), those some
-- recipients got (their sidecar's `done`), and how many recipients got them
-- of how many in all.  The sidecars are read from dir too (mh.queue.show read
-- the default spool's: a flush{spool_dir =} of another spool counted none).
-- A sidecar that cannot be read counts as none.
function M.partial_since(before, dir)
  local now = before and M.failed_ids(dir)
  local n, got, all = 0, 0, 0
  if not now then return n, got, all end
  local sp = require("mailhook.queue").spool(dir)   -- dir's (nil: the default), opened once
  if not sp then return n, got, all end
  for id in pairs(now) do
    if not before[id] then
      local ok, e = pcall(sp.load, sp, id)
      if ok and type(e) == "table" and #(e.done or {}) > 0 then
        n, got = n + 1, got + #e.done
        all = all + #e.done + #(e.refused or {}) + #(e.to or {})
      end
    end
  end
  return n, got, all
end

-- The file a running service writes when a flush it was asked for is over:
-- "TIME LEFT [ERROR]\n".
function M.done_path(dir) return dir .. "/flush.done" end

-- stamp(now) -> the TIME written: never before now once printed and read
-- back (rounded up, to the microsecond), since a waiting flush takes a TIME
-- at or after its request for the answer to it.  Rounded to the nearest
-- millisecond, a service that answered within half a millisecond (it does,
-- on a queue whose messages it cannot read) wrote a TIME before the
-- request, and the flush waited for ever (spool-unreadable.sh hung in CI).
function M.stamp(now)
  local us = math.ceil(now * 1e6)
  local t = us / 1e6
  -- (a double printed lower than the decimal it stands for: one more)
  if tonumber(string.format("%.6f", t)) < now then t = (us + 1) / 1e6 end
  return t
end

-- write_done(dir, left [, err [, asked]]) -> true | nil, err: written by
-- rename, so a waiting `mailhook flush` never reads half a line: the core's
-- atomic write (an O_EXCL temporary file: never through a link planted in the
-- spool), mode 0600.  asked: when the last request the pass covers was
-- handled (mh.monotonic(): CLOCK_MONOTONIC, one clock for every process,
-- never stepped), a second line "asked SECONDS", rounded up: a waiting flush
-- takes no answer asked before it signalled.
function M.write_done(dir, left, err, asked)
  local core = require "mailhook.core"
  return core.fsutil.write_atomic(M.done_path(dir), string.format("%.6f %d %s\n", M.stamp(core.now()), left,
                                  err and tostring(err):gsub("\n", " ") or "") ..
                                  (asked and string.format("asked %.6f\n", M.stamp(asked)) or ""), 384)
end

-- answer(s, before, since) -> true, err | false: whether flush.done's text s
-- answers a request signalled at monotonic time since, the file having held
-- before then.  A new file is the answer unless it says it covers only
-- requests asked before since: a pass that ended between the flush's read of
-- before and the service's handling of its signal (an earlier request's
-- answer, taken for this one: the flush ended early, messages left).  A file
-- without the line (an older service) is the answer when new.
function M.answer(s, before, since)
  if not s or s == before then return false end
  local t, _, why, rest = s:match("^(%S+) (%d+) ?([^\n]*)\n?(.*)$")
  if not tonumber(t) then return false end
  local asked = tonumber((rest or ""):match("^asked (%S+)\n?$"))
  if asked and since and asked < since then return false end
  return true, why ~= "" and why or nil
end

-- flush{[spool_dir =, cfg =, progress = fn(done, total, left), timeout =]} -> summary
--   summary = {delivered =, deferred =, failed =, left =, total =, via = "self"|"service",
--              error = string|nil, spool_error = true when the spool could not be opened,
--              no_spool = "no spool at DIR: ..." when there is none (no folder, or one
--              with neither pickup/ nor maildrop/: nothing made, nothing delivered),
--              partial =, partial_delivered =, partial_recipients =,
--              service_lost = true when the service stopped answering: went away,
--              no answer to a status request, or no answer written (error says which)}
--   (messages: failed counts every one moved to failed/, partial those of them
--   some recipients got: partial_delivered of partial_recipients recipients;
--   deferred those still queued after the pass: of the messages queued when
--   the pass began (via "self") or when the service was asked (via "service"),
--   those still in pickup/ at the end)
-- Waits.  Delivers the queue now, backoff ignored, one pass; stops early when
-- the server cannot be reached.  While a service holds the spool lock, it asks
-- that service (SIGUSR1 to the pid in the lock) and waits for it: never two
-- deliverers on one spool.  `mailhook flush` and mh.queue.flush() call it.
-- The options run takes (cmd/flush's progress and timeout, the tests' and
-- sendmail's spool, cfg, connect, emit, ready): another one, or an argument
-- too many, raises (a misspelt {timout = 1} waited for ever).
local OPTIONS = { "timeout", "progress", "spool", "spool_dir", "cfg", "connect", "emit", "ready" }

function M.run(opts, ...)
  if opts ~= nil and type(opts) ~= "table" then
    error("mh.queue.flush: expects a table of options or nothing, got a " .. type(opts), 2)
  end
  require("mailhook.core").check_options("mh.queue.flush", opts or {}, OPTIONS, select("#", ...) + 1, 1)
  opts = opts or {}
  local mh = require "mailhook"
  local core = require "mailhook.core"
  local dir = opts.spool_dir or core.paths.spool
  local sp, serr = opts.spool, nil
  local sinfo
  -- a deliverer completes a spool (its missing folders, the lock; one with
  -- maildrop/ alone is the installed spool, its mail waiting) but never makes
  -- one: no folder, or one with neither pickup/ nor maildrop/, is nothing to
  -- deliver (it made the spool, owned by whoever ran flush: "0 delivered")
  if not sp then sp, serr, sinfo = require("mailhook.spool").open(dir, { existing = true }) end
  if not sp and require("mailhook.spool").no_spool(sinfo) then
    return { no_spool = require("mailhook.queue").why(serr, sinfo, dir), delivered = 0, deferred = 0, failed = 0,
             left = 0, total = 0 }
  end
  if not sp then
    -- a spool this user may not open (sendmail -q, mailhook flush as a local
    -- user): said, with nothing counted
    return { error = require("mailhook.spool").why(dir, serr), spool_error = true, delivered = 0, deferred = 0,
             failed = 0, left = 0, total = 0 }
  end
  local cfg = opts.cfg
  if not cfg then
    local settings = require "mailhook.settings"
    local err
    cfg, err = settings.load(core.paths.conf)
    if not cfg then return { error = err, left = count(sp), total = count(sp), delivered = 0,
                             deferred = 0, failed = 0 } end
  end
  local progress = opts.progress or function() end
  -- the lock first: only its holder adopts drop-ins, so a count taken before
  -- it would miss a .eml renamed into pickup/ by another program
  local locked, lerr, linfo = sp:lock()
  -- the lock holder's count is the deliverer's first scan too: the oldest
  -- ids it sends first (a scan reads all of pickup/: 1-3 ms for 2,000 messages,
  -- 1% of draining them, once less)
  local first, total, failed_before, queued_before
  if locked then
    local serr2
    first, total = sp:scan(require("mailhook.delivery").BATCH)
    if type(first) ~= "table" then
      -- pickup/ cannot be listed (an I/O error): not "0 left", exit 0, unsaid
      serr2 = total
      if not opts.spool then sp:close() end
      return { error = "cannot list the queue: " .. tostring(serr2), spool_error = true, delivered = 0,
               deferred = 0, failed = 0, left = 0, total = 0 }
    end
    if type(total) ~= "number" then total = #first end
  else
    -- failed/ before pickup/ is counted: a message the service moves between
    -- the two would be counted gone from pickup/ and not failed (delivered)
    failed_before = M.failed_ids(dir)
    -- the ids, to tell at the end which of them are still queued (deferred)
    local ids, n = sp:scan()
    if type(ids) ~= "table" then
      -- pickup/ cannot be listed (an I/O error): no empty queue, as for the
      -- lock holder above (it said "0 delivered, 0 left" and exit 0)
      if not opts.spool then sp:close() end
      return { error = "cannot list the queue: " .. tostring(n), spool_error = true, delivered = 0,
               deferred = 0, failed = 0, left = 0, total = 0 }
    end
    queued_before = {}
    for _, id in ipairs(ids) do queued_before[id] = true end
    total = type(n) == "number" and n or #ids
  end
  if total == 0 then
    if locked and not opts.spool then sp:close() end
    return { delivered = 0, deferred = 0, failed = 0, left = 0, total = 0, via = "self" }
  end
  if locked then
    local d = require("mailhook.delivery").new{ spool = sp, cfg = cfg, once = true, connect = opts.connect,
                     ready = opts.ready, emit = opts.emit, connections = cfg.connections,
                     outage_file = dir .. "/outage", queue = first }
    local done_task = true
    local ticker = mh.spawn(function()
      while done_task do
        local st = d.stats
        progress(st.delivered + st.failed, total, nil)
        pcall(mh.sleep, 0.2)   -- cancelled when the pass ends
      end
    end)
    local started = d.now()
    local st = d:run()
    -- the last record of a delivery vs the end: what follows it is removing
    -- the delivered files (delivery.lua, the delivered journal)
    local drain = d.last_delivered and math.max(0, d.last_delivered - started) or nil
    local ended = d.now() - started
    done_task = false
    -- interrupt the ticker's sleep: waiting it out added up to 0.2 s to every
    -- flush (15% of draining 2,000 messages)
    ticker:cancel()
    ticker:wait()
    -- what pickup/ holds now; when it cannot be listed (count says 0), what
    -- this pass did not send, and an error: never "0 left" unseen
    local lids, left = sp:scan(1)
    local listing_error
    if type(lids) ~= "table" then
      listing_error = true
      d.last_error = d.last_error or ("cannot list the queue: " .. tostring(left))
      left = math.max(total - st.delivered - st.failed, 0)
    elseif type(left) ~= "number" then
      left = #lids
    end
    if not opts.spool then sp:close() end   -- releases the lock (it lasts until close)
    progress(st.delivered + st.failed, total, left)
    -- deferred: of the messages queued when the pass began, those still queued
    -- (a 4xx again, or the pass ended early), as the service's answer counts
    -- them below; the pass's own count left out the ones an outage kept it
    -- from trying ("0 deferred, 3 left" where a service's flush said 3)
    local deferred = math.max(st.deferred, math.min(left, math.max(0, total - st.delivered - st.failed)))
    return { delivered = st.delivered, deferred = deferred, failed = st.failed, left = left,
             total = total, via = "self", error = d.last_error, listing_error = listing_error,
             seconds = ended, drain_seconds = drain,
             drained_at = d.last_delivered, partial = st.partial or 0,
             partial_delivered = st.partial_delivered or 0, partial_recipients = st.partial_recipients or 0 }
  end
  -- a service holds the lock: ask it
  local pid = type(linfo) == "table" and linfo.code == "ELOCKED" and linfo.pid
  -- the pid the lock file names is informative only (empty: 0, and kill(0)
  -- raised): the holder /proc/locks names, then
  if pid and not (math.type(pid) == "integer" and pid > 0) then pid = core.admin.lock_holder(dir) or nil end
  if not pid then
    return { error = "cannot flush: " .. tostring(lerr), left = total, total = total,
             delivered = 0, deferred = 0, failed = 0 }
  end
  local donefile = M.done_path(dir)
  -- the answer is a flush.done other than the one there before the request
  -- (written by rename: a new line, whatever its TIME says): its TIME against
  -- this clock waited for ever when the wall clock stepped back between the
  -- request and the answer (NTP, a VM resumed), the answer dated before it
  local before = core.fsutil.read(donefile, { max = 4096 })
  local asked = mh.monotonic()
  -- (signalled after asked: the service handles it later on the same clock,
  -- and its answer says when: flush.answer)
  local ok, kerr = core.signal.kill(pid, "USR1")
  if not ok then
    return { error = "cannot reach the service (pid " .. pid .. "): " .. tostring(kerr), left = total,
             total = total, delivered = 0, deferred = 0, failed = 0 }
  end
  local timeout = opts.timeout
  local left = total
  local err, listing_error, lost
  -- the sign of life: pickup/ shrinking, or, after M.QUIET seconds without
  -- it, an answer to a status request (SIGUSR2, within status.ASK_TIMEOUT);
  -- a service stopped (SIGSTOP, a hung disk) or unable to write to the spool
  -- (full, read-only) answers neither, and the flush says so and ends
  local moved = asked
  while true do
    mh.sleep(0.2)
    -- what pickup/ holds; when it cannot be listed (count says 0), what it
    -- held at the last count, and an error: never "0 left" unseen (it broke
    -- out here as if the service had sent everything, exit 0)
    local lids, n = sp:scan(1)
    if type(lids) ~= "table" then
      listing_error, err = true, "cannot list the queue: " .. tostring(n)
      break
    end
    local was = left
    left = type(n) == "number" and n or #lids
    if left ~= was then moved = mh.monotonic() end
    progress(math.max(0, total - left), total, nil)
    if left == 0 then break end
    local s = core.fsutil.read(donefile, { max = 4096 })   -- regular, no link, bounded
    local answered, why = M.answer(s, before, asked)
    if answered then
      if why then err = why end
      break
    end
    -- the service: the lock's holder still (/proc/locks), not only a live pid:
    -- a service that died left its pid to the next process, for which
    -- kill(pid, 0) succeeds for ever
    local holder = core.admin.lock_holder(dir)
    if holder == false or (holder and holder ~= pid) or (holder == nil and not core.signal.kill(pid, 0)) then
      err, lost = "the service (pid " .. pid .. ") went away (it holds the spool's lock no more)", true; break
    end
    if timeout and mh.monotonic() - asked > timeout then err = "timed out waiting for the service"; break end
    if mh.monotonic() - moved >= M.QUIET then
      local status = require "mailhook.status"
      local snap, answered, swhy = status.ask(dir, pid, status.ASK_TIMEOUT)
      if not answered then
        err = string.format("nothing left the queue for %g s and %s: stopped waiting (%d message(s) " ..
                            "still queued; the service's log says why)", M.QUIET, tostring(swhy), left)
        lost = true
        break
      end
      if snap and snap.flush_error then
        err, lost = "the service (pid " .. pid .. ") ended its pass but " .. tostring(snap.flush_error), true; break
      end
      moved = mh.monotonic()
    end
  end
  progress(math.max(0, total - left), total, left)
  -- what left pickup/ went out, or to failed/: the messages there now that
  -- were not before (a dead letter is neither delivered nor left; failed was
  -- 0 here and every failure counted delivered, for mh.queue.flush callers)
  local gone, failed = math.max(0, total - left), 0
  local failed_now = failed_before and M.failed_ids(dir)
  for id in pairs(failed_now or {}) do
    if not failed_before[id] then failed = failed + 1 end
  end
  failed = math.min(failed, gone)
  -- deferred: of the messages queued when the service was asked, those still
  -- in pickup/ now (a 4xx again, or the pass ended early), as the local
  -- path's deferred says what its pass left queued (it said 0: a flush that
  -- left a message deferred read as one that had nothing to defer)
  local deferred = 0
  local now_ids, nerr = sp:scan()
  if type(now_ids) ~= "table" and not listing_error then
    listing_error, err = true, err or ("cannot list the queue: " .. tostring(nerr))
  end
  for _, id in ipairs(type(now_ids) == "table" and now_ids or {}) do
    if queued_before and queued_before[id] then deferred = deferred + 1 end
  end
  local partial, got, all = M.partial_since(failed_before, dir)
  return { delivered = gone - failed, deferred = deferred, failed = failed, left = left, total = total,
           via = "service", pid = pid, error = err, listing_error = listing_error, service_lost = lost,
           partial = partial,
           partial_delivered = got, partial_recipients = all }
end

-- queue(opts) -> summary | nil, err, summary: run(opts) for mh.queue.flush (waits).
function M.queue(opts, ...)
  if opts ~= nil and type(opts) ~= "table" then
    error("mh.queue.flush: expects a table of options or nothing, got a " .. type(opts), 2)
  end
  require("mailhook.core").check_options("mh.queue.flush", opts or {}, OPTIONS, select("#", ...) + 1, 1)
  local s = M.run(opts)
  -- a spool that could not be opened left 0 "left": no success (assert() passed)
  if s.left == 0 and not s.spool_error and not s.listing_error then return s end
  return nil, s.error or (s.left .. " message(s) left in the queue"), s
end

return M
