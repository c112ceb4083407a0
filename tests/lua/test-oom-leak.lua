-- A binding that holds C memory (a buffer the core malloc'd) while it pushes
-- its result must not lose it when the push raises: a rule's memory budget
-- refuses Lua allocations (runtime/l_sched.c budget_alloc), Lua longjmps out
-- of the binding, and a block held in a C local was never freed: outside the
-- budget's accounting, once per call, and a rule could repeat it under pcall.
-- The bindings now hold such blocks in a box on the Lua stack (runtime/l_core.c
-- mh_l_box), closed as the error unwinds.  Each case below returns a ~1 MB
-- block the budget refuses to push, in many rules, sweeping the room left under
-- the limit; the process's resident memory must not grow by the blocks.
local tap = require "tap"
local core = require "mailhook.core"

local MB = 1 << 20

-- Under AddressSanitizer (make asan) a freed block stays resident in its
-- quarantine (256 MB by default), so resident memory says nothing there: the
-- growth checks are skipped, and LeakSanitizer, which runs at this process's
-- exit, reports a block left behind (unreachable once its C local is gone).
local ASAN = (function()
  local f = io.open("/proc/self/maps")
  local maps = f and f:read("a") or ""
  if f then f:close() end
  return maps:find("libasan", 1, true) ~= nil
end)()
local function no_growth(t, grew, limit, what, diag)
  if ASAN then return t:ok(true, what .. " (under ASan: LeakSanitizer checks at exit)") end
  return t:ok(grew < limit, what, diag)
end
local ROUNDS = 40

-- resident bytes of this process (glibc returns a freed block of this size to
-- the system, or reuses it: a leaked one stays resident)
local function rss()
  local f = assert(io.open("/proc/self/statm"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("^%d+ (%d+)")) * 4096
end

-- fn run in rounds rules, each under a limit a little above the heap now:
-- returns how many the budget stopped, and how much resident memory grew
local function sweep(fn, rounds)
  local filler = string.rep("f", MB)   -- the limit must be at least 1 MB
  local stopped, before = 0, nil
  for round = 0, rounds do
    collectgarbage()
    -- time enough for a C call on a megabyte under ASan (several times slower):
    -- the watchdog must not take it for runaway C code (grace: its margin)
    core.budget_limits { memory = core.heap() + 4096 + round * 256, seconds = 60, life = 60, grace = 30 }
    local ok = core.rule_call("oom-leak", fn)
    if not ok then stopped = stopped + 1 end
    core.budget_limits { memory = 128 * MB }
    if round == 0 then before = rss() end   -- after a first round: the allocator warmed up
  end
  collectgarbage()
  filler = nil
  return stopped, rss() - before
end

local function check(t, what, fn, rounds)
  rounds = rounds or ROUNDS
  local stopped, grew = sweep(fn, rounds)
  t:ok(stopped >= rounds // 2, what .. ": the budget refused the push", "stopped " .. stopped .. " of " .. rounds + 1)
  no_growth(t, grew, 8 * MB, what .. ": no block left behind per refused push",
            string.format("resident memory grew by %.1f MB over %d rules", grew / MB, rounds))
end

tap.test("msg.utf8: the converted copy is freed when its push is refused", function(t)
  local latin1 = string.rep("\xe9", MB // 2)   -- not UTF-8: converted (1.5 MB malloc'd, 1 MB pushed)
  check(t, "msg.utf8", function() return core.msg.utf8(latin1) end)
end)

tap.test("fsutil.read: the bytes read are freed when their push is refused", function(t)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(string.rep("r", MB))
  f:close()
  check(t, "fsutil.read", function() return core.fsutil.read(path) end)
  os.remove(path)
end)

tap.test("msg:bytes: the message's bytes are freed when their push is refused", function(t)
  local m = assert(core.msg.build { from = "a@example.com", to = "b@example.com", subject = "big",
                                    text = string.rep("line of text\n", MB // 13) })
  check(t, "msg:bytes", function() return m:bytes() end)
end)
-- many recipients: the envelope's addresses (malloc'd one by one, ~1 MB in
-- all; 20 MB over 30 rules) are pushed as a table of strings, refused part-way
local rcpts = {}
for i = 1, 20000 do rcpts[i] = string.format("user%05d@example.com", i) end
local list = table.concat(rcpts, ", ")

tap.test("spool.addresses: the parsed list is freed when its push is refused", function(t)
  check(t, "spool.addresses", function() return core.spool.addresses(list) end, 30)
end)

tap.test("spool.parse: the parsed envelope is freed when its push is refused", function(t)
  local head = "From: a@example.com\r\nTo: " .. list .. "\r\nSubject: x\r\n\r\nbody\r\n"
  assert(core.spool.parse(head), "parses outside the budget")
  check(t, "spool.parse", function() return core.spool.parse(head) end, 30)
end)

-- The same class with a raise for misuse: maildrop's calls made their op
-- (~850 bytes) first, then read the paths; a path refused (too long) raised
-- past it.  The op is boxed from the start now.
tap.test("maildrop.open: the op is freed when a later argument is refused", function(t)
  local long = string.rep("x", 5000)
  for _ = 1, 100 do pcall(core.maildrop.open, long, "n") end
  collectgarbage()
  local before = rss()
  for _ = 1, 20000 do pcall(core.maildrop.open, long, "n") end
  collectgarbage()
  local ok, err = pcall(core.maildrop.open, long, "n")
  t:ok(not ok and err:find("spool must be at most 4095 bytes", 1, true), "misuse raises: " .. tostring(err))
  local grew = rss() - before
  no_growth(t, grew, 4 * MB, "no op left behind per refused call",
            string.format("resident memory grew by %.1f MB over 20000 calls", grew / MB))
end)

tap.test("rstate.list: the names read are freed when their push is refused", function(t)
  local dir = os.tmpname()
  os.remove(dir)
  assert(core.rstate.mkdir(dir))
  local names = {}
  for i = 1, 2000 do   -- ~0.6 MB of malloc'd names per list
    names[i] = dir .. "/" .. string.format("%04d", i) .. string.rep("n", 236)
    assert(io.open(names[i], "w")):close()
  end
  t:is(#assert(core.rstate.list(dir)), 2000, "lists outside the budget")
  check(t, "rstate.list", function() return core.rstate.list(dir) end, 30)
  for _, f in ipairs(names) do os.remove(f) end
  os.remove(dir)
end)

-- A job's request is the caller's until mh_l_work takes it: rstate.write's
-- copy of the data was lost when the wait was refused (a plain coroutine
-- while the loop runs), as mh_l_work raised before calling its done.
tap.test("rstate.write: the copy of the data is freed when the call cannot wait", function(t)
  local dir = os.tmpname()
  os.remove(dir)
  assert(core.rstate.mkdir(dir))
  local data = string.rep("d", MB)
  local function try()
    return pcall(coroutine.wrap(function() return core.rstate.write(dir .. "/f", data) end))
  end
  try()
  collectgarbage()
  local before = rss()
  for _ = 1, 30 do try() end
  collectgarbage()
  local ok, err = try()
  t:ok(not ok and err:find("plain coroutine", 1, true), "refused: " .. tostring(err))
  local grew = rss() - before
  no_growth(t, grew, 8 * MB, "no copy left behind per refused call",
            string.format("resident memory grew by %.1f MB over 30 calls", grew / MB))
  os.remove(dir)
end)

-- spool:load{now = true} ran its op on the C stack: the entry it loaded (the
-- message itself with data = N, here 1 MB) was left behind when the push of
-- the entry was refused.  The op is boxed now (runtime/l_spool.c op_now_new).
local spool_dir = os.tmpname()
os.remove(spool_dir)
local sp = assert(core.spool.open(spool_dir))
local big_id = assert(sp:enqueue("Subject: big\r\n\r\n" .. string.rep("spool line\r\n", MB // 12),
                                 { from = "a@example.com", to = { "b@example.com" } }))

tap.test("spool:load{now = true}: the loaded entry is freed when its push is refused", function(t)
  local e = assert(sp:load(big_id, { now = true, data = 2 * MB }))
  t:ok(#e.data > MB - 100, "loads the message outside the budget")
  check(t, "spool:load now", function() return sp:load(big_id, { now = true, data = 2 * MB }) end)
end)

-- spool:fail read its reason into a C local before its op, and the reply
-- after: a reply of the wrong type raised past the copy of the reason.
-- Both are read into the op now, which a box owns from its creation.
tap.test("spool:fail: the reason is freed when a later option is refused", function(t)
  local reason = string.rep("r", 64 * 1024)
  local function try() return pcall(sp.fail, sp, big_id, { reason = reason, reply = {} }) end
  for _ = 1, 20 do try() end
  collectgarbage()
  local before = rss()
  for _ = 1, 1000 do try() end
  collectgarbage()
  local ok, err = try()
  t:ok(not ok and tostring(err):find("reply must be a string", 1, true), "misuse raises: " .. tostring(err))
  local grew = rss() - before
  no_growth(t, grew, 16 * MB, "no reason left behind per refused call",
            string.format("resident memory grew by %.1f MB over 1000 calls", grew / MB))
  t:ok(sp:load(big_id), "the message is still queued")
end)

-- smtp submit_file opened its file into a C local, then read the recipients:
-- a list whose length raised (a __len, or a list refused under a rule's
-- budget) left the descriptor open, one per call, towards the fd limit.
local function nfds()
  local st = assert(io.open("/proc/self/stat"))   -- this process's pid (ls's own /proc/self is ls's)
  local pid = st:read("n")
  st:close()
  local p = assert(io.popen("ls /proc/" .. pid .. "/fd"))
  local n = 0
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end

tap.test("smtp submit_file: the file is closed when the recipients raise", function(t)
  local path = os.tmpname()
  assert(io.open(path, "w")):write("Subject: x\r\n\r\nbody\r\n"):close()
  local c = core.smtp.new { host = "127.0.0.1" }
  local rcpts = setmetatable({}, { __len = function() error("no length") end })
  local function try() return pcall(c.submit_file, c, "a@example.com", rcpts, path) end
  try()
  local before = nfds()
  for _ = 1, 200 do try() end
  local ok, err = try()
  t:ok(not ok and tostring(err):find("no length", 1, true), "the recipients' length raises: " .. tostring(err))
  t:is(nfds() - before, 0, "no descriptor left open (200 calls)")
  c:close()
  os.remove(path)
end)

-- proc.spawn made the child and its channel (a pipe: a descriptor), then
-- pushed the results: a push refused under a rule's budget left both in C
-- locals, the pipe open for good.  The results' userdata are made first now.
-- The room is swept in small steps until a spawn succeeds: the rounds just
-- before it are stopped late in the call, past the spawn.
tap.test("proc.spawn: the channel is closed when a push after the spawn is refused", function(t)
  local filler = string.rep("f", MB)   -- luacheck: ignore (the limit must be at least 1 MB)
  local spawned, stopped = {}, 0
  local function spawn_under(room)
    collectgarbage()
    core.budget_limits { memory = core.heap() + room, seconds = 60, life = 60, grace = 30 }
    local ok, p, ch = core.rule_call("oom-leak", function() return core.proc.spawn { "-e", "" } end)
    core.budget_limits { memory = 128 * MB }
    if ok then spawned[#spawned + 1] = { p, ch } else stopped = stopped + 1 end
    return ok
  end
  local function reap()
    for _, pc in ipairs(spawned) do pc[2]:close(); pc[1]:wait() end
    spawned = {}
    collectgarbage()
    collectgarbage()
    core.sleep(0.2)   -- the closes and exits seen by the loop
  end
  spawn_under(MB)   -- (the loop's own descriptors for children, made at the first spawn)
  reap()
  local before = nfds()
  -- the room where the call first succeeds, coarsely (what the collector
  -- frees when an allocation is refused counts), then in small steps below it
  local room = -256 * 1024
  while not spawn_under(room) do room = room + 4096 end
  local fine = room - 4096
  stopped = 0
  while fine < room and not spawn_under(fine) do fine = fine + 8 end
  t:ok(stopped > 0, "the budget stopped calls (" .. stopped .. ") until one spawned")
  reap()
  t:is(nfds() - before, 0, "no channel left open by a call stopped after its spawn")
  filler = nil
end)

-- task:wait made its joiner, then checked that the caller can wait: from a
-- plain coroutine while the loop runs it raised past the joiner, one per call.
tap.test("task:wait: nothing is left behind when the call cannot wait", function(t)
  local task = core.spawn(function() core.sleep(600) end)
  local function try() return pcall(coroutine.wrap(function() return task:wait() end)) end
  for _ = 1, 1000 do try() end
  collectgarbage()
  local before = rss()
  for _ = 1, 200000 do try() end
  collectgarbage()
  local ok, err = try()
  t:ok(not ok and tostring(err):find("plain coroutine", 1, true), "refused: " .. tostring(err))
  local grew = rss() - before
  no_growth(t, grew, 4 * MB, "no joiner left behind per refused call",
            string.format("resident memory grew by %.1f MB over 200000 calls", grew / MB))
  task:cancel()
end)

tap.test("(the spool removed)", function(t)
  sp:close()
  t:ok(os.execute("rm -rf '" .. spool_dir .. "'"), "removed")
end)

return tap.done()
