-- The mail log's lines (lua/mailhook/maillog.lua) as the deliverer calls it, with a
-- logger that records them: which status each recipient gets, the fields, a server
-- reply that tries to start a line of its own, the cases no server was reached.
-- (The sinks themselves — stderr, journal, syslog — are tests/integration/service-log.sh.)
local tap = require "tap"
local maillog = require "mailhook.maillog"

local function deliverer()
  local d = { lines = {}, verbose = true, now = function() return 1000.5 end }
  d.log = {}
  for _, level in ipairs { "debug", "info", "warn", "error" } do
    d.log[level] = function(line) d.lines[#d.lines + 1] = level .. " " .. line end
  end
  return d
end

local function entry(t)
  local e = { id = "0000018f2a6b3c4d", from = "pbx@example.com", to = { "a@example.net" }, size = 1100,
              offset = 100, queued_at = 1000, attempts = 0, relay = "mx.example.net[192.0.2.1]:25" }
  for k, v in pairs(t or {}) do e[k] = v end
  return e
end

tap.test("sent: every field, Postfix's order", function(t)
  local d, e = deliverer(), entry()
  maillog.note(e, { accepted = { "a@example.net" }, reply = { smtp = 250, enhanced = "2.0.0", text = "Ok: queued" } })
  maillog.outcome(d, e, "sent")
  t:is(d.lines[1], "info 0000018f2a6b3c4d: to=<a@example.net>, from=<pbx@example.com>, size=1000, "
       .. "relay=mx.example.net[192.0.2.1]:25, delay=0.50, attempts=1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)",
       "the line")
  t:is(#d.lines, 1, "one line")
  maillog.outcome(d, e, "sent")
  t:is(#d.lines, 2, "a second outcome of the same attempt has no note left: its own line, not a copy")
end)

tap.test("uid=: who submitted it (the spool's X-Submitter-Uid), after from=", function(t)
  local d, e = deliverer(), entry { uid = 65534 }
  maillog.note(e, { accepted = { "a@example.net" }, reply = { smtp = 250, enhanced = "2.0.0", text = "Ok" } })
  maillog.outcome(d, e, "sent")
  t:is(d.lines[1], "info 0000018f2a6b3c4d: to=<a@example.net>, from=<pbx@example.com>, uid=65534, size=1000, "
       .. "relay=mx.example.net[192.0.2.1]:25, delay=0.50, attempts=1, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
       "the line")
  d, e = deliverer(), entry { uid = 0 }
  maillog.outcome(d, e, "failed", "550 no")
  t:like(d.lines[1], "from=<pbx@example%.com>, uid=0, size=", "root's uid 0 is said too")
end)

tap.test("a long reply is cut on a character boundary", function(t)
  local d, e = deliverer(), entry()
  maillog.outcome(d, e, "failed", "550 " .. ("é"):rep(400))
  local rep = d.lines[1]:match("status=failed %((.*)%)$")
  t:ok(rep and utf8.len(rep), "the reply in the line is UTF-8 (" .. tostring(rep and #rep) .. " bytes)")
  t:is((rep or ""):gsub("é", ""), "550 ...", "whole characters, then ...")
  t:ok(rep and #rep <= maillog.REPLY_MAX, "at most REPLY_MAX bytes")
end)

tap.test("mixed recipients: each its own status and reply", function(t)
  local d, e = deliverer(), entry { to = { "ok@x.net", "busy@x.net", "gone@x.net" } }
  maillog.note(e, { accepted = { "ok@x.net" }, reply = { smtp = 250, text = "2.0.0 fine" },
                    rejected = { { rcpt = "busy@x.net", smtp = 451, enhanced = "4.2.0", text = "busy" },
                                 { rcpt = "gone@x.net", smtp = 550, enhanced = "5.1.1", text = "no such user" } } })
  maillog.outcome(d, e, "deferred", "busy@x.net: 451 ...; gone@x.net: 550 ...", { "ok@x.net" },
                  { { rcpt = "gone@x.net", reply = "550 5.1.1 no such user" } })
  t:is(#d.lines, 3, "one line per recipient")
  t:like(d.lines[1], "to=<ok@x%.net>.*dsn=2%.0%.0, status=sent %(250 2%.0%.0 fine%)$", "the accepted one: sent")
  t:like(d.lines[2], "to=<busy@x%.net>.*dsn=4%.2%.0, status=deferred %(451 4%.2%.0 busy%)$", "451: deferred, its reply")
  t:like(d.lines[3], "^warn .*to=<gone@x%.net>.*dsn=5%.1%.1, status=failed %(550 5%.1%.1 no such user%)$",
         "550 with a 451 beside it: failed at once (refused for good), its reply, a warning")
  -- below info (verbose = false) the failed one is still said
  d, e = deliverer(), entry { to = { "busy@x.net", "gone@x.net" } }
  d.verbose = false
  maillog.outcome(d, e, "deferred", "451 busy", nil, { { rcpt = "gone@x.net", reply = "550 5.1.1 no such user" } })
  t:is(#d.lines, 1, "not verbose: the failed line alone")
  t:like(d.lines[1], "to=<gone@x%.net>.*status=failed", "it")
end)

tap.test("refused by mailhook before the send: a line of its own, failed", function(t)
  local d, e = deliverer(), entry { to = { "ok@x.net" } }
  local mine = { rcpt = "zo\195\171@x.net", reply = "refused by mailhook (the server was not asked): not ASCII" }
  maillog.note(e, { accepted = { "ok@x.net" }, reply = { smtp = 250, text = "2.0.0 fine" } })
  maillog.outcome(d, e, "failed", "x", nil, { mine })
  t:is(#d.lines, 2, "two lines")
  t:like(d.lines[2], "to=<zo\195\171@x%.net>.*attempts=1, status=failed %(refused by mailhook %(the server was " ..
         "not asked%): not ASCII%)$", "the one no server was asked about")
  d, e = deliverer(), entry { to = {} }
  maillog.outcome(d, e, "failed", "x", nil, { mine })
  t:is(#d.lines, 1, "also when it was the only recipient (no send)")
  d, e = deliverer(), entry { to = {} }
  maillog.outcome(d, e, "failed", "x", nil, nil, { { rcpt = "bad@@x.net", reply = "not an address: left out" } })
  t:like(d.lines[1], "to=<bad@@x%.net>.*status=failed %(not an address: left out%)$", "and one left out at intake")
end)

tap.test("failed is a warning; expired in the queue: relay=none, attempts unchanged", function(t)
  local d, e = deliverer(), entry { relay = false, attempts = 7 }
  e.relay = nil
  maillog.outcome(d, e, "failed", "expired: in the queue since 2026-12-01")
  t:is(#d.lines, 1, "one line")
  t:like(d.lines[1], "^warn ", "a warning")
  t:like(d.lines[1], "relay=none, delay=0%.50, attempts=7, status=failed %(expired: in the queue since 2026%-12%-01%)$",
         "no relay, the attempts so far, the reason (no dsn when there is no code)")
end)

tap.test("a reply cannot forge a line; long replies are cut", function(t)
  local d, e = deliverer(), entry()
  maillog.outcome(d, e, "deferred", "451 4.0.0 a\r\n0000000000000000: to=<x>, status=sent (250 ok)")
  t:is(#d.lines, 1, "still one line")
  t:ok(not d.lines[1]:find("[\r\n]"), "no CR or LF in it")
  d.lines = {}
  maillog.outcome(d, entry(), "deferred", "451 " .. ("x"):rep(2000))
  t:ok(#d.lines[1] < 800, "a 2000-character reply is cut (" .. #d.lines[1] .. " characters)")
  t:like(d.lines[1], "%.%.%.%)$", "and says so")
end)

-- An address (a quoted local part) or an item left out at intake (an
-- unprivileged caller's `mailhook-drop -l`) wrote fields of its own inside
-- to=<...>: a reader taking the first uid= and status= read the sender's
-- (found by review4).  What could end the field or read as a field is \xNN.
tap.test("an address or an item left out cannot forge fields", function(t)
  local d = deliverer()
  local item = "boss@x>, from=<ceo@x>, uid=0, relay=mx[192.0.2.1]:25, status=sent (250 2.0.0 Ok: queued"
  local e = entry { uid = 65534, to = { "\"a, uid=1, status=sent\"@example.net" },
                    from = "x>, uid=2@example.com" }
  maillog.outcome(d, e, "failed", "not sent", e.to, nil, { { rcpt = item, reply = "left out by mailhook, never sent" } })
  t:is(#d.lines, 2, "a line each")
  for _, l in ipairs(d.lines) do
    t:is(l:match("uid=(%d+)"), "65534", "the first uid= is the submitter's: " .. l)
    t:is(l:match("status=(%a+)"), l:match(".*, status=(%a+)"), "the first status= is the line's own")
    t:ok(not l:match("to=<[^>]*>, from=<[^>]*>.*to=<"), "one to= field")
  end
  t:like(d.lines[1] .. d.lines[2], "to=<\\x22a\\x2c\\x20uid\\x3d1", "the quoted local part, escaped")
  t:like(d.lines[1], "from=<x\\x3e\\x2c\\x20uid\\x3d2@example%.com>", "the sender too")
  d = deliverer()
  maillog.outcome(d, entry(), "sent")
  t:like(d.lines[1], "to=<a@example%.net>, from=<pbx@example%.com>", "a plain address as it is")
end)

tap.test("nothing for no recipients; info lines only when info is logged", function(t)
  local d = deliverer()
  maillog.outcome(d, entry { to = {} }, "sent")
  t:is(#d.lines, 0, "no recipient, no line")
  d.verbose = false
  maillog.outcome(d, entry(), "sent")
  maillog.outcome(d, entry(), "deferred", "451 later")
  t:is(#d.lines, 0, "sent and deferred are info: not built at level warn")
  maillog.outcome(d, entry(), "failed", "550 no")
  t:is(#d.lines, 1, "failed still is")
end)

tap.test("relay() from a session's info", function(t)
  t:is(maillog.relay { info = function() return { server = "smtp.example.com", address = "2001:db8::25", port = 587 } end },
       "smtp.example.com[2001:db8::25]:587", "host[address]:port")
  t:is(maillog.relay { info = function() error("closed") end }, nil, "a session that raises: nil")
  t:is(maillog.relay {}, nil, "no info(): nil")
end)

return tap.done()
