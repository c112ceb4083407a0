-- The deliverer on the real spool (runtime/spool.c): spool:scan(limit) keeps
-- memory bounded; a once-pass (flush) removes each message only after its
-- 250 and records deferrals and failures in the spool's sidecars.  The SMTP
-- side is a scripted session here; tests/integration/delivery-*.sh use real servers.
local tap = require "tap"
local mh = require "mailhook"
local delivery = require "mailhook.delivery"
local spool = require "mailhook.spool"

local dir = os.tmpname()
os.remove(dir)
local function rm_rf() os.execute("rm -rf '" .. dir .. "'") end

local function msg(i, from)
  return "From: " .. (from or "a@example.com") .. "\r\nTo: b@example.net\r\nSubject: m" .. i ..
         "\r\nMessage-ID: <" .. i .. "@t>\r\n\r\nbody " .. i .. "\r\n"
end

-- connect() of a scripted session whose send(m) is the given function (a
-- session that is always alive, quits and closes without a word)
local function scripted(send)
  return function()
    return { alive = function() return true end, quit = function() return true end,
             close = function() end, send = function(_, m) return send(m) end }
  end
end

tap.test("scan(limit) returns the oldest ids and the total", function(t)
  local sp = assert(spool.open(dir))
  local ids = {}
  for i = 1, 5 do ids[i] = assert(sp:enqueue(msg(i), { from = "a@example.com", to = { "b@example.net" } })) end
  local got, total = sp:scan(2)
  t:same(got, { ids[1], ids[2] }, "the two oldest")
  t:is(total, 5, "total of all")
  local all, total2 = sp:scan()
  t:is(#all, 5, "no limit: all")
  t:is(total2, 5, "total")
  t:ok(not pcall(sp.scan, sp, -1), "a negative limit raises")
  -- more ids than the limit, in directory order: the heap keeps the oldest, sorted
  local batch = {}
  for i = 1, 60 do batch[i] = { msg(100 + i), { from = "a@example.com", to = { "b@example.net" } } } end
  assert(sp:enqueue_many(batch))
  local full = sp:scan()
  local seven, t7 = sp:scan(7)
  t:same(seven, { table.unpack(full, 1, 7) }, "scan(7) = the first 7 of a full scan")
  t:is(t7, 65, "total counts every ready message")
  local one, t1 = sp:scan(1)
  t:same(one, { full[1] }, "scan(1): the oldest")
  t:is(t1, 65, "and the total")
  all = full
  for _, id in ipairs(all) do sp:remove(id) end
  sp:close()
end)

tap.test("a flush pass on the real spool: 250 removes, 4xx defers, 5xx fails with a sidecar", function(t)
  local sp = assert(spool.open(dir))
  assert(sp:lock())
  local ok1 = assert(sp:enqueue(msg(1), { from = "a@example.com", to = { "ok@x" } }))
  local tmp = assert(sp:enqueue(msg(2), { from = "a@example.com", to = { "ok@x", "temp@x" } }))
  local bad = assert(sp:enqueue(msg(3), { from = "a@example.com", to = { "perm@x" } }))
  local sent, given = {}, {}
  local connect = scripted(function(m)
    local f = assert(io.open(m.path, "rb")); f:seek("set", m.offset); local data = f:read("a"); f:close()
    sent[#sent + 1] = data
    given[#given + 1] = m.data == data and "the bytes" or type(m.data)
    local res = { accepted = {}, rejected = {} }
    for _, r in ipairs(m.to) do
      if r == "ok@x" then res.accepted[#res.accepted + 1] = r
      elseif r == "temp@x" then res.rejected[#res.rejected + 1] = { rcpt = r, smtp = 451, text = "later", class = "transient" }
      else res.rejected[#res.rejected + 1] = { rcpt = r, smtp = 550, text = "unknown", class = "permanent" } end
    end
    return res
  end)
  local d = delivery.new{ spool = sp, cfg = { retry_interval = 30, retry_max = 1800, max_queue_age = 3600 },
                          connect = connect, ready = function() return true end, once = true,
                          emit = function() end, log = { debug = function() end, info = function() end,
                          warn = function() end, error = function() end } }
  local st = d:run()
  t:same({ st.delivered, st.deferred, st.failed }, { 1, 1, 1 }, "one of each")
  t:like(sent[1] or "", "^From: a@example%.com\r\n", "the bytes sent start after the X- lines")
  -- the deliverer loads the data as a handle for the engine (LOAD_OPTS.buffer): a
  -- session of the host's own still gets it as a string
  t:same(given, { "the bytes", "the bytes", "the bytes" }, "a host's session gets m.data as a string")
  t:is(sp:load(ok1), nil, "the delivered one is gone")
  local e = sp:load(tmp)
  t:same(e and e.to, { "temp@x" }, "the deferred one keeps only its pending recipient")
  t:is(e and e.attempts, 1, "one attempt recorded")
  t:ok(e and e.next_attempt >= os.time() + 20, "next attempt ~30 s away (backoff)")
  local f = sp:load(bad)
  t:is(f and f.state, "failed", "the rejected one is in failed/")
  t:like(f and f.reason, "perm@x: 550 unknown", "its sidecar names the recipient and the reply")
  sp:close()
end)

tap.test("flush: the lock holder's count is the deliverer's first scan (pickup/ read once before the first send)", function(t)
  local fdir = dir .. "-flush"
  local sp = assert(spool.open(fdir))
  for i = 1, 3 do assert(sp:enqueue(msg(10 + i), { from = "a@example.com", to = { "ok@x" } })) end
  -- every scan of any spool handle, counted (a scan reads the whole of pickup/)
  local index = getmetatable(sp).__index
  local scan, scans, at_first_send = index.scan, 0, nil
  index.scan = function(...) scans = scans + 1; return scan(...) end
  local order = {}
  local connect = scripted(function(m)
    at_first_send = at_first_send or scans
    order[#order + 1] = m.data:match("Subject: (m%d+)")
    return { accepted = { "ok@x" }, rejected = {} }
  end)
  local ok, res = pcall(require("mailhook.flush").run, { spool = sp, spool_dir = fdir,
    cfg = { retry_interval = 30, retry_max = 1800, max_queue_age = 3600, connections = 1 },
    connect = connect, ready = function() return true end, emit = function() end })
  index.scan = scan
  t:ok(ok, "flush ran: " .. tostring(ok or res))
  res = ok and res or {}
  t:same({ res.delivered, res.left, res.total }, { 3, 0, 3 }, "all three delivered, none left, total counted")
  t:is(at_first_send, 1, "one scan before the first send: the count's (it was two)")
  t:same(order, { "m11", "m12", "m13" }, "oldest first")
  sp:close()
  os.execute("rm -rf '" .. fdir .. "'")
end)

tap.test("a rescan's limit leaves out the messages in flight: each batch lists that many new ones", function(t)
  local fdir = dir .. "-batch"
  local sp = assert(spool.open(fdir))
  assert(sp:lock())
  for i = 1, 7 do assert(sp:enqueue(msg(20 + i), { from = "a@example.com", to = { "ok@x" } })) end
  local sent, d = {}, nil
  local connect = scripted(function(m)
    sent[#sent + 1] = m.data:match("Subject: (m%d+)")
    return { accepted = { "ok@x" }, rejected = {} }
  end)
  local batch = delivery.BATCH
  delivery.BATCH = 3
  local index = getmetatable(sp).__index
  local scan, short = index.scan, {}
  index.scan = function(self, limit)
    local ids, total = scan(self, limit)
    if limit and d and type(ids) == "table" then
      local new, unsent = 0, 7 - #sent
      for _, id in ipairs(ids) do if not d.claimed[id] then new = new + 1 end end
      -- (unsent: not yet settled, the ones in flight included)
      local left = 0
      for _ in pairs(d.claimed) do left = left + 1 end
      if new < math.min(delivery.BATCH, unsent - left) then short[#short + 1] = new .. " of " .. #ids end
    end
    return ids, total
  end
  d = delivery.new{ spool = sp, cfg = { retry_interval = 30, retry_max = 1800, max_queue_age = 3600 },
                    connect = connect, ready = function() return true end, once = true,
                    emit = function() end, log = { debug = function() end, info = function() end,
                    warn = function() end, error = function() end } }
  local ok, st = pcall(d.run, d)
  index.scan, delivery.BATCH = scan, batch
  t:ok(ok, "the pass ran: " .. tostring(ok or st))
  t:is(ok and st.delivered, 7, "all seven delivered")
  t:same(sent, { "m21", "m22", "m23", "m24", "m25", "m26", "m27" }, "oldest first")
  t:same(short, {}, "no rescan came back short of new messages by the ones in flight")
  sp:close()
  os.execute("rm -rf '" .. fdir .. "'")
end)

-- The deliverer loads through the spool's loader (sp:loader: its options
-- read once, a leaner entry); a spool without one (a test's, a wrapper) is
-- asked sp:load(id, LOAD_OPTS).  The same queue through either: the same
-- sends, outcomes, sidecars and `failed` event.  A usual message, one with a
-- sidecar (an earlier attempt: done, refused, attempts), one the server refuses.
tap.test("the spool's loader and sp:load: the same pass", function(t)
  local function pass(name, wrap, max_age)
    local fdir = dir .. "-" .. name
    local sp = assert(spool.open(fdir))
    assert(sp:lock())
    local ids = {
      assert(sp:enqueue(msg(31), { from = "a@example.com", to = { "ok@x" } })),
      assert(sp:enqueue(msg(32), { from = "a@example.com", to = { "ok@x", "done@x", "gone@x" } })),
      assert(sp:enqueue(msg(33), { from = "a@example.com", to = { "perm@x" } })),
    }
    assert(sp:defer(ids[2], { reply = "451 later", next_attempt = 0, done = { "done@x" }, attempts = 3,
                              refused = { { rcpt = "gone@x", reply = "550 gone" } } }))
    local used = wrap and setmetatable({ loader = false }, { __index = function(_, k)
      local v = sp[k]
      if type(v) ~= "function" then return v end
      return function(_, ...) return v(sp, ...) end
    end }) or sp
    local loads, sent, events = 0, {}, {}
    if wrap then
      local load = used.load
      used.load = function(...) loads = loads + 1; return load(...) end
    end
    local connect = scripted(function(m)
      -- (a loader's entry names no path: the deliverer gives a host's session one, the file's)
      sent[#sent + 1] = { id = m.id, from = m.from, to = m.to, data = m.data, offset = m.offset,
                          path = m.path == fdir .. "/pickup/" .. m.id .. ".eml" }
      local res = { accepted = {}, rejected = {} }
      for _, r in ipairs(m.to) do
        if r == "ok@x" then res.accepted[#res.accepted + 1] = r
        else res.rejected[#res.rejected + 1] = { rcpt = r, smtp = 550, text = "unknown", class = "permanent" } end
      end
      return res
    end)
    local d = delivery.new{ spool = used, cfg = { retry_interval = 30, retry_max = 1800, max_queue_age = max_age or 3600 },
                            connect = connect, ready = function() return true end, once = true,
                            emit = function(ev, f)
                              events[#events + 1] = { ev, f.id, f.attempts, f.to, f.delivered, f.subject }
                            end,
                            log = { debug = function() end, info = function() end,
                                    warn = function() end, error = function() end } }
    local st = d:run()
    local after = {}
    for i, id in ipairs(ids) do
      local e = sp:load(id)
      after[i] = e and { state = e.state, attempts = e.attempts, to = e.to, done = e.done, refused = e.refused,
                         -- (the two passes may straddle a second: its time left out)
                         reason = e.reason and e.reason:gsub("%d+%-%d+%-%d+ %d+:%d+:%d+", "T") } or "gone"
      -- (ids differ between the two spools: named by their place)
      for _, x in ipairs(sent) do if x.id == id then x.id = i end end
      for _, x in ipairs(events) do if x[2] == id then x[2] = i end end
    end
    sp:close()
    os.execute("rm -rf '" .. fdir .. "'")
    return { stats = { st.delivered, st.deferred, st.failed, st.partial }, sent = sent, after = after,
             events = events }, loads, d.load_fn
  end
  local a, _, fa = pass("loader")
  local b, loads, fb = pass("load", true)
  t:ok(type(fa) == "function" and fa ~= nil, "the real spool: its loader")
  t:is(loads, 3, "the wrapper without one: sp:load, once per message")
  t:ok(fb ~= fa, "(two loaders)")
  t:same(a, b, "the same sends, outcomes, sidecars and failed events")
  t:same(a.stats, { 1, 0, 2, 1 }, "one delivered; the partly delivered one and the refused one failed")
  t:is(a.events[1] and a.events[1][3], 4, "the failed event of the one with a sidecar: its 4th attempt")
  t:is(a.events[2] and a.events[2][3], 1, "the refused one's: its first")
  t:same({ a.events[1] and a.events[1][6], a.events[2] and a.events[2][6] }, { "m32", "m33" },
         "the failed events' subjects, read from the file (a loader's entry names no path)")
  t:ok(a.sent[1] and a.sent[1].path, "a host's session: the entry's path, the file's")
  -- expired (max_queue_age a microsecond): failed unsent, the event's attempts read from the entry
  a = pass("loader-expired", false, 1e-6)
  b = pass("load-expired", true, 1e-6)
  t:same(a, b, "expired: the same outcomes and failed events")
  t:same({ #a.sent, a.stats[3] }, { 0, 3 }, "expired: none sent, three failed")
  t:same({ a.events[1] and a.events[1][6], a.events[3] and a.events[3][6] }, { "m31", "m33" },
         "expired: the failed events' subjects")
  local att = {}
  for i, ev in ipairs(a.events) do att[i] = ev[3] end
  t:same(att, { 0, 3, 0 }, "the failed events' attempts: 0 for one never tried (a loader's entry has none)")
end)

-- flush while a service holds the lock: it asks the service (USR1) and counts
-- pickup/ until it is empty or the service says it is done.  A count that cannot
-- list pickup/ (an I/O error) read as 0: "delivered, 0 left", a success, while
-- the message was still queued; the first count failing read as an empty queue.
-- Here the "service" is this process (its USR1 taken by a handler), the spool a
-- wrapper whose lock is held elsewhere and whose scans fail from the Nth on.
tap.test("flush via the service: a count that cannot list pickup/ is no empty queue", function(t)
  local core = require "mailhook.core"
  local fdir = dir .. "-svcflush"
  local real = assert(spool.open(fdir))
  assert(real:enqueue(msg(41), { from = "a@example.com", to = { "ok@x" } }))
  local me = tonumber(assert(io.open("/proc/self/stat")):read("a"):match("^(%d+)"))
  local usr1 = 0
  local h = core.signal.on("USR1", function() usr1 = usr1 + 1 end)
  local function pass(fail_from)
    local scans = 0
    local sp = setmetatable({
      lock = function() return nil, "locked by the service", { code = "ELOCKED", pid = me } end,
      scan = function(_, ...)
        scans = scans + 1
        if scans >= fail_from then return nil, "spool " .. fdir .. ": reading pickup/: Input/output error" end
        return real:scan(...)
      end,
    }, { __index = function(_, k) local v = real[k]
      return type(v) == "function" and function(_, ...) return v(real, ...) end or v end })
    local ok, res = pcall(require("mailhook.flush").run, { spool = sp, spool_dir = fdir, timeout = 5,
      cfg = { retry_interval = 30, retry_max = 1800, max_queue_age = 3600 } })
    t:ok(ok, "flush ran: " .. tostring(ok or res))
    return ok and res or {}, scans
  end
  local res = pass(1)
  t:ok(res.spool_error and tostring(res.error):find("cannot list the queue: .*Input/output error"),
       "its first count fails: said as an error (" .. tostring(res.error) .. ")")
  t:is(res.delivered, 0, "and nothing counted delivered")
  res = pass(2)
  t:ok(usr1 >= 1, "the service was asked (USR1)")
  t:ok(res.listing_error and tostring(res.error):find("cannot list the queue: .*Input/output error"),
       "a count while waiting fails: a listing error, said (" .. tostring(res.error) .. ")")
  t:is(res.left, 1, "the message counted as still there, not 0 left")
  t:is(res.delivered, 0, "and not delivered")
  local s, err = require("mailhook.flush").queue { spool = setmetatable({
    lock = function() return nil, "locked", { code = "ELOCKED", pid = me } end,
    scan = function() return nil, "reading pickup/: Input/output error" end }, { __index = real }),
    spool_dir = fdir, timeout = 5, cfg = { retry_interval = 30 } }
  t:ok(s == nil and tostring(err):find("cannot list the queue", 1, true), "mh.queue.flush: nil, the error")
  h:stop()
  real:close()
  os.execute("rm -rf '" .. fdir .. "'")
end)

local status = tap.done()
rm_rf()
return status
