-- Rules: on/emit, one task per handler, failures isolated, the instruction
-- budget, and rule files in their own strict environments.
local tap = require "tap"
local mh = require "mailhook"
local rules = require "mailhook.rules"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(mh.core.rstate.mkdir(d))
  return d
end

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

return tap.done()
