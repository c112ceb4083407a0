-- The spool from Lua (core.spool through mailhook.spool): enqueue with and
-- without an envelope, errors, state, fail/retry/remove, listing, lock,
-- group commit, watch, and that disk work never stalls the loop.
local tap = require "tap"
local mh = require "mailhook"
local spool = require "mailhook.spool"

local dir = io.popen("mktemp -d ${TMPDIR:-/tmp}/mh-lua-spool.XXXXXX"):read("l")

local slurp = tap.slurp

local function count(sub)
  local n = 0
  for name in io.popen("ls -A '" .. dir .. "/" .. sub .. "'"):lines() do
    if name ~= "" then n = n + 1 end
  end
  return n
end

local sp = assert(spool.open(dir))
local me = require("mailhook.core").maildrop.whoami().uid

-- Who submitted a message (issue 12.5): the X-Submitter-Uid envelope line.
tap.test("the submitter's uid: given, kept, never taken from the message", function(t)
  local id = assert(sp:enqueue("Subject: u\r\n\r\nb\r\n", { from = "a@b.c", to = { "x@y.z" }, uid = 4242 }))
  t:is(sp:load(id).uid, 4242, "envelope.uid (the maildrop adopter's proven caller) is recorded")
  t:like(slurp(dir .. "/pickup/" .. id .. ".eml"), "^X%-Sender: a@b%.c\r\nX%-Receiver: x@y%.z\r\nX%-Spool%-Size: %d+\r\nX%-Submitter%-Uid: 4242\r\nSubject",
         "as the envelope's last line")
  -- bytes without an envelope that carry envelope lookalikes: the uid is ours
  local forged = "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Submitter-Uid: 4243\r\nX-Receiver: v@evil.example\r\n" ..
                 "Subject: f\r\n\r\nX-Submitter-Uid: 4244\r\n"
  id = assert(sp:enqueue(forged))
  local e = sp:load(id)
  t:is(e.uid, me, "a lookalike in the bytes is not the uid: this process's is")
  t:same(e.all, { "x@y.z" }, "nor adds a recipient")
  local p = spool.parse(forged)
  t:is(p.uid, 4243, "parse: the envelope's own line")
  t:same(p.to, { "x@y.z" }, "parse: the envelope ends at it")
  -- a message (mh.enqueue-like) whose first header is a lookalike
  id = assert(sp:enqueue("X-Submitter-Uid: 0\r\nX-Receiver: v@evil.example\r\nSubject: h\r\n\r\nb\r\n",
                         { from = "a@b.c", to = { "x@y.z" }, uid = 4245 }))
  e = sp:load(id)
  t:is(e.uid, 4245, "a header of the message is not the envelope's uid")
  t:same(e.all, { "x@y.z" }, "nor its X-Receiver a recipient")
  -- a file written before the line existed
  local f = assert(io.open(dir .. "/pickup/00000000000000ab.eml", "wb"))
  f:write("X-Sender: a@b.c\r\nX-Receiver: old@y.z\r\nSubject: old\r\n\r\nx\r\n")
  f:close()
  e = assert(sp:load("00000000000000ab"))
  t:is(e.uid, nil, "an old file loads, its uid unknown")
  t:same(e.to, { "old@y.z" }, "its envelope as before")
  assert(sp:remove("00000000000000ab"))
  for _, bad in ipairs { -1, 4294967295, 1.5, "x" } do
    local ok, err = pcall(sp.enqueue, sp, "S: x\r\n\r\n", { from = "a@b.c", to = { "x@y.z" }, uid = bad })
    t:ok(not ok and tostring(err):find("envelope.uid", 1, true), "uid " .. tostring(bad) .. ": refused")
  end
end)

tap.test("enqueue with an envelope writes X- lines and the bytes as given", function(t)
  local id, err = sp:enqueue("Subject: one\r\n\r\nbody\r\n", { from = "a@b.c", to = { "x@y.z" } })
  t:ok(spool.is_id(id), "an id: " .. tostring(id or err))
  t:is(slurp(dir .. "/pickup/" .. id .. ".eml"),
       "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Spool-Size: 000000000022\r\nX-Submitter-Uid: " .. me ..
       "\r\nSubject: one\r\n\r\nbody\r\n",
       "file content")
  local e = sp:load(id)
  t:is(e.offset, #("X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Spool-Size: 000000000022\r\nX-Submitter-Uid: " .. me .. "\r\n"),
       "offset")
  t:is(e.uid, me, "uid: this process's")
  t:same(e.to, { "x@y.z" }, "pending recipients")
  t:is(e.from, "a@b.c", "sender")
  t:is(e.attempts, 0, "no attempt yet")
end)

tap.test("enqueue without an envelope parses the headers and strips Bcc", function(t)
  local id = assert(sp:enqueue("From: Ann <ann@ex.org>\r\nTo: Bob <bob@ex.org>\r\n" ..
                               "Bcc: boss@ex.org\r\nSubject: s\r\n\r\nhello\r\n"))
  local e = sp:load(id)
  t:same(e.to, { "bob@ex.org", "boss@ex.org" }, "Bcc recipient is in the envelope")
  t:is(e.from, "ann@ex.org", "sender from From")
  local sent = slurp(e.path):sub(e.offset + 1)
  t:ok(not sent:find("Bcc") and not sent:find("boss@"), "but not in the copy that is sent")
end)

tap.test("bad input is an error that queues nothing", function(t)
  local before = count("pickup")
  local id, err, info = sp:enqueue("x\r\n", { from = "a@b.c", to = { "x@y.z\r\nDATA" } })
  t:is(id, nil, "CR/LF in a recipient")
  t:like(err, "recipient", "names the recipient")
  t:is(info.class, "permanent", "permanent")
  id, err = sp:enqueue("x\r\n", { from = "not an address", to = { "x@y.z" } })
  t:like(err, "sender 'not an address'", "bad sender named")
  id, err = sp:enqueue("Subject: no rcpt\r\n\r\n")
  t:like(err, "no recipients", "no recipients without an envelope")
  id, err = sp:enqueue("garbage line\r\n\r\n")
  t:like(err, "not a header", "malformed header block")
  t:is(count("pickup"), before, "nothing was written")
  t:is(count("tmp"), 0, "nothing left in tmp/")
  t:ok(not pcall(sp.enqueue, sp, 42), "a wrong type raises")
end)

tap.test("defer keeps state across a reopen; fail, retry, remove", function(t)
  local id = assert(sp:enqueue("Subject: st\r\n\r\n", { from = "", to = { "a@x.y", "b@x.y" } }))
  t:ok(sp:defer(id, { reply = "451 4.3.0 later", next_attempt = 2000000000, done = { "a@x.y" } }), "defer")
  local sp2 = assert(spool.open(dir))
  local e = sp2:load(id)
  t:same({ e.attempts, e.next_attempt, e.last_reply }, { 1, 2000000000, "451 4.3.0 later" }, "state reloaded")
  t:same(e.to, { "b@x.y" }, "accepted recipient no longer pending")
  t:same(e.all, { "a@x.y", "b@x.y" }, "whole envelope kept")
  assert(sp2:defer(id, { reply = "452 full", attempts = 5 }))
  t:is(sp2:load(id).attempts, 5, "attempts can be set")
  assert(sp2:defer(id, { reply = "452 full" }))
  t:is(sp2:load(id).attempts, 6, "else counted up")
  assert(sp2:defer(id, { reply = "451 4.3.0 later", next_attempt = 2000000000, attempts = 1 }))
  sp2:close()
  t:ok(sp:fail(id, { reason = "550 5.1.1 no such user", reply = "550 5.1.1 no such user" }), "fail")
  e = sp:load(id)
  t:is(e.state, "failed", "in failed/")
  t:is(e.reason, "550 5.1.1 no such user", "with its reason")
  t:ok(sp:retry(id), "retry")
  e = sp:load(id)
  t:same({ e.state, e.next_attempt, e.attempts }, { "pickup", 0, 1 }, "back in pickup/, due now")
  t:ok(sp:remove(id), "remove")
  local r, err, info = sp:load(id)
  t:is(info and info.code, "ENOTFOUND", "gone: " .. tostring(err))
  r, err = sp:delivered(id)
  t:like(err, "no such message", "delivered of a missing id fails")
  t:ok(not pcall(sp.load, sp, "../etc/passwd"), "an id with a slash raises")
end)

tap.test("list streams every message of both folders", function(t)
  local ids = assert(sp:enqueue_many({
    { "Subject: m1\r\n\r\n", { to = { "m@x.y" } } },
    { "Subject: m2\r\n\r\n", { to = { "m@x.y" } } },
    { "Subject: m3\r\n\r\n", { to = { "m@x.y" } } },
  }))
  t:is(#ids, 3, "a batch returns its ids")
  t:ok(ids[1] < ids[2] and ids[2] < ids[3], "in order")
  assert(sp:fail(ids[3], { reason = "test" }))
  local seen, failed = {}, 0
  for e in sp:list() do
    seen[e.id] = true
    if e.state == "failed" then failed = failed + 1 end
  end
  t:ok(seen[ids[1]] and seen[ids[2]] and seen[ids[3]], "all listed")
  t:is(failed, 1, "the failed one flagged")
  local n = 0
  for _ in sp:list("failed") do n = n + 1 end
  t:is(n, 1, "list('failed')")
  local many = {}
  for i = 1, 150 do many[i] = { "Subject: bulk\r\n\r\n", { to = { "bulk@x.y" } } } end
  assert(sp:enqueue_many(many))
  local total, all = 0, 0
  for e in sp:list("pickup") do total = total + 1 end
  for name in io.popen("ls '" .. dir .. "/pickup'"):lines() do
    if name:match("%.eml$") then all = all + 1 end
  end
  t:is(total, all, "more than one batch (64) listed: every file of pickup/")
end)

tap.test("the lock: one deliverer per spool", function(t)
  local a, b = assert(spool.open(dir)), assert(spool.open(dir))
  t:ok(a:lock(), "first lock")
  local ok, err, info = b:lock()
  t:is(ok, nil, "second refused")
  t:like(err, "locked by pid %d+", "names the holder")
  t:is(info and info.code, "ELOCKED", "the code says why")
  local self_pid = math.tointeger(tonumber(io.open("/proc/self/stat"):read("l"):match("^%d+")))
  t:is(info and info.pid, self_pid, "and the holder's pid is a field (flush signals it): this process")
  t:ok(b:enqueue("Subject: x\r\n\r\n", { to = { "q@x.y" } }), "enqueuing never waits for the lock")
  a:close()
  t:ok(b:lock(), "free again after close")
  b:close()
end)

tap.test("scan adopts a drop-in and returns ids oldest first", function(t)
  local f = assert(io.open(dir .. "/pickup/from-app.eml", "wb"))
  f:write("From: app@ex.org\r\nTo: ops@ex.org\r\nSubject: dropped\r\n\r\nhi\r\n")
  f:close()
  local locked = assert(spool.open(dir))
  assert(locked:lock())
  local ids = assert(locked:scan())
  local sorted = true
  for i = 2, #ids do if ids[i - 1] >= ids[i] then sorted = false end end
  t:ok(sorted, "sorted")
  local two = assert(locked:scan(2))
  t:same(two, { ids[1], ids[2] }, "scan(2): the two oldest")
  local e = locked:load(ids[#ids])
  t:same(e.to, { "ops@ex.org" }, "the drop-in is the newest")
  t:like(slurp(e.path), "^X%-Sender: app@ex.org\r\nX%-Receiver: ops@ex.org\r\nX%-Spool%-Size: %d+\r\nX%-Submitter%-Uid: " .. me ..
         "\r\nFrom:",
         "in canonical form, its file's owner as submitter")
  t:is(slurp(dir .. "/pickup/from-app.eml"), nil, "original gone")
  locked:close()
end)

tap.test("watch calls fn when a file appears in pickup/", function(t)
  local hits = 0
  local w = sp:watch(function() hits = hits + 1 end)
  mh.sleep(0.02)
  assert(sp:enqueue("Subject: w\r\n\r\n", { to = { "w@x.y" } }))
  local t0 = mh.monotonic()
  while hits == 0 and mh.monotonic() - t0 < 3 do mh.sleep(0.01) end
  t:ok(hits >= 1, "called after an enqueue")
  w:stop()
end)

tap.test("disk work runs off the loop: the loop runs on while the worker's fsync is held", function(t)
  -- By mechanism, not by the disk's speed (on tmpfs an fsync costs nothing): a child mailhook runs
  -- tests/lib/lua/fsync-gate-child.lua with tests/lib/fsync-gate.c preloaded, which holds each fsync until
  -- a ticker task on the loop has ticked three more times. An fsync made on the loop thread would
  -- stop the ticker with it: the gate would wait 20 s in vain and record a timeout.
  local gate = io.popen("mktemp -d ${TMPDIR:-/tmp}/mh-lua-gate.XXXXXX"):read("l")
  local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
  local asan = os.getenv("ASAN_OPTIONS")
  local out = io.popen(string.format(
    "MH_FSYNC_GATE=%s LD_PRELOAD=%s ASAN_OPTIONS=%s %s %s %s %s 2>&1",
    q(gate), q(os.getenv("BUILD") .. "/tests/fsync-gate.so"),
    q((asan and asan .. ":" or "") .. "verify_asan_link_order=0"),
    q(os.getenv("MAILHOOK")), q(os.getenv("ROOT") .. "/tests/lib/lua/fsync-gate-child.lua"),
    q(gate .. "/spool"), q(gate))):read("a")
  local function size(name)
    local f = io.open(gate .. "/" .. name)
    if not f then return 0 end
    local n = #f:read("a"); f:close(); return n
  end
  t:like(out, "^enqueued 20 ", "the child queued its 20 messages", out)
  t:ok(size("held") > 0, "the gate held the worker's fsyncs (" .. size("held") .. ")")
  t:is(size("timeouts"), 0, "and each was released by the loop's ticker: none timed out")
  os.execute("rm -rf " .. q(gate))
end)

tap.test("the deliverer's path: load with the data, on the calling thread; delivered now", function(t)
  local body = "Subject: d\r\n\r\n" .. string.rep("x", 100) .. "\r\n"
  local id = assert(sp:enqueue(body, { from = "a@b.c", to = { "x@y.z" } }))
  -- outside any task: these do not wait, so they may run anywhere
  local e = coroutine.wrap(function() return sp:load(id, { data = 1024, now = true }) end)()
  t:is(e and e.data, body, "data is the message after the envelope lines")
  t:is(e and e.to[1], "x@y.z", "with the envelope as usual")
  t:is(sp:load(id, { data = 10 }).data, nil, "a message over the limit has no data (sent from its file)")
  t:is(sp:load(id).data, nil, "no data unless asked")
  local e2, err, info = sp:load("0000000000000000", { now = true })
  t:ok(e2 == nil and info and info.code == "ENOTFOUND", "a missing one: nil, " .. tostring(err))
  local ok = coroutine.wrap(function() return sp:delivered(id, { sync = false, now = true }) end)()
  t:is(ok, true, "delivered now")
  t:ok(not io.open(dir .. "/pickup/" .. id .. ".eml"), "its file is gone at once")
  t:ok(sp:sync(), "sync sends the held closes off")
  local _, derr = sp:delivered(id, { sync = false, now = true })
  t:like(derr, "unlink", "twice: an error naming the unlink")
end)

tap.test("delivered's options (read in one pass) mean what they meant", function(t)
  local function one() return assert(sp:enqueue("Subject: o\r\n\r\nx\r\n", { from = "a@b.c", to = { "x@y.z" } })) end
  local function outside(opts)   -- in a plain coroutine: only a call that does not wait succeeds
    local id = one()
    local ok, res, err = pcall(coroutine.wrap(function() return sp:delivered(id, opts) end))
    if not (ok and res) then sp:remove(id) end
    return ok and res or false, tostring(ok and err or res)
  end
  t:is(outside({ sync = false, now = true }), true, "{sync = false, now = true}: on the calling thread")
  local ok, err = outside({ now = true })
  t:ok(not ok and err:find("mailhook task", 1, true), "{now = true} alone waits (sync not false): " .. err)
  ok, err = outside({ sync = true, now = true })
  t:ok(not ok and err:find("mailhook task", 1, true), "{sync = true, now = true} waits: " .. err)
  ok, err = outside({ sync = false })
  t:ok(not ok and err:find("mailhook task", 1, true), "{sync = false} without now waits: " .. err)
  ok, err = outside(setmetatable({}, { __index = { sync = false, now = true } }))
  t:is(ok, true, "options through __index are read as before: " .. err)
  ok, err = outside({ sync = false, now = true, [1] = "x" })
  t:ok(not ok and err:find("unknown option", 1, true), "another key: the checked path's error: " .. err)
end)

tap.test("load{lean = true}: the deliverer's entry, without what it never reads", function(t)
  local id = assert(sp:enqueue("Subject: l\r\n\r\nx\r\n", { from = "a@b.c", to = { "x@y.z", "w@y.z" } }))
  local e = sp:load(id, { lean = true, now = true })
  t:is(e and e.all, nil, "no `all`")
  t:ok(e and e.done == nil and e.refused == nil, "no empty `done` nor `refused`")
  t:is(e and e.state, nil, "no `state` for a message in pickup/")
  t:is(e and e.utf8, false, "utf8: false for ASCII recipients")
  local d = sp:load(id, { lean = true, now = true, data = 4096 })
  t:ok(d and d.data and d.path, "with its data, and its path (the failed event reads the Subject there)")
  t:is(e and table.concat(e.to, " "), "x@y.z w@y.z", "`to`: every recipient")
  local full = sp:load(id)
  t:ok(full.all and full.done and full.refused, "without lean: all, done and refused as ever")
  t:ok(full.all ~= full.to, "`all` and `to` are two tables (a caller may change either)")
  assert(sp:defer(id, { reply = "452 w full", next_attempt = 0, done = { "x@y.z" },
                        refused = { { rcpt = "q@y.z", reply = "550 no" } } }))
  e = sp:load(id, { lean = true, now = true })
  t:is(e and table.concat(e.to, " "), "w@y.z", "after a partial attempt: `to` is what is pending")
  t:is(e and e.done and e.done[1], "x@y.z", "`done` when not empty")
  t:is(e and e.refused and e.refused[1] and e.refused[1].rcpt, "q@y.z", "`refused` when not empty")
  assert(sp:remove(id))
end)

tap.test("load{buffer = true}: the data as a handle on the bytes read, for the engine", function(t)
  local body = "Subject: h\r\n\r\n" .. string.rep("y", 300) .. "\r\n"
  local id = assert(sp:enqueue(body, { from = "a@b.c", to = { "x@y.z" } }))
  local e = sp:load(id, { data = 4096, buffer = true, lean = true, now = true })
  local h = e and e.data
  t:is(type(h), "userdata", "data is a handle")
  t:is(h and #h, #body, "#handle: the data's length")
  t:is(h and h:bytes(), body, "bytes(): the data, as load{data} gives it")
  t:is(h and h:bytes(9), "Subject: ", "bytes(n): its first n bytes")
  t:is(h and h:bytes(0), "", "bytes(0): empty")
  t:is(h and h:bytes(1e6), body, "bytes(n) past the end: the whole")
  t:like(h and tostring(h) or "", "^mailhook%.SpoolData %(" .. #body .. " bytes%)$", "tostring names it and its size")
  t:is(type(sp:load(id, { data = 4096 }).data), "string", "without buffer: a string as before")
  t:is(sp:load(id, { data = 10, buffer = true }).data, nil, "over the limit: no data, handle or not")
  t:is(sp:load(id, { buffer = true }).data, nil, "buffer without data = N: no data")
  local ok, err = pcall(h.bytes, io.stdout)
  t:ok(not ok and tostring(err):find("mailhook.SpoolData", 1, true), "a method on another object raises: " .. tostring(err))
  -- handles dropped unread are freed by the collector (valgrind/ASan builds see a leak)
  for _ = 1, 200 do sp:load(id, { data = 4096, buffer = true, now = true }) end
  collectgarbage(); collectgarbage()
  t:is(h:bytes(), body, "a handle held stays valid meanwhile")
  assert(sp:remove(id))
end)

-- The drain calls load{now} and delivered{now} once per message: a box made
-- per call (a userdata with a __gc, kept one collector cycle more to be
-- finalized) was its only garbage, +3 MB of peak RSS over a 20,000-message
-- backlog (bench/50-delivery.sh).  The spool keeps one box for these calls.
tap.test("delivered{now} on the calling thread makes no garbage per message", function(t)
  local ids = {}
  for i = 1, 200 do ids[i] = assert(sp:enqueue("Subject: " .. i .. "\r\n\r\nx\r\n", { from = "a@b.c", to = { "x@y.z" } })) end
  local OPTS = { sync = false, now = true }
  assert(sp:delivered(table.remove(ids), OPTS))   -- the first call makes what is kept
  collectgarbage(); collectgarbage("stop")
  local k0 = collectgarbage("count")
  for _, id in ipairs(ids) do assert(sp:delivered(id, OPTS)) end
  local grew = (collectgarbage("count") - k0) * 1024
  collectgarbage("restart")
  t:ok(grew < 1024, #ids .. " removals, the collector stopped: the heap grew by " .. grew .. " bytes (under 1 KB)")
  assert(sp:sync())
end)

tap.test("many removals on the calling thread: every file gone, closes batched", function(t)
  local ids = {}
  for i = 1, 100 do ids[i] = assert(sp:enqueue("Subject: " .. i .. "\r\n\r\nx\r\n", { from = "a@b.c", to = { "x@y.z" } })) end
  local before = count("pickup")
  for _, id in ipairs(ids) do assert(sp:delivered(id, { sync = false, now = true })) end
  t:is(count("pickup"), before - 100, "100 files removed")
  -- our open files ($PPID: the shell's parent is this process)
  local function fds()
    local n = 0
    for _ in io.popen("ls /proc/$PPID/fd 2>/dev/null"):lines() do n = n + 1 end
    return n
  end
  t:ok(fds() >= 100 % 64, "the last partial batch of closes waits (" .. fds() .. " fds open)")
  t:ok(sp:sync(), "and synced")
  -- the held files are closed by the pool: wait for /proc to show few open fds
  local t0 = mh.monotonic()
  while fds() > 40 and mh.monotonic() - t0 < 5 do mh.sleep(0.05) end
  t:ok(fds() <= 40, "the removed files are closed (" .. fds() .. " fds open)")
end)

tap.test("a message object is enqueued with its own envelope by the C binding itself", function(t)
  -- core.spool directly: no Lua layer between (mailhook.spool once patched the
  -- C metatable to call msg:envelope(); the binding reads it from msg.c now)
  local core = require "mailhook.core"
  local raw = assert(core.spool.open(dir))
  local m = assert(require("mailhook.message")({ from = "ann@ex.org", to = { "bob@ex.org" },
    cc = { "cy@ex.org", "bob@ex.org" }, bcc = { "dee@ex.org" }, subject = "obj", text = "hi\n" }))
  local id, err = raw:enqueue(m)
  t:ok(spool.is_id(id), "queued: " .. tostring(id or err))
  local e = id and sp:load(id)
  t:same(e and e.to, { "bob@ex.org", "cy@ex.org", "dee@ex.org" }, "To, Cc, Bcc, no duplicate")
  t:is(e and e.from, "ann@ex.org", "the sender")
  t:ok(e and not slurp(e.path):sub(e.offset + 1):find("dee@ex.org", 1, true), "no Bcc in the bytes")
  if id then sp:remove(id) end
  m:close()
  local ok2, err2 = pcall(raw.enqueue, raw, m)
  t:ok(not ok2, "a closed message is refused")
  t:like(tostring(err2), "message is closed", "and says so")
  local ok3, err3 = pcall(raw.enqueue, raw, {})
  t:ok(not ok3 and tostring(err3):find("must be a string", 1, true), "a table is no message: " .. tostring(err3))
  raw:close()
end)

tap.test("is_id is the core's rule: 16 lowercase hex digits", function(t)
  t:ok(spool.is_id("0123456789abcdef"), "lowercase hex")
  t:ok(not spool.is_id("0123456789ABCDEF"), "uppercase is no spool id (the files are lowercase)")
  t:ok(not spool.is_id("0123456789abcde"), "15 digits")
  t:ok(not spool.is_id("0123456789abcdef0"), "17 digits")
  t:ok(not spool.is_id("0123456789abcde\0"), "a NUL inside")
  t:ok(not spool.is_id(12345), "a number")
end)

tap.test("misuse outside a task is a clear error", function(t)
  local ok, err = pcall(coroutine.wrap(function() return sp:scan() end))
  t:ok(not ok, "raises")
  t:like(err, "spool:scan waits", "says why")
end)

-- An envelope address with CR, LF or ESC: refused, the error quoting it with
-- those bytes escaped (the raw CRLF was repeated in the message: a forged line).
tap.test("a bad envelope address is quoted escaped", function(t)
  for _, c in ipairs {
    { { from = "a@b.c\r\nX-Forged: 1", to = { "x@y.z" } }, "sender 'a@b%.c\\x0D\\x0AX%-Forged: 1'" },
    { { from = "a@b.c", to = { "x@y.z\r\nRCPT TO:<evil@x.y>" } }, "recipient 'x@y%.z\\x0D\\x0ARCPT TO:<evil@x%.y>'" },
    { { from = "a@b.c", to = { "x\27[2J@y.z" } }, "recipient 'x\\x1B%[2J@y%.z'" },
  } do
    local id, err, info = sp:enqueue("Subject: e\r\n\r\nb\r\n", c[1])
    t:is(id, nil, "refused")
    t:is(info and info.code, "EBADADDR", "EBADADDR")
    t:ok(type(err) == "string" and not err:find("%c"), "no control byte in the message: " .. tostring(err))
    t:like(err, c[2], "quoted with \\xNN")
  end
end)

-- A message object closed (or collected at lua_close) while its enqueue is on
-- the thread pool: the job holds it, writes it whole, and frees it.  Its
-- close freed it under the writer (2 MB: a munmap'ed buffer, so a crash).
tap.test("a message closed while its enqueue runs is still written whole", function(t)
  local core = require "mailhook.core"
  local raw = assert(core.spool.open(dir))
  local m = assert(core.msg.build { from = "a@b.c", to = "x@y.z", subject = "closed meanwhile",
                                    text = string.rep("y", 2000000) })
  local enq = mh.spawn(function() return raw:enqueue(m) end)
  local closer = mh.spawn(function() m:close() end)   -- runs while the enqueue waits
  local _, id = enq:wait()   -- true, its results
  closer:wait()
  t:ok(id, "the enqueue returned an id")
  local text = id and slurp(dir .. "/pickup/" .. id .. ".eml") or ""
  t:like(text, "Subject: closed meanwhile", "the message is in pickup/")
  t:ok(#text > 2000000, "whole (" .. #text .. " bytes)")
  t:is(tostring(m), "mailhook.Message (closed)", "and the object is closed")
  local ok, err = pcall(raw.enqueue, raw, m)
  t:ok(not ok and tostring(err):find("message is closed", 1, true), "a later enqueue of it: message is closed")
  raw:close()
end)

-- A kill between an adoption's copy and the removal of its original leaves
-- maildrop/ID.adopted beside the queued ID: `queue` and `flush` (no lock)
-- counted that message twice until the next adopter removed the original.
tap.test("an adopted original left beside its queued copy is not counted again", function(t)
  local d = io.popen("mktemp -d ${TMPDIR:-/tmp}/mh-lua-aside.XXXXXX"):read("l")
  local s = assert(spool.open(d))
  local id = assert(s:enqueue("Subject: a\r\n\r\nb\r\n", { from = "a@b.c", to = { "x@y.z" } }))
  os.execute("mkdir -m 700 '" .. d .. "/maildrop'")
  local function drop(name)
    local f = assert(io.open(d .. "/maildrop/" .. name, "wb"))
    f:write("From: a@b.c\r\nTo: x@y.z\r\n\r\nhi\r\n")
    f:close()
  end
  drop(id .. ".adopted")
  local _, total = assert(s:scan())
  t:is(total, 1, "the original of a queued copy: the copy counts, once")
  drop("0000000000000001.adopted")   -- its copy was never made: still waits
  _, total = assert(s:scan())
  t:is(total, 2, "an original whose copy is not queued counts")
  s:close()
  os.execute("rm -rf '" .. d .. "'")
end)

-- maildrop.stuck(): a file the adoption had to leave in maildrop/ is listed
-- until it is gone.  The list was pruned only by a scan that found files:
-- once the last stuck one was removed (`queue rm`), maildrop/ was empty, the
-- adoption returned early, and `mailhook status` named the removed file as
-- one the service cannot adopt for as long as nothing else was dropped.
tap.test("a stuck maildrop file removed, maildrop/ empty: stuck() forgets it", function(t)
  local core = require "mailhook.core"
  local maildrop = require "mailhook.maildrop"
  local settings = require "mailhook.settings"
  local d = io.popen("mktemp -d ${TMPDIR:-/tmp}/mh-lua-stuck.XXXXXX"):read("l")
  local s = assert(spool.open(d))
  os.execute("mkdir -m 700 '" .. d .. "/maildrop'")
  local name = "0000000000000001.00000001"
  local f = assert(io.open(d .. "/maildrop/" .. name, "wb")); f:write("x"); f:close()
  local open, load_intake = core.maildrop.open, settings.load_intake
  core.maildrop.open = function(_, n)
    return nil, "maildrop/" .. n .. ": its owner shows as uid 65534 (nobody)", { code = "EUNSAFE" }
  end
  settings.load_intake = function() return {} end
  local ok, err = pcall(function()
    maildrop.adopt(s, d)
    local l, total = maildrop.stuck()
    t:is(total, 1, "the file left in maildrop/ is listed")
    t:is(l[1] and l[1].name, name, "  by its name")
    os.remove(d .. "/maildrop/" .. name)   -- `mailhook queue rm NAME`
    maildrop.adopt(s, d)
    l, total = maildrop.stuck()
    t:is(total, 0, "removed, maildrop/ empty: no longer listed")
  end)
  core.maildrop.open, settings.load_intake = open, load_intake
  assert(ok, err)
  s:close()
  os.execute("rm -rf '" .. d .. "'")
end)

-- Spool:adopt() asked for while an adoption runs (two workers in an outage:
-- one adopting, the other kicked by a drop) returned at once, and the running
-- one may have looked at maildrop/ before the drop: it waited out the outage's
-- retry_interval.  The running adoption now goes again once.
tap.test("an adoption asked for while one runs makes it go again", function(t)
  local maildrop = require "mailhook.maildrop"
  local d = io.popen("mktemp -d ${TMPDIR:-/tmp}/mh-lua-again.XXXXXX"):read("l")
  local s = assert(spool.open(d))
  assert(s:lock())
  local adopt, runs, inside = maildrop.adopt, 0, false
  maildrop.adopt = function() runs = runs + 1; inside = true; mh.sleep(0.1); inside = false; return 0 end
  local ok, err = pcall(function()
    local first = mh.spawn(function() s:adopt() end)
    while not inside do mh.sleep(0.005) end
    s:adopt()   -- returns at once (the first one runs)
    first:wait()
    t:is(runs, 2, "the running adoption went again once")
    s:adopt()
    t:is(runs, 3, "  and an adoption alone runs once")
  end)
  maildrop.adopt = adopt
  assert(ok, err)
  s:close()
  os.execute("rm -rf '" .. d .. "'")
end)

-- Spool:loader(opts): load(id) is sp:load(id, opts) with the options read once
-- (the deliverer's per-message load, issue 16).  Its lean entry leaves out
-- `id` and a 0 `attempts` / `next_attempt`; everything else is the same as
-- sp:load's, for the usual message (no sidecar) and for one with a sidecar.
local function plain(e)   -- an entry with its data handle as its bytes, comparable
  local c = {}
  for k, v in pairs(e) do c[k] = v end
  if type(c.data) == "userdata" then c.data = { len = #c.data, bytes = c.data:bytes() } end
  return c
end

tap.test("loader(opts): load(id) is load(id, opts), options read once", function(t)
  local OPTS = { data = 16384, keep = true, now = true, lean = true, buffer = true }
  local usual = assert(sp:enqueue("Subject: u\r\n\r\nusual\r\n", { from = "a@b.c", to = { "x@y.z" } }))
  local other = assert(sp:enqueue("Subject: o\r\n\r\nother\r\n", { from = "a@b.c", to = { "x@y.z", "w@y.z" } }))
  assert(sp:defer(other, { reply = "451 later", next_attempt = 12345, done = { "x@y.z" }, attempts = 2,
                           refused = { { rcpt = "q@y.z", reply = "550 no" } } }))
  local load = sp:loader(OPTS)
  t:is(type(load), "function", "a function")
  local e, want = load(usual), sp:load(usual, OPTS)
  t:ok(e and e.id == nil and e.attempts == nil and e.next_attempt == nil and e.path == nil,
       "the usual message: no id, no attempts, no next_attempt (0), no path (its data is there)")
  t:is(want and want.attempts, 0, "(sp:load gives attempts = 0)")
  t:is(sp:pickup_path(usual), want and want.path, "pickup_path(id): the path sp:load gives")
  e.id, e.attempts, e.next_attempt, e.path = usual, 0, 0, sp:pickup_path(usual)
  t:same(plain(e), plain(want), "with those: the entry sp:load gives, data bytes and all")
  e, want = load(other), sp:load(other, OPTS)
  t:ok(e and e.id == nil and e.attempts == 2 and e.next_attempt == 12345, "with a sidecar: attempts, next_attempt")
  e.id, e.path = other, sp:pickup_path(other)
  t:same(plain(e), plain(want), "and the rest as sp:load gives it (to, done, refused, last_reply)")
  -- over the data limit: sent from the file, its path kept; a failed/ one (state) keeps its own
  local big = assert(sp:enqueue("Subject: b\r\n\r\n" .. string.rep("b", 100) .. "\r\n", { from = "a@b.c", to = { "x@y.z" } }))
  local small = sp:loader({ data = 10, keep = true, now = true, lean = true, buffer = true })
  e, want = small(big), sp:load(big, { data = 10, keep = true, now = true, lean = true, buffer = true })
  t:ok(e and e.data == nil and e.path ~= nil and e.path == want.path, "over the data limit: its path, as sp:load's")
  assert(sp:fail(big, { reason = "test" }))
  e, want = load(big), sp:load(big, OPTS)
  t:ok(e and e.state == "failed" and e.path == want.path and e.path ~= sp:pickup_path(big),
       "in failed/: its own path (not pickup/'s)")
  assert(sp:remove(big))
  local full = sp:loader({ data = 16384 })
  t:same(plain(full(usual)), plain(sp:load(usual, { data = 16384 })), "not lean: every field, id and zeros included")
  t:same(plain(sp:loader()(other)), plain(sp:load(other)), "no options: as sp:load(id)")
  local n1, e1, i1 = load("0000000000000001")
  local n2, e2, i2 = sp:load("0000000000000001", OPTS)
  t:same({ n1, e1, i1 and i1.code }, { n2, e2, i2 and i2.code }, "a missing id: the same failure")
  t:ok(not pcall(load, "a/b") and not pcall(load, nil), "a bad id raises, as sp:load's")
  local opts = { data = 16384, now = true, lean = true, buffer = true }
  local l2 = sp:loader(opts)
  opts.buffer, opts.data = false, 0
  t:is(type(l2(usual).data), "userdata", "the options as they were when the loader was made")
  t:ok(not pcall(sp.loader, sp, { nosuch = true }), "an unknown option raises at once")
  t:ok(not pcall(sp.loader, sp, { data = "x" }), "a bad data = N too")
  local sp2 = assert(spool.open(dir))
  local l3 = sp2:loader(OPTS)
  sp2:close()
  t:ok(not pcall(l3, usual), "after its spool's close: raises, as sp:load does")
  t:is(sp2:pickup_path(usual), nil, "pickup_path after its spool's close: nil")
  t:ok(not pcall(sp.pickup_path, sp, "a/b"), "pickup_path of a bad id raises")
  assert(sp:remove(usual))
  assert(sp:remove(other))
end)

-- Spool:unchanged(id) after a file replaced since its load was loaded again:
-- each load{keep = true} added a slot and the look took the first, the old
-- file's descriptor: "replaced" again at each look, for 15 more loads, the
-- deliverer requeueing it each time (found by review4).
tap.test("unchanged after a replaced file is loaded again", function(t)
  local OPTS = { data = 16384, keep = true, now = true, lean = true, buffer = true }
  local id = assert(sp:enqueue("Subject: a\r\n\r\nb\r\n", { from = "a@b.c", to = { "x@y.z" } }))
  assert(sp:load(id, OPTS))
  t:is(sp:unchanged(id), true, "just loaded: unchanged")
  local p = dir .. "/pickup/" .. id .. ".eml"
  local f = assert(io.open(p, "rb")); local bytes = f:read("a"); f:close()
  f = assert(io.open(p .. ".new", "wb")); f:write((bytes:gsub("Subject: a", "Subject: B"))); f:close()
  assert(os.rename(p .. ".new", p))   -- edited in place: another file under the name
  local same, why = sp:unchanged(id)
  t:is(why, "replaced", "replaced: said so")
  assert(sp:load(id, OPTS))
  same, why = sp:unchanged(id)
  t:is(same, true, "loaded again: the new file, unchanged (got " .. tostring(same) .. ", " .. tostring(why) .. ")")
  assert(sp:remove(id))
end)

local status = tap.done()
sp:close()
os.execute("rm -rf '" .. dir .. "'")
return status
