-- badinput.lua — mh.enqueue from a stock lua5.4 given what a careless
-- application gives it: bad values return nil, message, info (info.code and
-- info.class) and queue nothing; a wrong type raises at the caller's line,
-- saying mh.enqueue, not at a line inside the library.  Run by
-- tests/integration/lualib.sh with MAILHOOK_CONF allowing intake:
--   lua5.4 badinput.lua SCRATCH_DIR
local t = require "lltap"
local dir = assert(arg[1], "usage: badinput.lua DIR")
local mh = require "mailhook"
local spool = dir .. "/bad-spool"
mh.configure{ spool = spool }

local function count()
  local n = 0
  local p = io.popen("ls '" .. spool .. "/pickup' 2>/dev/null")
  for l in p:lines() do if l:match("%.eml$") then n = n + 1 end end
  p:close()
  return n
end

-- values: nil, message, info, nothing queued
local function refused(fields, code, pat, desc)
  local id, err, info = mh.enqueue(fields)
  t.ok(id == nil and type(err) == "string" and type(info) == "table", desc .. ": nil, message, info",
       tostring(id) .. " " .. tostring(err))
  t.like(err, pat, desc .. ": the message says what")
  t.is(info and info.code, code, desc .. ": info.code")
end
local good = { to = "ops@example.com", subject = "s", text = "t" }
local function with(k, v) local f = {} for a, b in pairs(good) do f[a] = b end f[k] = v return f end
refused(with("to", ""), "EBADADDR", "empty address", "an empty recipient")
refused(with("to", "a@b.c\r\nBcc: x@y.z"), "EBADHDR", "CR, LF or NUL", "CR/LF in a recipient")
refused(with("subject", "s\r\nBcc: x@y.z"), "EBADHDR", "CR, LF or NUL", "CR/LF in the subject")
refused(with("subject", "s\nX-Injected: y"), "EBADHDR", "CR, LF or NUL", "a bare LF in the subject")
refused(with("headers", { ["X-A"] = "v\r\nBcc: e@f.g" }), "EBADHDR", "X%-A", "CR/LF in a header value")
refused(with("attachments", { { path = dir .. "/no-such.pdf" } }), "ENOENT", "no%-such%.pdf", "a missing attachment")
refused(with("attachments", { { path = dir } }), "ENOTREG", "not a regular file", "a folder as attachment")
refused({}, "EINVAL", "no recipient", "no recipient at all")
t.is(count(), 0, "nothing queued by any of them")

-- types: a raise at the caller's line, naming mh.enqueue
local function raises(fields, pat, desc)

  local ok, err = pcall(mh.enqueue, fields)
  t.ok(not ok, desc .. ": raises")
  t.like(err, pat, desc .. ": says what")
  t.ok(not tostring(err):find("lua/mailhook/", 1, true), desc .. ": not located inside the library", err)
  t.ok(tostring(err):find("^mh%.enqueue:") ~= nil, desc .. ": names mh.enqueue", err)

end
raises(nil, "expects a table", "no table")
raises(with("to", 5), "to must be a string or a table", "a number as recipient")
raises(with("subject", {}), "subject must be a string", "a table as subject")
raises(with("headers", "X-A: v"), "headers must be a table", "headers as a string")
raises(with("bogus", 1), "unknown field 'bogus'", "an unknown field")
-- called directly (not through pcall): the position is the caller's line
local ok, err = pcall(function() mh.enqueue(with("to", true)) end)
t.like(err, "badinput%.lua:%d+: mh%.enqueue: to must be", "a raise points at the caller's file and line")
t.is(count(), 0, "nothing queued")

-- and a good one after all that
t.ok(mh.enqueue(good), "a good message is queued after the refusals")
t.is(count(), 1, "one file in the spool")

