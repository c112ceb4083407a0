-- mailhook.duration: the one rule for a duration, read by the settings file,
-- `mailhook update`, the deliverer and the status report alike.
local tap = require "tap"
local duration = require "mailhook.duration"
local settings = require "mailhook.settings"

tap.test("parse: seconds, or a number with s, m, h or d", function(t)
  t:is(duration.parse(30), 30, "a number is seconds")
  t:is(duration.parse("90"), 90, "a bare string number")
  t:is(duration.parse("30m"), 1800, "30m")
  t:is(duration.parse(" 2 H "), 7200, "blanks and case")
  t:is(duration.parse("5d"), 432000, "5d")
  t:is(duration.parse("1.5s"), 1.5, "1.5s")
  t:is(duration.parse("1.5h"), 5400, "1.5h")
  t:is(math.type(duration.parse("2h")), "integer", "a whole number of seconds is an integer")
end)

tap.test("parse: anything else is refused, with the reason", function(t)
  for _, bad in ipairs { "30 min", "5 days", "2 weeks", "soon", "1e3", "-1", "0", 0, -5, 1 / 0, 0 / 0, "h", "11000d", {} } do
    local v, why = duration.parse(bad)
    t:is(v, nil, "refused: " .. tostring(bad))
    t:like(why or "", "must be a positive duration", "  and said why")
  end
end)

tap.test("seconds(v, default): the default where v is no duration", function(t)
  t:is(duration.seconds("30m", 7), 1800, "a duration")
  t:is(duration.seconds("30 min", 7), 7, "not one: the default")
  t:is(duration.seconds(nil, 8), 8, "nil: the default")
end)

tap.test("format: the largest whole unit", function(t)
  t:is(duration.format(1800), "30m", "30m")
  t:is(duration.format(7200), "2h", "2h")
  t:is(duration.format(432000), "5d", "5d")
  t:is(duration.format(90), "90s", "90s")
  t:is(duration.format(0.5), "0.5s", "0.5s")
end)

tap.test("the settings file follows the same rule", function(t)
  local cfg = assert(settings.validate { retry_max = "30m", max_queue_age = "5d" })
  t:is(cfg.retry_max, 1800, "30m")
  t:is(cfg.max_queue_age, 432000, "5d")
  local bad, err = settings.validate { retry_max = "30 min" }
  t:is(bad, nil, "'30 min' refused")
  t:like(err, "^retry_max: must be a positive duration", "naming the key")
end)

return tap.done()
