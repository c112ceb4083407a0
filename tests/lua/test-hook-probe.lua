-- What a rule may pass on from an event into mh.message / mh.enqueue, probed as
-- a careless or hostile caller would: a `date` the C library cannot break down
-- (1e18 crashed the process: localtime_r failed and left the struct tm unset,
-- days[garbage] and strftime(NULL) followed), a date outside 1970..9999, a
-- date that is no integer (the error was "bad argument #-1 to 'build'").
local tap = require "tap"
local mh = require "mailhook"
local core = require "mailhook.core"

local function build(date)
  return mh.message { from = "pbx@example.com", to = "ops@example.com", subject = "s", text = "t", date = date }
end

tap.test("date out of range: an error naming it, never a crash", function(t)
  for _, d in ipairs { 1000000000000000000, -1000000000000000000, math.mininteger, math.maxinteger, 1 << 62, -1,
                       253402300800 } do
    local m, err, info = build(d)
    t:is(m, nil, "date " .. d .. ": no message")
    t:ok(tostring(err):find("date: " .. d .. " is out of range (seconds since 1970, up to the year 9999)", 1, true),
         "named: " .. tostring(err))
    t:is(info and info.code, "EINVAL", "EINVAL")
    t:is(info and info.field, "date", "the field is 'date'")
  end
end)

tap.test("dates inside the range are written", function(t)
  local m = assert(build(0))
  t:like(m:bytes(), "%f[^\n%z]Date: [A-Z][a-z][a-z], %d+ [A-Z][a-z][a-z] 19[67]%d ", "the epoch")
  m = assert(build(253402214399))
  t:like(m:bytes(), "%f[^\n%z]Date: [A-Z][a-z][a-z], %d+ Dec 9999 ", "the last day of 9999")
  t:like(m:id(), "^<99991230235959%.", "its Message-ID stamp")
end)

tap.test("a date that is not whole seconds: misuse, raised naming the field", function(t)
  for _, d in ipairs { 1e300, 0 / 0, 1.5, "x", {} } do
    local ok, err = pcall(build, d)
    t:ok(not ok, "date " .. tostring(d) .. " raises")
    t:like(err, "mh%.message: date must be whole seconds since 1970", "naming the field: " .. tostring(err))
  end
end)

tap.test("core.msg.date: out of range raises, never a crash", function(t)
  local ok, err = pcall(core.msg.date, 1000000000000000000)
  t:ok(not ok, "1e18 raises")
  t:like(err, "out of range", "saying so")
  t:like(core.msg.date(0), "19[67]%d", "the epoch is fine")
end)

return tap.done()
