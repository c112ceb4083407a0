-- Lua literals read back without running code (lua/mailhook/literal.lua): the
-- rule state files and the frames between `mailhook run` and its rules worker.
-- A planted state file or a frame forged by a rule once ran as code: `while
-- true do end` in a throttle file ended every `hook` through the watchdog, and
-- the same frame froze the service (issue 10 attack catalogue).  Each refusal
-- is checked to cost no more than a few hundred Lua instructions: no part of
-- the text ever runs.
local tap = require "tap"

-- calls fn(...) counting Lua instructions by thousands; past `cap` thousands
-- it raises (so an unfixed decoder that runs the loop cannot hang the test)
local function counted(cap, fn, ...)
  local ticks = 0
  debug.sethook(function()
    ticks = ticks + 1
    if ticks > cap then error("ran for ever") end
  end, "", 1000)
  local res = table.pack(pcall(fn, ...))
  debug.sethook()
  return ticks, table.unpack(res, 1, res.n)
end

local HOSTILE = {
  loop = "while true do end",
  loop_in_table = "return {[1]=(function() while true do end end)()}",
  method = 'return ("x"):rep(1073741824)',
  call = "return {x = os.exit()}",
  long_bracket = 'return {[[ " ]], (function() while true do end end)(), [[ " ]]}',
  comment = 'return {1, --[[ " ]] (function() while true do end end)() --[[ " ]]}',
  single_quote = "return {'\"', (function() while true do end end)(), '\"'}",
  name = "return {a = b}",
  goto_loop = "::a:: goto a",
  deep = "return " .. string.rep("{", 100000),
}

tap.test("hostile texts are refused without running", function(t)
  local literal = require "mailhook.literal"
  for name, text in pairs(HOSTILE) do
    local ticks, ok, v, why = counted(200, literal.decode, text)
    t:ok(ok and v == nil, name .. ": refused", tostring(v) .. " " .. tostring(why))
    t:ok(ticks < 50, name .. ": no code of it ran (" .. ticks .. "k instructions)")
  end
end)

tap.test("a frame the rules worker's service reads is never run", function(t)
  local W = require "mailhook.rule_worker"
  for name, text in pairs(HOSTILE) do
    local ticks, ok, v = counted(200, W.decode, text)
    t:ok(ok and v == nil and ticks < 50, name .. ": decode refuses it (" .. ticks .. "k instructions)")
  end
end)

tap.test("what the writers write reads back", function(t)
  local W = require "mailhook.rule_worker"
  local literal = require "mailhook.literal"
  local weird = 'q"uote \\ back\nline\0nul ]] --[[ ([{ while true do end }]) \r\t\127 é'
  local v = { op = "event", n = 42, event = "failed", neg = -5, big = 9007199254740993, f = 1.5e300,
              tiny = -2.5e-300, yes = true, no = false,
              fields = { reason = weird, [weird] = "key", to = { "a@b", "c@d" }, nested = { { {} } } } }
  local back = W.decode(W.encode(v))
  t:same(back, v, "a frame with every kind of value and a hostile string round-trips")
  t:is(literal.decode('return {["k"]=1,["s"]="\\65\\z   B\\x43\\u{44}",}').s, "ABCD", "escapes of %q read back")
  t:is(literal.decode("return {1,2,3;}")[3], 3, "a list")
  t:is(literal.decode('return "str"'), "str", "a plain value")
  t:is(literal.decode('return {"open'), nil, "an open string: refused")
end)

tap.test("a state file that is code is read as damaged, not run", function(t)
  local mh = require "mailhook"
  local dir = os.tmpname()
  os.remove(dir)
  package.loaded["mailhook.rule_state"] = nil
  local rs = require "mailhook.rule_state"
  rs.dir = dir
  rs.clock = function() return 1000 end
  rs.enqueue = function() return "id" end
  assert(mh.core.rstate.mkdir(dir .. "/throttle"))
  local f = assert(io.open(dir .. "/throttle/k.lua", "w"))
  f:write("while true do end")
  f:close()
  local ticks, ok, allowed = counted(2000, rs.throttle, { key = "k", max = 3, per = 600 })
  t:ok(ok and allowed == true, "throttle starts afresh", tostring(allowed))
  t:ok(ticks < 1000, "without running the file (" .. ticks .. "k instructions)")
  os.execute("rm -rf '" .. dir .. "'")
  package.loaded["mailhook.rule_state"] = nil
end)

return tap.done()
