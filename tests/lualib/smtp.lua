-- smtp.lua — the SMTP engine from a stock lua5.4 against a real server
-- (aiosmtpd, STARTTLS + AUTH, our own CA): mh.smtp.test, a send on a session,
-- and mh.enqueue + mh.queue.flush delivering the queue.  All blocking calls
-- from the main thread: no task, no mh.run.  $MAILHOOK_CONF names settings
-- for the server (tls = starttls, tls_ca_file, auth).
--   lua5.4 smtp.lua MAILDIR
local t = require "lltap"
local mh = require "mailhook"
local maildir = assert(arg[1])

local report, err, info = mh.smtp.test { to = "test@example.org" }
t.ok(report, "mh.smtp.test succeeds", err)
report = report or (info and info.report) or {}
t.is(report.info and report.info.security, "starttls", "it negotiated STARTTLS")
t.like(report.info and report.info.tls_version or "", "^TLSv1%.[23]", "TLS 1.2 or 1.3")
t.is(report.info and report.info.auth_mechanism, "plain", "and authenticated (AUTH PLAIN)")
t.ok(report.info and report.info.cert and report.info.cert.verified, "the certificate was verified")
t.is(report.sent, true, "the test message went out")

local cfg = assert(mh.settings.load())
local s, serr = mh.smtp.connect(cfg)
t.ok(s, "mh.smtp.connect: a session", serr)
if s then
  local r, e = s:send { from = cfg.from, to = { "direct@example.org" },
                        data = "From: <" .. cfg.from .. ">\r\nTo: <direct@example.org>\r\nSubject: direct\r\n\r\nsent on a session\r\n" }
  t.ok(r and r.reply and r.reply.smtp == 250, "session:send gets 250", e)
  s:quit()
  s:close()
end

local id = mh.enqueue { to = "queued@example.org", subject = "queued from lua5.4", text = "through the spool" }
t.ok(id, "mh.enqueue")
local summary, ferr = mh.queue.flush()
t.ok(summary, "mh.queue.flush delivers the queue", ferr)
local left = 0
for _ in mh.queue.list("pickup") do left = left + 1 end
t.is(left, 0, "the queue is empty afterwards")

local got = {}
for name in io.popen("ls " .. maildir):lines() do
  if name:match("%.eml$") then got[#got + 1] = t.slurp(maildir .. "/" .. name) end
end
local subjects = {}
for _, m in ipairs(got) do subjects[#subjects + 1] = m:match("\nSubject: ([^\r\n]*)") or "?" end
table.sort(subjects)
t.is(#got, 3, "the server received three messages (test, direct, queued)")
t.ok(table.concat(subjects, "|"):find("queued from lua5.4", 1, true), "one is the queued message", table.concat(subjects, "|"))
t.is(mh.core.handles(), 0, "no handle left open")
