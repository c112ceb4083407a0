-- Rules: on/emit, one task per handler, failures isolated, the budget (every
-- coroutine and task a rule starts, instructions, wall-clock time, memory),
-- mh.enqueue failures of rules, and rule files in their own strict environments.
local tap = require "tap"
local mh = require "mailhook"
local rules = require "mailhook.rules"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(mh.core.rstate.mkdir(d))
  return d
end

-- Waits until every task a rule started has ended (each by its deadline).
function core_wait_rule_tasks() mh.core.rule_tasks_wait() end

-- One throttle call (takes and releases the rule-state lock).
function throttle_like(rs) return rs.throttle { key = "k", max = 5, per = 60 } end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

tap.test("emit runs every handler, each in its own task, and waits for them", function(t)
  rules.clear()
  local seen, tasks = {}, {}
  mh.on("door", function(ev) mh.sleep(0.02); seen[#seen + 1] = "slow:" .. ev.room; tasks[1] = mh.current_task() end)
  mh.on("door", function(ev) seen[#seen + 1] = "fast:" .. ev.event; tasks[2] = mh.current_task() end)
  mh.on("*", function(ev) seen[#seen + 1] = "any:" .. ev.event end)
  mh.on("window", function() seen[#seen + 1] = "never" end)
  local ok, failures, n = mh.emit("door", { room = "lab" })
  t:is(ok, true, "all succeeded")
  t:same(failures, {}, "no failures")
  t:is(n, 3, "three handlers ran (two for door, one for *)")
  t:same(seen, { "fast:door", "any:door", "slow:lab" }, "all ran; emit returned after the slow one")
  t:ok(tasks[1] and tasks[2] and tasks[1] ~= tasks[2] and tasks[1] ~= mh.current_task(), "separate tasks")
end)

tap.test("a handler that raises is reported, the others still run", function(t)
  rules.clear()
  local ran = 0
  mh.on("e", function(ev) ev.x = "changed"; error("bad rule") end, "broken-rule")
  mh.on("e", function(ev) ran = ran + 1; t:is(ev.x, 1, "a handler sees the event as emitted") end)
  local ok, failures = mh.emit("e", { x = 1 })
  t:is(ok, false, "emit reports the failure")
  t:is(ran, 1, "the other handler ran")
  t:is(#failures, 1, "one failure")
  t:is(failures[1].handler, "broken-rule", "named")
  t:like(failures[1].error, "bad rule", "with its message")
  rules.clear()
  mh.on("e", function() error({}) end)
  ok, failures = mh.emit("e", {})
  t:like(failures[1].handler, "^e@test%-rules%.lua:%d+$", "an unnamed handler is named by file and line")
end)

tap.test("a handler that loops forever is stopped by the budget", function(t)
  rules.clear()
  local saved = rules.budget
  rules.budget = 2000000
  local after = false
  mh.on("spin", function() while true do end end, "spinner")
  mh.on("spin", function() -- catching the error does not help it
    while true do pcall(function() while true do end end) end
  end, "stubborn")
  mh.on("spin", function() for _ = 1, 1000 do end after = true end, "fine")
  local t0 = mh.monotonic()
  local ok, failures = mh.emit("spin", {})
  rules.budget = saved
  t:is(ok, false, "reported")
  t:is(#failures, 2, "both loops stopped")
  for _, f in ipairs(failures) do
    t:like(f.error, "stopped: exceeded its budget of 2000000 instructions", f.handler .. " says why")
  end
  t:ok(after, "the well-behaved handler ran")
  t:ok(mh.monotonic() - t0 < 5, "quickly")
  t:is(debug.gethook(), nil, "no hook left on the caller")
end)

tap.test("a rule file with a UTF-8 byte order mark or a #! line loads, its line numbers kept", function(t)
  rules.clear()
  local d = tmpdir()
  write(d .. "/bom.lua", "\239\187\191on('bom', function() end)\n")
  write(d .. "/bang.lua", "#!/usr/bin/env lua\non('bang', function() end)\nerror('on line 3')\n")
  local n, errors = rules.load({ d })
  t:is(n, 1, "the file with a byte order mark loaded (it failed: unexpected symbol near '<\\239>')")
  t:is(#errors, 1, "the other raised, as written")
  t:like(errors[1] and errors[1].error or "", "bang%.lua:3: on line 3", "at its own line 3: the #! line kept as an empty one")
  t:is(#rules.handlers_for("bom"), 1, "its handler is registered")
end)

tap.test("misuse raises", function(t)
  t:ok(not pcall(mh.on, "", function() end), "empty event")
  t:ok(not pcall(mh.on, "x", "not a function"), "handler not a function")
  t:ok(not pcall(mh.emit, nil, {}), "emit without event")
  t:ok(not pcall(mh.emit, "x", "fields"), "fields not a table")
end)

tap.test("rule files: strict environment, errors reported per file", function(t)
  rules.clear()
  local d = tmpdir()
  write(d .. "/10-good.lua", [[
    local count = 0
    on("ping", function(ev) count = count + 1; ev.reply.n = count; ev.reply.file = RULE_FILE end)
    mh.on("ping", function(ev) ev.reply.mh = true end)
  ]])
  write(d .. "/20-assign.lua", "oops = 1\n")
  write(d .. "/30-syntax.lua", "on('ping', function(\n")
  write(d .. "/40-read.lua", [[on("ping", function(ev) ev.reply.typo = undefined_name end)]])
  write(d .. "/notes.txt", "error('not a rule file')\n")
  local n, errors = rules.load(d)
  t:is(n, 2, "two files loaded (good, read)")
  t:is(#errors, 2, "two reported")
  t:like(errors[1].file, "20%-assign%.lua$", "the assignment file")
  t:like(errors[1].error, "assignment to undeclared global 'oops'", "says why")
  t:like(errors[2].file, "30%-syntax%.lua$", "the syntax error file")
  local reply = {}
  local ok, failures = mh.emit("ping", { reply = reply })
  t:is(reply.n, 1, "a file keeps its locals")
  t:like(reply.file, "10%-good%.lua$", "RULE_FILE")
  t:is(reply.mh, true, "mh is visible")
  t:is(ok, false, "reading an undeclared global fails the handler")
  t:like(failures[1] and failures[1].error, "undeclared global 'undefined_name'", "naming it")
  t:is(rawget(_G, "oops"), nil, "no global leaked")
  local n2 = rules.load(d .. "/does-not-exist")
  t:is(n2, 0, "a missing folder means no rules")
  for _, f in ipairs { "10-good.lua", "20-assign.lua", "30-syntax.lua", "40-read.lua", "notes.txt" } do
    os.remove(d .. "/" .. f)
  end
  os.remove(d)
  rules.clear()
end)

-- A mistyped read said "(declare it with local)": no help for `tostrin(x)`
tap.test("reading an undeclared global names the global it likely meant", function(t)
  rules.clear()
  local d = tmpdir()
  write(d .. "/typo.lua", [[
    on("typo", function(ev) return tostrin(ev.x) end)
    on("typo2", function(ev) return perod { times = "20:00-07:00" } end)
    on("typo3", function(ev) return quite_unknown_name end)
  ]])
  t:is(rules.load(d), 1, "loaded")
  local _, f = mh.emit("typo", {})
  t:like(f[1] and f[1].error, "read of undeclared global 'tostrin' %(a typo of 'tostring'%?%)", "a standard global")
  _, f = mh.emit("typo2", {})
  t:like(f[1] and f[1].error, "read of undeclared global 'perod' %(a typo of 'period'%?%)", "a rule API name")
  _, f = mh.emit("typo3", {})
  t:like(f[1] and f[1].error, "read of undeclared global 'quite_unknown_name' %(declare it with local%)",
         "nothing near: as before")
  os.remove(d .. "/typo.lua")
  os.remove(d)
  rules.clear()
  mh.core.rule_failures()
end)

tap.test("a reload replaces the handlers and timers of rule files", function(t)
  rules.clear()
  local d = tmpdir()
  write(d .. "/a.lua", [[
    on("r", function(ev) ev.out[#ev.out + 1] = "a" end)
    every(0.01, function() TICKS.n = TICKS.n + 1 end)
  ]])
  local ticks = { n = 0 }
  _G.TICKS = ticks
  mh.on("r", function(ev) ev.out[#ev.out + 1] = "direct" end)
  rules.load(d)
  rules.load(d)   -- SIGHUP
  local out = {}
  mh.emit("r", { out = out })
  table.sort(out)
  t:same(out, { "a", "direct" }, "file handlers once, direct ones kept")
  local until_ = mh.monotonic() + 2
  while ticks.n < 3 and mh.monotonic() < until_ do mh.sleep(0.01) end
  t:ok(ticks.n >= 3, "every() of a rule file ticks")
  write(d .. "/a.lua", "-- emptied\n")
  rules.load(d)
  mh.sleep(0.02)   -- a tick spawned just before the stop may still run once
  local n = ticks.n
  mh.sleep(0.05)
  t:is(ticks.n, n, "stopped by the reload")
  out = {}
  mh.emit("r", { out = out })
  t:same(out, { "direct" }, "handlers of the file gone")
  _G.TICKS = nil
  os.remove(d .. "/a.lua")
  os.remove(d)
  rules.clear()
end)

-- In a rule file, on/emit/every take no argument too many (as mh.on, mh.emit)
tap.test("rule files: an argument too many to on, every or emit raises", function(t)
  rules.clear()
  local d = tmpdir()
  write(d .. "/a.lua", 'on("x", function() end, "name", 5)\n')
  write(d .. "/b.lua", 'every(1, function() end, 5)\n')
  write(d .. "/c.lua", 'on("y", function(ev) emit("z", {}, 1) end)\n')
  local n, errors = rules.load(d)
  t:is(n, 1, "only c.lua loads")
  t:like(errors[1] and errors[1].error, "a%.lua:1: on: takes at most 3 arguments %(got 4%)", "on")
  t:like(errors[2] and errors[2].error, "b%.lua:1: every: takes at most 2 arguments %(got 3%)", "every")
  local ok, failures = mh.emit("y", {})
  t:is(ok, false, "emit with a third argument fails the rule")
  t:like(failures[1] and failures[1].error, "c%.lua:1: emit: takes at most 2 arguments %(got 3%)", "emit")
  for _, f in ipairs { "a.lua", "b.lua", "c.lua" } do os.remove(d .. "/" .. f) end
  os.remove(d)
  rules.clear()
end)

-- A file saved mid-edit (a syntax error) or that now raises at its top level
-- keeps its previous version through a reload: its handlers and timers go on,
-- nothing the failed run registered is added; the error names the file.
tap.test("a reload keeps the previous version of a file that no longer loads", function(t)
  rules.clear()
  local d = tmpdir()
  local ticks = { n = 0 }
  _G.TICKS = ticks
  write(d .. "/a.lua", [[
    on("r", function(ev) ev.out[#ev.out + 1] = "a1" end)
    every(0.01, function() TICKS.n = TICKS.n + 1 end)
  ]])
  write(d .. "/b.lua", [[on("r", function(ev) ev.out[#ev.out + 1] = "b1" end)]])
  local n = rules.load(d)
  t:is(n, 2, "both files load")
  write(d .. "/a.lua", "on('r', function(ev)\n")               -- saved mid-edit
  write(d .. "/b.lua", [[
    on("r", function(ev) ev.out[#ev.out + 1] = "b-partial" end)
    error("top level raises")
  ]])
  local n2, errors = rules.load(d)   -- SIGHUP
  t:is(n2, 0, "neither file loads")
  t:is(#errors, 2, "both reported")
  t:like(errors[1] and errors[1].error, "previous version stays in use", "the error says the old one is kept")
  t:like(errors[2] and errors[2].error, "top level raises.*previous version stays in use", "for a raise too")
  local out = {}
  mh.emit("r", { out = out })
  t:same(out, { "a1", "b1" }, "the previous handlers still run, in file order; the partial one is not added")
  local seen = ticks.n
  local until_ = mh.monotonic() + 2
  while ticks.n < seen + 2 and mh.monotonic() < until_ do mh.sleep(0.01) end
  t:ok(ticks.n >= seen + 2, "the previous version's every() timer still ticks")
  rules.load(d)                      -- a second SIGHUP, still broken: still kept
  out = {}
  mh.emit("r", { out = out })
  t:same(out, { "a1", "b1" }, "kept through a second failed reload")
  write(d .. "/a.lua", [[on("r", function(ev) ev.out[#ev.out + 1] = "a2" end)]])
  os.remove(d .. "/b.lua")
  t:is(rules.load(d), 1, "fixed: it loads")
  out = {}
  mh.emit("r", { out = out })
  t:same(out, { "a2" }, "the new version replaces the old; a removed file's handlers go")
  mh.sleep(0.02)   -- a tick spawned just before the stop may still run once
  seen = ticks.n
  mh.sleep(0.05)
  t:is(ticks.n, seen, "the old version's timer stopped once the new one loaded")
  _G.TICKS = nil
  os.remove(d .. "/a.lua")
  os.remove(d)
  rules.clear()
end)

-- The budget covers every coroutine and task a rule creates (issue 10 point 2).
tap.test("the budget covers coroutines and tasks the handler starts", function(t)
  rules.clear()
  local saved = rules.budget
  rules.budget = 2000000
  mh.on("esc", function() coroutine.wrap(function() while true do end end)() end, "wrap")
  mh.on("esc", function()
    local co = coroutine.create(function() local x = 0 while true do x = x + 1 end end)
    local ok, err = coroutine.resume(co)   -- the stop surfaces here, and again in the handler
    error("resume returned: " .. tostring(ok) .. " " .. tostring(err))
  end, "create")
  local spawned
  mh.on("esc", function() spawned = mh.spawn(function() while true do end end) end, "spawn")
  local ok, failures = mh.emit("esc", {})
  local by = {}
  for _, f in ipairs(failures) do by[f.handler] = f.error end
  t:is(ok, false, "reported")
  t:like(by.wrap, "stopped: exceeded its budget of 2000000 instructions", "a loop inside coroutine.wrap")
  t:like(by.create, "stopped: exceeded its budget of 2000000 instructions", "a loop in a coroutine.create'd thread")
  core_wait_rule_tasks()
  t:is(spawned:status(), "failed", "a loop in a task the handler spawned is stopped too")
  local _, msg = spawned:wait()
  t:like(msg, "stopped: exceeded its budget", "with the budget's reason")
  local fails = mh.core.rule_failures()
  t:like(fails[1], "rule spawn for event 'esc' %(a task it started", "reported under the rule's name")
  rules.budget = saved
end)

-- A task the rule cancels itself (it no longer needs it) ended as asked: it
-- was reported as a failure of the rule ("... (a task it started ...):
-- interrupted"), and `mailhook hook` exited non-zero for it.
tap.test("a task its rule cancels is no failure of the rule", function(t)
  rules.clear()
  mh.core.rule_failures()   -- forget earlier ones
  mh.on("cx", function()
    local helper = mh.spawn(function() mh.sleep(60) end)
    mh.sleep(0.01)
    helper:cancel()
  end, "canceller")
  local ok = mh.emit("cx", {})
  core_wait_rule_tasks()
  t:is(ok, true, "the rule succeeded")
  t:is(#mh.core.rule_failures(), 0, "no failure recorded for the task it cancelled")
end)

tap.test("a rule ends within its lifetime: waits end too", function(t)
  rules.clear()
  local saved = rules.time_budget
  rules.time_budget = 0.3
  local sleeper
  mh.on("wait", function() mh.sleep(1e6) end, "sleeps")
  mh.on("wait", function() sleeper = mh.spawn(function() while true do mh.sleep(0.01) end end) end, "spawns")
  local t0 = mh.monotonic()
  local ok, failures = mh.emit("wait", {})
  core_wait_rule_tasks()
  rules.time_budget = saved
  t:is(ok, false, "the waiting handler failed")
  t:like(failures[1] and failures[1].error, "stopped: not finished 0.9 seconds after it started",
         "by its lifetime (3 x its running time)")
  t:like(failures[1] and failures[1].error, "%(a wait that never ends%? it is 3 x the setting rule_timeout%)$",
         "naming the setting that gives more")
  t:is(sleeper:status(), "failed", "the task it spawned ended with it")
  t:ok(mh.monotonic() - t0 < 10, "no later than the budget (and some slack)")
  mh.core.rule_failures()
end)

tap.test("memory: the allocator caps the Lua heap while a rule runs", function(t)
  rules.clear()
  local saved = rules.memory_limit
  rules.memory_limit = 24 * 1048576
  local after
  mh.on("hog", function()
    local keep, chunk = {}, ("0123456789abcdef"):rep(65536)   -- 1 MB
    while true do pcall(function() keep[#keep + 1] = chunk .. #keep end) end
  end, "hog")
  mh.on("hog", function() after = ("ok"):rep(10) end, "modest")
  local ok, failures = mh.emit("hog", {})
  rules.memory_limit = saved
  t:is(ok, false, "the hog failed")
  t:is(#failures, 1, "only the hog")
  t:like(failures[1].error, "stopped: exceeded the memory limit of 24 MB for rules", "a pcall cannot keep it going")
  t:like(failures[1].error, "for rules %(the setting rule_memory%)$", "naming the setting that gives more")
  t:is(after, ("ok"):rep(10), "the modest handler ran")
  t:ok(mh.core.heap() < 24 * 1048576, "its heap was given back")
  local big = ("z"):rep(30 * 1048576)   -- outside a rule nothing is refused
  t:is(#big, 30 * 1048576, "code outside rules is not limited")
end)

tap.test("a rule's own timers are budgeted and never hold the process", function(t)
  rules.clear()
  local ticks, timer, label = 0, nil, nil
  local saved = rules.budget
  rules.budget = 2000000
  local before = mh.core.handles()
  mh.on("tmr", function()
    timer = mh.every(0.01, function()
      ticks = ticks + 1
      local _, l = mh.core.budget()
      label = l
      if ticks == 2 then while true do end end
    end)
  end, "ticker")
  mh.emit("tmr", {})
  t:is(mh.core.handles(), before, "the timer does not keep the loop alive")
  local until_ = mh.monotonic() + 5
  while ticks < 3 and mh.monotonic() < until_ do mh.sleep(0.01) end
  timer:stop()
  rules.budget = saved
  t:ok(ticks >= 3, "it ticks on after one tick was stopped")
  t:is(label, "rule ticker for event 'tmr'", "each tick runs under a budget named after the rule")
  mh.core.rule_failures()
end)

tap.test("rule state: a stop is deferred until the lock is released", function(t)
  rules.clear()
  local rs = require "mailhook.rule_state"
  local dir = tmpdir()
  rs.dir = dir
  local saved = rules.budget
  rules.budget = 200000
  mh.on("st", function()
    local ok = throttle_like(rs)
    while true do end
  end, "locker")
  local ok, failures = mh.emit("st", {})
  t:like(failures[1] and failures[1].error, "stopped: exceeded its budget", "stopped")
  rules.budget = saved
  local allowed = mh.spawn(function() return rs.throttle { key = "k", max = 5, per = 60 } end)
  local wok, res = allowed:wait()
  t:ok(wok and res, "the lock was released: the next throttle works")
  rs.dir = nil
  os.execute("rm -rf '" .. dir .. "'")
end)

-- mh.enqueue failures inside a rule (issue 11 point 4)
tap.test("a failed mh.enqueue fails the rule unless the rule marks it handled", function(t)
  rules.clear()
  local dir = tmpdir()
  local paths = mh.core.paths
  local conf, spool = paths.conf, paths.spool
  paths.conf, paths.spool = dir .. "/mailhook.conf", dir .. "/spool"
  write(paths.conf, "enabled = true\nserver = 127.0.0.1\nfrom = pbx@example.com\n")
  mh.on("mail", function() mh.enqueue { subject = "no recipient", text = "x" } end, "unchecked")
  mh.on("mail", function()
    local id, err = mh.enqueue { to = "a@example.com", subject = "x", text = "y",
                                 attachments = { { path = dir .. "/missing.wav" } } }
    if not id then mh.log.warn("could not: " .. err) end          -- looked, did nothing about it
  end, "checked-only")
  mh.on("mail", function()
    local id, err, info = mh.enqueue { subject = "no recipient", text = "x" }
    if not id then
      info.handled = true                                           -- dealt with it: a fallback
      assert(mh.enqueue { to = "desk@example.com", subject = "fallback", text = err })
    end
  end, "handled")
  local ok, failures = mh.emit("mail", {})
  local by = {}
  for _, f in ipairs(failures) do by[f.handler] = f.error end
  t:is(ok, false, "reported")
  t:like(by.unchecked, "its mail was not queued: mh.enqueue failed: .*recipient", "an unchecked failure fails the rule")
  t:like(by["checked-only"], "mh.enqueue failed: attachment .*missing.wav", "so does one checked but not handled")
  t:is(by.handled, nil, "a rule that marks it handled succeeds")
  local status, msgs = rules.dispatch("nothing", {})
  t:is(status, 0, "dispatch of an unrelated event is clean")
  rules.clear()
  mh.on("late", function() mh.spawn(function() mh.sleep(0.01); mh.enqueue { subject = "late", text = "x" } end) end,
        "spawner")
  status, msgs = rules.dispatch("late", {})
  t:is(status, 1, "a task the rule started whose mh.enqueue failed fails the event")
  t:like(table.concat(msgs, "\n"), "rule spawner for event 'late' failed: its mail was not queued", "named")
  local id = mh.enqueue { subject = "outside", text = "x" }
  t:is(id, nil, "outside a rule the result is only returned")
  paths.conf, paths.spool = conf, spool
  os.execute("rm -rf '" .. dir .. "'")
  rules.clear()
end)

-- A rule's error as stderr and the log show it: one line, escaped, bounded.
tap.test("error_text: escaped, one line, bounded with the cut counted", function(t)
  local rules = require "mailhook.rules"
  t:is(rules.error_text("a\r\27[2J\nb\tc\127"), "a\\r\\27[2J\\nb\\tc\\127", "control bytes escaped")
  t:is(rules.error_text("caf\195\169 \194\155x"), "caf\195\169 \\194\\155x", "UTF-8 kept, a C1 control (CSI) escaped")
  t:is(rules.error_text("a\255b"), "a\\255b", "not UTF-8: the byte escaped")
  t:is(rules.error_text(string.rep("x", 3000)), string.rep("x", 1000) .. " ... (2000 more bytes)", "cut at 1000")
  local e = rules.error_text(string.rep("\195\169", 600))
  t:is(e, string.rep("\195\169", 500) .. " ... (200 more bytes)", "cut on a character boundary")
  e = rules.error_text(string.rep("\27", 600))
  t:is(#e <= 1000 + 30, true, "escapes count toward the bound (" .. #e .. " bytes)")
  t:like(e, " %.%.%. %(" .. (600 - 333) .. " more bytes%)$", "the bytes not shown are counted")
  t:is(rules.error_text(setmetatable({}, { __tostring = function() return "obj\n" end })), "obj\\n", "an object")
end)

-- A NUL in a rule's error cut it short (core.rule_call: "a"); a table raised
-- became "(error object is a table value)" in the rule's failure, its fields lost.
tap.test("a rule's error: a NUL kept (shown as \\0), a table shown by __tostring or its fields", function(t)
  local ok, msg, tb = mh.core.rule_call("r", function() error("a\0b tail", 0) end)
  t:is(ok, false, "rule_call fails")
  t:is(msg, "a\0b tail", "its message whole, NUL and all")
  t:like(tb, "^a%zb tail\nstack traceback:", "the traceback starts with all of it")
  ok, msg = mh.core.rule_call("r", function() error({ code = 5 }) end)
  t:is(msg, "(error object: a table {code=5})", "a table: its fields")
  ok, msg = mh.core.rule_call("r", function() error(setmetatable({}, { __tostring = function() return "E6" end })) end)
  t:is(msg, "E6", "a table with a __tostring: what it says")
  ok, msg = mh.core.rule_call("r", function()
    error(setmetatable({ code = 7 }, { __tostring = function() error("bad") end }))
  end)
  t:is(msg, "(error object: a table {code=7})", "a __tostring that raises: its fields")
  t:is(rules.error_text("a\0b"), "a\\0b", "error_text shows a NUL as \\0")
  t:is(rules.error_text({ code = 5, why = "x" }):match("^%(error object: a table {.*}%)$") ~= nil, true,
       "error_text of a table: its fields (" .. rules.error_text({ code = 5, why = "x" }) .. ")")
  rules.clear()
  mh.on("e", function() error({ code = 5 }) end, "tbl")
  local eok, failures = mh.emit("e", {})
  t:is(eok, false, "emit reports the failure")
  t:is(failures[1] and failures[1].error, "(error object: a table {code=5})", "the failure shows the table's fields")
  rules.clear()
end)

-- A sweep that keeps failing (the state folder cannot be made: a full disk,
-- inodes used up) is logged once with its traceback, not every interval, and
-- its end is logged (a 7-line traceback came every 5 s).
tap.test("a lasting sweep failure is logged once, and its end", function(t)
  local rs = require "mailhook.rule_state"
  local saved_dir, saved_log, saved_iv = rs.dir, mh.core.log, rules.sweep_interval
  local lines = {}
  mh.core.log = function(level, msg) lines[#lines + 1] = level .. " " .. tostring(msg) end
  rs.dir = "/dev/null/mh-rules-state"        -- ENOTDIR: never creatable
  rules.sweep_interval = 0.01
  rules.unserve()
  rules.serve()
  local function count(pat)
    local n = 0
    for _, l in ipairs(lines) do if l:find(pat) then n = n + 1 end end
    return n
  end
  local until_ = mh.monotonic() + 5
  while count("sweep") < 1 and mh.monotonic() < until_ do mh.sleep(0.01) end
  mh.sleep(0.2)                              -- some twenty more failed sweeps
  t:is(count("rules: sweep: "), 1, "the failure is logged once")
  t:like(table.concat(lines, "\n"), "said again every 600 s while it lasts", "saying when it is said again")
  local d = tmpdir()
  rs.dir = d
  until_ = mh.monotonic() + 5
  while count("sweep works again") < 1 and mh.monotonic() < until_ do mh.sleep(0.01) end
  t:is(count("sweep works again"), 1, "its end is logged")
  rules.unserve()
  mh.core.log, rs.dir, rules.sweep_interval = saved_log, saved_dir, saved_iv
  os.execute("rm -rf '" .. d .. "'")
end)

return tap.done()
