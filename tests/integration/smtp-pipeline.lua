-- Pipelining across messages against the peers started by smtp-pipeline.sh (ports,
-- record files and outputs in the environment): s:submit / s:result with two sends
-- in flight, results in submission order, the gate, and what a failing session
-- does to the queued message.
local tap = require "tap"
local mh = require "mailhook"
local smtp = require "mailhook.smtp"

local env = os.getenv
local read = tap.slurp

local function cfg(port, t)
  local c = { server = { "127.0.0.1" }, port = port, tls = "none", tls_required = false,
              helo_name = "client.test", connect_timeout = 5, command_timeout = 5, data_timeout = 5,
              session_deadline = 30 }
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

-- Message n: sender sN, recipient rN, a body that names n.
local function msg(n)
  return { from = "s" .. n .. "@example.test", to = { "r" .. n .. "@example.test" },
           data = "Subject: pipe " .. n .. "\r\n\r\nbody of message " .. n .. "\r\n" }
end

local poll = require("peers").poll   -- true once fn() is true, false after the time

-- Sends messages 1..n keeping two in flight; returns the results in order, each
-- {r, err, info}.  submit's own outcome is checked: it must return true.
local function pump(t, s, n, make)
  local res, nexti, bad_submit = {}, 1, 0
  local function submit()
    local ok, e = s:submit(make(nexti))
    if ok ~= true then bad_submit = bad_submit + 1; t:diag("submit " .. nexti .. ": " .. tostring(e)) end
    nexti = nexti + 1
  end
  submit()
  if n > 1 then submit() end
  for i = 1, n do
    res[i] = table.pack(s:result())
    if nexti <= n then submit() end
  end
  t:is(bad_submit, 0, "every submit returned true")
  return res
end

-- The fault peer named f: its stdout once the connection ended, and the wire it recorded.
local function fault_end(f)
  local out = env("OUT_" .. f)
  poll(10, function() return (read(out) or ""):find("\nEND 1 ") ~= nil end)
  return read(out) or "", read(env("REC_" .. f)) or ""
end

local function count(hay, needle)
  local n, i = 0, 1
  while true do
    local a, b = hay:find(needle, i, true)
    if not a then return n end
    n, i = n + 1, b + 1
  end
end

tap.test("aiosmtpd: 50 messages, two in flight, each arrives once, in order", function(t)
  local s, err = smtp.connect(cfg(tonumber(env "PORT_smtpd")))
  t:ok(s, "connected", err)
  if not s then return end
  t:diag("aiosmtpd announces PIPELINING: " .. tostring(s:info().pipelining))
  local res = pump(t, s, 50, msg)
  local bad = {}
  for i, r in ipairs(res) do
    local ok = r[1] and r[1].reply and r[1].reply.smtp == 250 and #r[1].accepted == 1 and
               r[1].accepted[1] == "r" .. i .. "@example.test"
    if not ok then bad[#bad + 1] = i .. ": " .. tostring(r[2] or (r[1] and r[1].accepted[1])) end
  end
  t:is(#bad, 0, "50 results, in order, each naming its own recipient", table.concat(bad, "; "))
  local seen = {}
  for i, r in ipairs(res) do
    local q = r[1] and r[1].reply and r[1].reply.text:match("queued as (%d+)")
    seen[i] = q and tonumber(q)
  end
  local order_ok = true
  for i = 2, 50 do if not (seen[i] and seen[i - 1] and seen[i] == seen[i - 1] + 1) then order_ok = false end end
  t:ok(order_ok, "the server's queue ids follow the submission order")
  t:is(s:quit(), true, "QUIT")
  s:close()
  local dir = env "MAILDIR"
  local files = {}
  local p = io.popen("ls " .. dir)
  for f in p:lines() do if f:match("^%d+%.eml$") then files[#files + 1] = f end end
  p:close()
  table.sort(files)
  t:is(#files, 50, "the server stored 50 messages")
  local wrong = {}
  for i, f in ipairs(files) do
    local eml = read(dir .. "/" .. f) or ""
    local json = read(dir .. "/" .. f:gsub("%.eml$", ".json")) or ""
    if eml ~= "Subject: pipe " .. i .. "\r\n\r\nbody of message " .. i .. "\r\n" or
       not json:find('"r' .. i .. '@example.test"', 1, true) or
       not json:find('"s' .. i .. '@example.test"', 1, true) then
      wrong[#wrong + 1] = f .. " " .. (eml:match("Subject: pipe (%d+)") or "?")
    end
  end
  t:is(#wrong, 0, "message k stored k-th, exactly once, with its own envelope", table.concat(wrong, ", "))
end)

tap.test("421 right after message 1's 250: message 2 is a connection failure", function(t)
  local s, err = smtp.connect(cfg(tonumber(env "PORT_f421")))
  t:ok(s, "connected", err)
  if not s then return end
  t:is(s:submit(msg(1)), true, "submit 1")
  t:is(s:submit(msg(2)), true, "submit 2")
  local r1, e1 = s:result()
  t:ok(r1 and r1.reply.smtp == 250 and r1.reply.text == "2.0.0 queued as Q1", "message 1 accepted", e1)
  local r2, e2, i2 = s:result()
  t:is(r2, nil, "message 2 failed")
  t:ok(i2 and i2.connection == true, "as a connection failure (info.connection)", e2)
  t:is(i2 and i2.smtp, 421, "with the server's 421")
  t:is(i2 and i2.class, "transient", "transient")
  local rej = i2 and i2.rejected and i2.rejected[1]
  t:ok(rej and rej.rcpt == "r2@example.test" and rej.smtp == nil, "its recipient listed as never answered")
  t:ok(not s:alive(), "session no longer alive")
  s:close()
  local out, wire = fault_end("f421")
  t:ok(not out:find("EXPECT%-FAIL"), "message 2's group arrived before the 250 to message 1's dot", out)
  t:is(count(wire, "MAIL FROM:<s2@example.test>"), 1, "message 2's MAIL was sent")
  t:is(count(wire, "body of message 2"), 0, "message 2's body was not")
  t:is(count(wire, "RSET"), 0, "no RSET between the messages")
end)

tap.test("replies cut across the two messages' replies", function(t)
  local s, err = smtp.connect(cfg(tonumber(env "PORT_fcut")))
  t:ok(s, "connected", err)
  if not s then return end
  s:submit(msg(1))
  -- message 2 from a spool-like file: the bytes before offset must not be sent
  local m2 = msg(2)
  local prefix = "X-Spool-Envelope: not for the wire\n"
  local path = tap.tmpfile(prefix .. m2.data)
  t:is(s:submit { from = m2.from, to = m2.to[1], path = path, offset = #prefix }, true, "submit{path=, offset=}")
  t:is(s:pending(), 2, "two pending")
  local r1, e1 = s:result()
  t:is(r1 and r1.reply.text, "2.0.0 queued as Q1", "message 1's result is message 1's reply", e1)
  local r2, e2 = s:result()
  t:is(r2 and r2.reply.text, "2.0.0 queued as Q2", "message 2's result is message 2's reply", e2)
  t:is(r2 and r2.accepted[1], "r2@example.test", "its recipient")
  t:is(s:quit(), true, "QUIT")
  s:close()
  local out, wire = fault_end("fcut")
  t:ok(not out:find("EXPECT%-FAIL"), "the peer saw the expected commands in order", out)
  -- (message 2 is streamed from its file: BODY=8BITMIME is declared, unscanned)
  local dot1 = wire:find("body of message 1\r\n.\r\nMAIL FROM:<s2@example.test>", 1, true)
  t:ok(dot1, "message 2's MAIL right behind message 1's dot, no RSET")
  t:is(count(wire, "body of message 2\r\n.\r\n"), 1, "message 2's body once")
  t:is(count(wire, "X-Spool-Envelope"), 0, "nothing before offset sent")
  os.remove(path)
end)

tap.test("a server that stalls after message 1's 250: message 2 times out", function(t)
  local s, err = smtp.connect(cfg(tonumber(env "PORT_fstall"), { command_timeout = 1, data_timeout = 8 }))
  t:ok(s, "connected", err)
  if not s then return end
  s:submit(msg(1))
  s:submit(msg(2))
  local r1, e1 = s:result()
  t:ok(r1 and r1.reply.text == "2.0.0 queued as Q1", "message 1 accepted", e1)
  local t0 = mh.monotonic()
  local r2, e2, i2 = s:result()
  local dt = mh.monotonic() - t0
  t:is(r2, nil, "message 2 failed")
  t:like(e2 or "", "timed out", "a timeout")
  t:ok(dt >= 0.7 and dt < 2.5, string.format("within command_timeout = 1 s (%.2f s), not data_timeout = 8 s", dt))
  t:ok(i2 and i2.connection == true, "the session is gone")
  t:is(i2 and i2.smtp, nil, "no server reply reported for it (fails against f41be8c: message 1's 250 leaks in)")
  s:close()
  local out, wire = fault_end("fstall")
  t:ok(not out:find("EXPECT%-FAIL"), "message 2's group was pipelined", out)
  t:is(count(wire, "body of message 2"), 0, "no body 2")
end)

tap.test("550 to message 2's RCPT while message 1 is fine; message 3 after it gets RSET", function(t)
  local s, err = smtp.connect(cfg(tonumber(env "PORT_f550")))
  t:ok(s, "connected", err)
  if not s then return end
  s:submit(msg(1))
  s:submit(msg(2))
  local r1, e1 = s:result()
  t:ok(r1 and r1.reply.text == "2.0.0 queued as Q1" and r1.accepted[1] == "r1@example.test",
       "message 1 accepted", e1)
  local r2, e2, i2 = s:result()
  t:is(r2, nil, "message 2 refused")
  t:is(i2 and i2.stage, "rcpt", "stage rcpt")
  t:is(i2 and i2.smtp, 550, "the 550")
  t:is(i2 and i2.class, "permanent", "permanent")
  t:ok(i2 and not i2.connection, "the session survives")
  local rej = i2 and i2.rejected and i2.rejected[1]
  t:ok(rej and rej.rcpt == "r2@example.test" and rej.smtp == 550, "r2 rejected with 550")
  t:is(s:submit(msg(3)), true, "submit 3")
  local r3, e3 = s:result()
  t:ok(r3 and r3.reply.text == "2.0.0 queued as Q3", "message 3 accepted", e3)
  t:is(s:quit(), true, "QUIT")
  s:close()
  local out, wire = fault_end("f550")
  t:ok(not out:find("EXPECT%-FAIL"), "RSET then message 3's group, as scripted", out)
  t:is(count(wire, "RSET\r\n"), 1, "exactly one RSET (before message 3, not before message 2)")
  t:ok(wire:find("body of message 1\r\n.\r\nMAIL FROM:<s2@", 1, true), "message 2's MAIL right behind the dot")
  t:is(count(wire, "body of message 2"), 0, "no body 2")
end)

tap.test("smtp-sink: 2,000 messages with two in flight, all accepted", function(t)
  local s, err = smtp.connect(cfg(tonumber(env "PORT_sink")))
  t:ok(s, "connected", err)
  if not s then return end
  t:ok(s:info().pipelining, "smtp-sink announces PIPELINING")
  local N = 2000
  local t0 = mh.monotonic()
  local res = pump(t, s, N, function(n)
    return { from = "s@example.test", to = { "r" .. n .. "@example.test" }, data = "Subject: " .. n .. "\r\n\r\nx\r\n" }
  end)
  local dt = mh.monotonic() - t0
  local good = 0
  for i, r in ipairs(res) do
    if r[1] and r[1].reply.smtp == 250 and r[1].accepted[1] == "r" .. i .. "@example.test" then good = good + 1 end
  end
  t:is(good, N, "every result accepted, each naming its own recipient")
  t:diag(string.format("%d messages in %.2f s (%.0f/s; informational, not asserted)", N, dt, N / dt))
  t:is(s:quit(), true, "QUIT")
  s:close()
  local last
  local counted = poll(5, function()
    local o = read(env "SINK_OUT") or ""
    for m in o:gmatch("mesg=(%d+)") do last = tonumber(m) end
    return last == N
  end)
  t:ok(counted, "smtp-sink counted " .. N .. " messages (mesg=" .. tostring(last) .. ")")
end)

return tap.done()
