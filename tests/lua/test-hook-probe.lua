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
                       253402300800, 1e300, -1e300 } do   -- 1e300: whole, so out of range (not "must be whole")
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
  for _, d in ipairs { 0 / 0, 1.5, "x", {} } do
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

-- NUL in a value the builder takes as a C string: it would end there, so
-- "report.pdf\0.exe" went as report.pdf, "/x/f.txt\0.wav" attached /x/f.txt and a
-- header named "X-A\0B" became X-A with an empty value. docs/message.md: refused
-- with EBADHDR naming the field, never stripped.
tap.test("NUL in a C-string value: refused, never cut", function(t)
  local f = tap.tmpfile("hello\n")
  local function try(fields)
    fields.from = fields.from or "pbx@example.com"
    fields.to = fields.to or "ops@example.com"
    return mh.message(fields)
  end
  local cases = {
    { "attachment name", { attachments = { { path = f, name = "report.pdf\0.exe" } } }, "attachments" },
    { "attachment path", { attachments = { { path = f .. "\0.wav" } } }, "attachments" },
    { "attachment bare path", { attachments = { f .. "\0junk" } }, "attachments" },
    { "attachment type", { attachments = { { path = f, type = "text/plain\0; x" } } }, "attachments" },
    { "header name (map)", { headers = { ["X-A\0B"] = "v" } }, "headers" },
    { "header name (list)", { headers = { { "X-A\0B", "v" } } }, "headers" },
    { "display name", { to = { { name = "Jo\0e", address = "jo@example.com" } } }, "to" },
  }
  for _, c in ipairs(cases) do
    local m, err, info = try(c[2])
    t:is(m, nil, c[1] .. ": no message")
    t:like(err, "NUL", c[1] .. ": the error says NUL: " .. tostring(err))
    t:is(info and info.code, "EBADHDR", c[1] .. ": EBADHDR")
    t:is(info and info.field, c[3], c[1] .. ": field " .. c[3])
  end
  local m = assert(try { attachments = { { path = f, name = "report.pdf" } }, headers = { ["X-A"] = "v" },
                         to = { { name = "Joe", address = "jo@example.com" } } })
  local b = m:bytes()
  t:like(b, 'filename="report.pdf"', "without a NUL: the name as given")
  t:like(b, "\r\nX%-A: v\r\n", "the header as given")
  t:like(b, "\r\nTo: Joe <jo@example.com>\r\n", "the display name as given")
  local ok, err = m:save(f .. "\0.eml")
  t:is(ok, nil, "msg:save of a path with a NUL: refused")
  t:like(err, "NUL in the path", "saying so")
  t:is(tap.slurp(f), "hello\n", "the file the cut path names is untouched")
  os.remove(f)
end)

-- The same in an explicit envelope (sp:enqueue(msg, {from =, to =})): the copy
-- is a C string, so "a@b.example\0x" was queued for a@b.example without a word.
tap.test("NUL in an envelope address: raised, nothing queued", function(t)
  local dir = io.popen("mktemp -d ${TMPDIR:-/tmp}/mh-lua-probe.XXXXXX"):read("l")
  local sp = assert(require("mailhook.spool").open(dir))
  local m = assert(mh.message { from = "pbx@example.com", to = "ops@example.com", text = "x" })
  for _, c in ipairs {
    { { from = "pbx@example.com", to = { "ops@example.com\0evil" } }, "envelope.to%[1%] holds a NUL" },
    { { from = "pbx@example.com", to = "ops@example.com\0evil" }, "envelope.to holds a NUL" },
    { { from = "pbx@example.com\0x", to = { "ops@example.com" } }, "envelope.from holds a NUL" },
  } do
    local ok, err = pcall(sp.enqueue, sp, m, c[1])
    t:ok(not ok, c[2]:gsub("%%", "") .. ": raised")
    t:like(err, c[2], "naming it: " .. tostring(err))
  end
  local n = 0
  for _ in io.popen("ls -A '" .. dir .. "/pickup'"):lines() do n = n + 1 end
  t:is(n, 0, "nothing queued")
  t:ok(sp:enqueue(m, { from = "pbx@example.com", to = { "ops@example.com" } }), "without a NUL: queued")
  sp:close()
  os.execute("rm -rf '" .. dir .. "'")
end)

return tap.done()
