-- mailhook.flush's handshake with a running service: the service answers a
-- flush request by writing SPOOL/flush.done ("TIME LEFT [ERROR]"), and the
-- waiting `mailhook flush` takes the first TIME at or after its request as
-- the answer.  A TIME written before the moment it was taken (rounded to
-- the nearest millisecond) made a flush that the service answered within
-- half a millisecond wait for ever (spool-unreadable.sh hung in CI); the
-- whole exchange with a real service is tests/integration/flush-service.sh.
local tap = require "tap"
local mh = require "mailhook"
local flush = require "mailhook.flush"

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. p))
  return p
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

tap.test("an answer written right after the request is taken as its answer", function(t)
  local dir = tmpdir()
  local before, n = 0, 2000
  for _ = 1, n do
    local asked = mh.now()             -- what `mailhook flush` takes before its signal
    assert(flush.write_done(dir, 1))   -- the service, at once
    local tm = read(flush.done_path(dir)):match("^(%S+) ")
    if not (tonumber(tm) and tonumber(tm) >= asked) then before = before + 1 end
  end
  t:is(before, 0, "no TIME before the request it answers, in " .. n .. " answers given at once")
  t:like(read(flush.done_path(dir)), "^%d+%.%d%d%d%d%d%d 1 \n$", "the line: TIME LEFT, no error")
  assert(flush.write_done(dir, 3, "server unreachable\nsecond line"))
  t:like(read(flush.done_path(dir)), "^%S+ 3 server unreachable second line\n$", "an error on the same line")
  os.execute("rm -rf " .. dir)
end)

tap.test("stamp: never below the time it stands for, as printed and read back", function(t)
  local low = 0
  local probes = { 1796640534.0303901, 1796640534.9999996, 1796640535.0000004, 0.1, 0.7, 1e9 + 0.123456 }
  for i = 1, 5000 do probes[#probes + 1] = 1.7e9 + i * 0.0001237 + (i % 7) * 1e-7 end
  for _, now in ipairs(probes) do
    local s = string.format("%.6f", flush.stamp(now))
    if tonumber(s) < now or tonumber(s) - now > 2e-6 then low = low + 1 end
  end
  t:is(low, 0, "every stamp at or after its time, within 2 us (" .. #probes .. " probes)")
end)

tap.test("answer: a new flush.done, unless it covers only requests asked before", function(t)
  local dir = tmpdir()
  t:is(flush.answer(nil, nil, 10), false, "no file: no answer")
  assert(flush.write_done(dir, 2, "server unreachable", 12.5))
  local s = read(flush.done_path(dir))
  t:like(s, "^%S+ 2 server unreachable\nasked 12%.500000\n$", "the request's time on a line of its own")
  t:is(flush.answer(s, s, 10), false, "the file there before the request: no answer")
  local yes, why = flush.answer(s, nil, 12.5)
  t:is(yes, true, "asked when the flush signalled: the answer")
  t:is(why, "server unreachable", "its error, without the second line")
  t:is(flush.answer(s, nil, 12.6), false, "asked before the flush signalled: the pass before's answer, not taken")
  assert(flush.write_done(dir, 0))
  t:is(flush.answer(read(flush.done_path(dir)), s, 99), true, "no asked line (an older service): new is enough")
  os.execute("rm -rf " .. dir)
end)

return tap.done()
