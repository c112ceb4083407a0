-- core.smtp c:submit / c:result: misuse raises (a third submission, result() with
-- nothing outstanding, submit while another operation runs), and every outcome,
-- immediate validation failures and "session not usable" included, comes back
-- from c:result() in submission order.  The peer is tests/peers/fault.lua with a
-- script (a server that answers exactly the expected commands, or stalls).
local tap = require "tap"
local mh = require "mailhook"
local core = mh.core

local peers = require "peers"

-- A fault peer running SCRIPT: {port=, rec= (the bytes it received), stop()}.
local function fault(script) return peers.fault(script, { idle = 10 }) end

local OPEN = [[
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250 PIPELINING
]]

-- the replies to one pipelined message (from sN@x.test) and its data
local function accept(n)
  return "expect ^MAIL FROM:<s" .. n .. "@x.test>\nexpect ^RCPT\nexpect ^DATA\n" ..
         "send 250 ok\nsend 250 ok\nsend 354 go\ndata\nsend 250 queued " .. n .. "\n"
end

local function conn(port)
  return core.smtp.new { host = "127.0.0.1", port = port, tls = "none", tls_required = false,
                         connect_timeout = 5, command_timeout = 5, data_timeout = 5, session_deadline = 30 }
end

local function m(n) return "s" .. n .. "@x.test", { "r" .. n .. "@x.test" }, "Subject: " .. n .. "\r\n\r\nbody\r\n" end

tap.test("two outstanding at most; results in submission order, immediate failures included", function(t)
  local f = fault(OPEN .. accept(1) .. accept(2) .. accept(3) .. accept(4) .. "expect ^QUIT\nsend 221 bye\n")
  t:ok(f.port, "fault peer started")
  local c = conn(f.port)
  t:is(c:open(), true, "open")
  local ok, err = pcall(c.result, c)
  t:ok(not ok, "result() with nothing outstanding raises: " .. tostring(err))

  t:is(c:submit(m(1)), true, "submit 1 -> true")
  t:is(c:submit(m(2)), true, "submit 2 -> true")
  ok, err = pcall(c.submit, c, m(9))
  t:ok(not ok, "a third submit raises: " .. tostring(err))
  local r, e = c:result()
  t:is(r and r.reply.text, "queued 1", "result 1 is message 1's", e)
  r, e = c:result()
  t:is(r and r.reply.text, "queued 2", "result 2 is message 2's (nothing lost by the refused third)", e)

  t:is(c:submit(m(3)), true, "submit 3")
  t:is(c:submit("s@x.test", { "bad>\r\nRCPT TO:<evil@x.test" }, "x"), true, "submit with a bad address -> true")
  r, e = c:result()
  t:is(r and r.reply.text, "queued 3", "first the result of 3", e)
  local r2, e2, i2 = c:result()
  t:is(r2, nil, "then the bad address's failure")
  t:is(i2 and i2.code, "EBADADDR", "EBADADDR: " .. tostring(e2))

  t:is(c:submit("s@x.test", {}, "x"), true, "submit with no recipient -> true")
  t:is(c:submit(m(4)), true, "submit 4")
  r2, e2, i2 = c:result()
  t:is(r2, nil, "first the no-recipient failure")
  t:ok(i2 and i2.code, "with a code: " .. tostring(i2 and i2.code) .. " " .. tostring(e2))
  r, e = c:result()
  t:is(r and r.reply.text, "queued 4", "then 4's result", e)
  ok, err = pcall(c.result, c)
  t:ok(not ok, "result() again with nothing outstanding raises")

  t:is(c:quit(), true, "QUIT")
  t:is(c:submit(m(5)), true, "submit after QUIT -> true (the outcome comes from result)")
  r2, e2, i2 = c:result()
  t:is(r2, nil, "session not usable: result fails")
  t:ok(i2 and i2.connection, "info.connection: " .. tostring(e2))
  c:close()
  f.stop()
end)

tap.test("submit while another operation runs raises", function(t)
  local f = fault(OPEN .. "expect ^MAIL\nstall\n")
  local c = conn(f.port)
  t:is(c:open(), true, "open")
  local waiter = mh.spawn(function() return c:check_sender("a@x.test") end)
  local waited = false
  for _ = 1, 40 do
    if waiter:status() == "waiting" then waited = true break end
    mh.sleep(0.01)
  end
  t:ok(waited, "check_sender waits for a reply that never comes")
  local ok, err = pcall(c.submit, c, m(1))
  t:ok(not ok, "submit during check_sender raises: " .. tostring(err))
  ok = pcall(c.result, c)
  t:ok(not ok, "result() during check_sender (no submission outstanding) raises")
  c:close()
  waiter:wait()
  f.stop()
end)

tap.test("submit while AUTH runs raises", function(t)
  local f = fault("send 220 fault.example ESMTP\nexpect ^EHLO\nsend 250-fault.example\nsend 250 AUTH PLAIN\n" ..
                  "expect ^AUTH PLAIN\nstall\n")
  local c = conn(f.port)
  t:is(c:open(), true, "open")
  local waiter = mh.spawn(function() return c:auth("plain", "user", "secret") end)
  local waited = false
  for _ = 1, 40 do
    if waiter:status() == "waiting" then waited = true break end
    mh.sleep(0.01)
  end
  t:ok(waited, "auth waits for a reply that never comes")
  local ok, err = pcall(c.submit, c, m(1))
  t:ok(not ok, "submit during auth raises: " .. tostring(err))
  c:close()
  waiter:wait()
  f.stop()
end)

local poll = peers.poll

-- The gate (smtp.h): "data of message n+1 never leaves while message n is accepted
-- but not yet settled"; through the binding, "settled" can only mean: its result
-- was collected and the owner asked for the next one.  Both tests fail against
-- f41be8c (see the report).  Each needs message 1 to have ended BEFORE the owner's
-- next call; nothing in the API shows that, so the owner idles 0.3 s first (if the
-- replies came later, the test would pass without exercising the hole).
local GATE = OPEN .. [[
expect ^MAIL FROM:<s1@x.test>
expect ^RCPT
expect ^DATA
send 250 ok
send 250 ok
send 354 go
data
expect ^MAIL FROM:<s2@x.test>
expect ^RCPT
expect ^DATA
raw 250 queued 1\r\n250 ok\r\n250 ok\r\n354 go\r\n
data
send 250 queued 2
expect ^QUIT
send 221 bye
]]

local function body2_seen(f)
  return poll(0.5, function() return (tap.slurp(f.rec) or ""):find("Subject: 2", 1, true) ~= nil end)
end

tap.test("gate: result() for message 1 (already ended) does not release message 2's data", function(t)
  local f = fault(GATE)
  local c = conn(f.port)
  t:is(c:open(), true, "open")
  c:submit(m(1))
  c:submit(m(2))
  mh.sleep(0.3)   -- message 1 accepted, message 2 at its 354, gated (see above)
  t:ok(not body2_seen(f), "no body 2 before any result()")
  local r1, e1 = c:result()
  t:is(r1 and r1.reply.text, "queued 1", "result 1", e1)
  t:ok(not body2_seen(f), "no body 2 right after result() returned message 1 (the owner has not settled it)")
  local r2, e2 = c:result()
  t:is(r2 and r2.reply.text, "queued 2", "result 2", e2)
  t:ok(body2_seen(f), "body 2 sent once result() was asked for message 2")
  t:is(c:quit(), true, "QUIT")
  c:close()
  f.stop()
end)

tap.test("gate: a send submitted after message 1 ended, before its result was collected, is gated too", function(t)
  local f = fault(OPEN .. accept(1) .. accept(2) .. "expect ^QUIT\nsend 221 bye\n")
  local c = conn(f.port)
  t:is(c:open(), true, "open")
  c:submit(m(1))
  mh.sleep(0.3)   -- message 1 accepted; its result not collected (see above)
  t:is(c:submit(m(2)), true, "submit 2")
  t:ok(not body2_seen(f), "no body 2 while message 1's result is not collected")
  local r1, e1 = c:result()
  t:is(r1 and r1.reply.text, "queued 1", "result 1", e1)
  local r2, e2 = c:result()
  t:is(r2 and r2.reply.text, "queued 2", "result 2", e2)
  t:is(c:quit(), true, "QUIT")
  c:close()
  f.stop()
end)

-- c:result(true), the deliverer's brief result: the number of recipients when
-- every one took the message; any other outcome exactly as without it
tap.test("result(brief): an integer only when every recipient took the message", function(t)
  local two = "expect ^MAIL FROM:<s1@x.test>\nexpect ^RCPT TO:<a@x.test>\nexpect ^RCPT TO:<b@x.test>\nexpect ^DATA\n" ..
              "send 250 ok\nsend 250 ok\nsend 250 ok\nsend 354 go\ndata\nsend 250 queued 1\n"
  local one_refused = "expect ^MAIL FROM:<s2@x.test>\nexpect ^RCPT TO:<a@x.test>\nexpect ^RCPT TO:<c@x.test>\n" ..
              "expect ^DATA\nsend 250 ok\nsend 250 ok\nsend 550 5.1.1 no such user\nsend 354 go\ndata\n" ..
              "send 250 queued 2\n"
  local data_refused = "expect ^MAIL FROM:<s4@x.test>\nexpect ^RCPT\nexpect ^DATA\n" ..
              "send 250 ok\nsend 250 ok\nsend 354 go\ndata\nsend 554 5.6.0 refused\n"
  local f = fault(OPEN .. two .. one_refused .. accept(3) .. data_refused .. "expect ^QUIT\nsend 221 bye\n")
  local c = conn(f.port)
  t:is(c:open(), true, "open")
  local body = "Subject: x\r\n\r\nbody\r\n"
  t:is(c:submit("s1@x.test", { "a@x.test", "b@x.test" }, body), true, "submit 1 (two recipients)")
  local r, e = c:result(true)
  t:is(r, 2, "brief: both took it -> 2", e)
  t:is(math.type(r), "integer", "an integer, not a table")

  t:is(c:submit("s2@x.test", { "a@x.test", "c@x.test" }, body), true, "submit 2 (one recipient refused)")
  r, e = c:result(true)
  t:is(type(r), "table", "brief: a recipient refused -> the whole result table", e)
  t:is(r and r.accepted[1], "a@x.test", "accepted listed")
  t:is(r and r.rejected[1] and r.rejected[1].rcpt, "c@x.test", "rejected listed")
  t:is(r and r.rejected[1] and r.rejected[1].smtp, 550, "with its reply")
  t:is(r and r.reply and r.reply.text, "queued 2", "and the reply to the dot")

  t:is(c:submit(m(3)), true, "submit 3")
  r, e = c:result()
  t:is(r and r.reply and r.reply.text, "queued 3", "result() after a brief one: the table again (not sticky)", e)

  t:is(c:submit("s4@x.test", { "r4@x.test" }, body), true, "submit 4 (refused at the dot)")
  local r4, e4, i4 = c:result(true)
  t:is(r4, nil, "brief: a refused message fails as without it")
  t:is(i4 and i4.smtp, 554, "with the reply: " .. tostring(e4))
  t:is(c:quit(), true, "QUIT")
  c:close()
  f.stop()
end)

-- A spool entry loaded with {data = N, buffer = true} (the deliverer's load)
-- carries its data as a handle: submit and send take it as they take a string.
tap.test("submit and send take a spool entry's data handle", function(t)
  local dir = io.popen("mktemp -d ${TMPDIR:-/tmp}/mh-lua-submit.XXXXXX"):read("l")
  local sp = assert(core.spool.open(dir))
  local body1 = "Subject: handle 1\r\n\r\nfirst " .. string.rep("z", 200) .. "\r\n"
  local body2 = "Subject: handle 2\r\n\r\nsecond\r\n.dot line\r\n"
  local id1 = assert(sp:enqueue(body1, { from = "s1@x.test", to = { "r1@x.test" } }))
  local id2 = assert(sp:enqueue(body2, { from = "s2@x.test", to = { "r2@x.test" } }))
  local f = fault(OPEN .. accept(1) .. accept(2) .. "expect ^MAIL FROM:<s3@x.test>\nexpect ^RCPT\nexpect ^DATA\n" ..
                  "send 250 ok\nsend 250 ok\nsend 354 go\ndata\nsend 250 queued 3\nexpect ^QUIT\nsend 221 bye\n")
  local c = conn(f.port)
  t:is(c:open(), true, "open")
  local e1 = sp:load(id1, { data = 4096, buffer = true, now = true })
  local e2 = sp:load(id2, { data = 4096, buffer = true, now = true })
  t:is(type(e1.data), "userdata", "the entry's data is a handle")
  t:is(c:submit(e1.from, e1.to, e1.data), true, "submit with a handle")
  t:is(c:submit(e2.from, e2.to, e2.data), true, "submit the second")
  -- the submission took the bytes: freed there, not left to the collector,
  -- which cannot see the 8 KiB buffer behind a handle (a 20,000 drain grew 16 MB)
  t:is(e1.data:bytes(), nil, "a submitted handle holds no bytes any more")
  t:is(#e1.data, #body1, "its length is still told")
  t:ok(tostring(e1.data):find("submitted", 1, true), "tostring says it was submitted: " .. tostring(e1.data))
  local again, aerr = pcall(c.submit, c, e1.from, e1.to, e1.data)
  t:ok(not again and tostring(aerr):find("submitted already", 1, true),
       "submitting it again raises, naming why: " .. tostring(aerr))
  e1, e2 = nil, nil
  collectgarbage(); collectgarbage()   -- the handles go: the session copied their bytes at submit
  local r, e = c:result()
  t:is(r and r.reply.text, "queued 1", "result 1", e)
  r, e = c:result()
  t:is(r and r.reply.text, "queued 2", "result 2", e)
  local e3 = sp:load(id1, { data = 4096, buffer = true, now = true })
  r, e = c:send("s3@x.test", { "r3@x.test" }, e3.data)
  t:is(r and r.reply.text, "queued 3", "send with a handle", e)
  local ok, err = pcall(c.submit, c, "s@x.test", { "r@x.test" }, io.stdout)
  t:ok(not ok and tostring(err):find("data", 1, true), "another userdata is no data: " .. tostring(err))
  t:is(c:quit(), true, "QUIT")
  c:close()
  local rec = tap.slurp(f.rec) or ""
  f.stop()
  t:ok(rec:find(body1 .. ".\r\n", 1, true), "message 1's bytes reached the server whole")
  t:ok(rec:find("second\r\n..dot line\r\n.\r\n", 1, true), "message 2's too, its dot line stuffed")
  local _, n = rec:gsub("first z", "")
  t:is(n, 2, "the third send carried message 1's bytes again")
  sp:close()
  os.execute("rm -rf '" .. dir .. "'")
end)

-- The recipient list is built on the C stack up to 16, past that in a
-- userdata: both hold every address to the end of the submission.
tap.test("submit: 16 recipients and 20, each one sent", function(t)
  local function many(n, k)
    return "expect ^MAIL FROM:<s" .. k .. "@x.test>\n" .. string.rep("expect ^RCPT\n", n) .. "expect ^DATA\n" ..
           "send 250 ok\n" .. string.rep("send 250 ok\n", n) .. "send 354 go\ndata\nsend 250 queued " .. k .. "\n"
  end
  local f = fault(OPEN .. many(16, 1) .. many(20, 2) .. "expect ^QUIT\nsend 221 bye\n")
  local c = conn(f.port)
  t:is(c:open(), true, "open")
  local function rcpts(n, k)
    local r = {}
    for i = 1, n do r[i] = "r" .. k .. "-" .. i .. "@x.test" end
    return r
  end
  t:is(c:submit("s1@x.test", rcpts(16, 1), "Subject: 1\r\n\r\nx\r\n"), true, "16 recipients")
  collectgarbage()
  local r, e = c:result()
  t:is(r and #r.accepted, 16, "all 16 accepted", e)
  t:is(c:submit("s2@x.test", rcpts(20, 2), "Subject: 2\r\n\r\nx\r\n"), true, "20 recipients")
  collectgarbage()
  r, e = c:result()
  t:is(r and #r.accepted, 20, "all 20 accepted", e)
  t:is(c:quit(), true, "QUIT")
  c:close()
  local rec = tap.slurp(f.rec) or ""
  f.stop()
  t:ok(rec:find("RCPT TO:<r1-16@x.test>", 1, true) and rec:find("RCPT TO:<r2-20@x.test>", 1, true),
       "the last recipient of each was sent")
end)

-- mailhook.smtp's session (mh.smtp.connect): send and submit check the
-- message's fields, as the rest of the API checks its options.  A key no
-- message has (s:send{..., bodi = text}: "data or path required", not the key;
-- {..., data = d, ofset = 5}: sent from byte 0) or an argument too many was
-- taken silently.  The deliverer's spool entries carry more fields (id,
-- attempts, ...): they go through smtp.submit_entry, unchecked.
tap.test("session send/submit: an unknown message field raises, naming it and the method", function(t)
  local smtp = require "mailhook.smtp"
  local f = fault(OPEN .. accept(1) .. accept(2) .. "expect ^QUIT\nsend 221 bye\n")
  local s, cerr = smtp.connect { server = "127.0.0.1", port = f.port, tls = "none", tls_required = false,
                                 helo_name = "client.x.test", connect_timeout = 5, command_timeout = 5 }
  t:ok(s, "connected: " .. tostring(cerr))
  if not s then f.stop() return end
  local body = "Subject: 1\r\n\r\nbody\r\n"
  local known = "(known: from, to, data, path, offset, size, from_params, to_params)"
  for _, c in ipairs {
    { "send bodi", s.send, { s, { from = "s1@x.test", to = "r1@x.test", bodi = body } },
      "session:send: unknown option 'bodi' " .. known },
    { "send ofset", s.send, { s, { from = "s1@x.test", to = { "r1@x.test" }, data = body, ofset = 5 } },
      "session:send: unknown option 'ofset' " .. known },
    { "submit to_parms", s.submit, { s, { from = "s1@x.test", to = { "r1@x.test" }, data = body, to_parms = {} } },
      "session:submit: unknown option 'to_parms' " .. known },
    { "send extra", s.send, { s, { from = "s1@x.test", to = "r1@x.test", data = body }, true },
      "session:send: takes at most 1 argument (got 2)" },
    { "submit a string", s.submit, { s, body }, "session:submit: message must be a table {from =, to =, data = | " ..
      "path =} (got string)" },
    { "send from 5", s.send, { s, { from = 5, to = "r1@x.test", data = body } },
      "session:send: from must be an address (a string; \"\" the null sender) (got number)" },
    { "send to[2]", s.send, { s, { from = "s1@x.test", to = { "r1@x.test", 7 }, data = body } },
      "session:send: to[2] must be an address (a string) (got number)" },
    { "submit offset", s.submit, { s, { from = "s1@x.test", to = "r1@x.test", path = "/x", offset = "5" } },
      "session:submit: offset must be a whole number (got string)" },
    { "submit offset 5.5", s.submit, { s, { from = "s1@x.test", to = "r1@x.test", path = "/x", offset = 5.5 } },
      "session:submit: offset must be a whole number (got 5.5)" },
    { "send no data", s.send, { s, { from = "s1@x.test", to = "r1@x.test" } }, "session:send: data or path required" },
    { "quit extra", s.quit, { s, true }, "session:quit: takes no arguments (got 1)" },
    { "result extra", s.result, { s, 1 }, "session:result: takes no arguments (got 1)" },
    { "check_sender extra", s.check_sender, { s, "a@x.test", "b@x.test", 1 },
      "session:check_sender: takes at most 2 arguments (got 3)" },
    { "info extra", s.info, { s, 1 }, "session:info: takes no arguments (got 1)" },
  } do
    local ok, err = pcall(c[2], table.unpack(c[3]))
    t:is(ok, false, c[1] .. ": raises")
    t:is(err, c[4], c[1])
  end
  -- at the script's line, not inside the library
  local ok, err = pcall(function() local r = s:send { from = "s1@x.test", to = "r1@x.test", bodi = body }; return r end)
  t:ok(not ok and tostring(err):match("^[^:]*test%-smtp%-submit%.lua:%d+: session:send: unknown option 'bodi'"),
       "the caller's line: " .. tostring(err))
  ok, err = pcall(function() local r = s:submit { from = 5, to = "r1@x.test", data = body }; return r end)
  t:ok(not ok and tostring(err):match("^[^:]*test%-smtp%-submit%.lua:%d+: session:submit: from must be"),
       "a wrong type too: " .. tostring(err))
  -- a message as documented still goes
  local r, e = s:send { from = "s1@x.test", to = { "r1@x.test" }, data = body, from_params = nil }
  t:is(r and r.reply.text, "queued 1", "a send with the message's fields", e)
  -- a spool entry with every field it carries: refused by submit (not a
  -- message), taken by submit_entry (the deliverer's)
  local entry = { id = "0000000000000002", path = "/nonexistent", state = "pickup", offset = 0, size = 0,
                  queued_at = 1, from = "s2@x.test", to = { "r2@x.test" }, all = { "r2@x.test" }, utf8 = false,
                  done = {}, refused = {}, attempts = 1, next_attempt = 0, last_reply = "451 x", data = body }
  ok, err = pcall(s.submit, s, entry)
  t:ok(not ok and tostring(err):find("^session:submit: unknown option '"), "a spool entry is no message: " ..
       tostring(err))
  t:is(smtp.submit_entry(s, entry), true, "submit_entry takes it")
  r, e = s:result()
  t:is(r and r.reply.text, "queued 2", "and it is sent", e)
  t:is(s:quit(), true, "QUIT")
  s:close()
  local rec = tap.slurp(f.rec) or ""
  f.stop()
  local _, n = rec:gsub("MAIL FROM", "")
  t:is(n, 2, "nothing left for a refused call: two MAIL FROM")
end)

-- s:submit{path =, offset = 5.0}: the engine (lua_tointegerx) takes a float of
-- integral value (JSON, a division); the table check refused it, saying "got
-- number" (found by review3)
tap.test("session:submit takes an integral float offset and size, as the engine does", function(t)
  local smtp = require "mailhook.smtp"
  local got
  local fake = { submit_file = function(_, from, rcpts, path, off, size) got = { off, size } return true end }
  local s = setmetatable({ c = fake }, smtp.Session)
  local ok, err = pcall(s.submit, s, { from = "a@x.test", to = "b@x.test", path = "/x", offset = 5.0, size = 100.0 })
  t:ok(ok, "offset = 5.0 taken: " .. tostring(err))
  t:ok(ok and got and got[1] == 5, "passed on as 5")
end)

return tap.done()
