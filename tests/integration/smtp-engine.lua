-- The SMTP engine against the real peers started by smtp-engine.sh (ports in the
-- environment): every security mode, AUTH mechanisms, connection reuse, the
-- downgrade refusal, certificate verification, failover, the session deadline.
local tap = require "tap"
local mh = require "mailhook"
local smtp = require "mailhook.smtp"

local env = os.getenv
local P = {
  starttls = tonumber(env "PORT_starttls"), implicit = tonumber(env "PORT_implicit"),
  plain = tonumber(env "PORT_plain"), sink = tonumber(env "PORT_sink"), trickle = tonumber(env "PORT_trickle"),
}
local CA = env "CERTS" .. "/ca.crt"
local T = env "TMPD"

local function cfg(t)
  local c = { from = "sender@example.test", helo_name = "client.test", tls = "auto",
              connect_timeout = 5, command_timeout = 10, data_timeout = 10, session_deadline = 20 }
  for k, v in pairs(t) do c[k] = v end
  return c
end

local read = tap.slurp

-- the messages a peer stored, in order
local function mails(name)
  local out = {}
  local p = io.popen("ls " .. T .. "/mail-" .. name .. " 2>/dev/null")
  for f in p:lines() do
    local n = f:match("^(%d+)%.eml$")
    if n then out[#out + 1] = { eml = read(T .. "/mail-" .. name .. "/" .. f),
                                json = read(T .. "/mail-" .. name .. "/" .. n .. ".json") } end
  end
  p:close()
  return out
end

tap.test("smtp-sink: opportunistic plain when tls_required is false, reuse, check_sender", function(t)
  local s, err, info = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.sink, tls_required = false })
  t:ok(s, "connected", err)
  if not s then return end
  local i = s:info()
  t:is(i.security, "none", "plain: the sink offers no STARTTLS")
  t:is(i.address, "127.0.0.1", "address reported")
  t:ok(i.pipelining, "PIPELINING seen")
  t:is(i.chunking, false, "no CHUNKING: smtp-sink does not offer it (DATA is used)")
  for n = 1, 3 do
    local r, e = s:send { from = "a@example.test", to = { "b@example.test", "c@example.test" },
                          data = "Subject: " .. n .. "\r\n\r\nbody " .. n .. "\r\n" }
    t:ok(r and #r.accepted == 2 and r.reply.smtp == 250, "message " .. n .. " accepted on the same session", e)
  end
  t:is(s:check_sender("a@example.test"), true, "MAIL FROM + RSET accepted")
  t:ok(s:alive(), "still alive")
  t:is(s:quit(), true, "QUIT")
  t:ok(not s:alive(), "closed after QUIT")
  s:close()
end)

tap.test("STARTTLS required + AUTH PLAIN with our CA; capabilities from after TLS", function(t)
  local s, err, info = smtp.connect(cfg { server = { "localhost" }, port = P.starttls, auth = true,
    username = "user", password_command = "echo secret", tls_ca_file = CA })
  t:ok(s, "connected and authenticated", err)
  if not s then return end
  local i = s:info()
  t:is(i.security, "starttls", "STARTTLS used")
  t:is(i.address, "127.0.0.1", "every address tried (::1 refused, 127.0.0.1 taken)")
  t:like(i.tls_version or "", "^TLSv1%.[23]$", "TLS 1.2 or 1.3")
  t:ok(i.cert and i.cert.verified, "certificate verified")
  t:like(i.cert and i.cert.subject or "", "CN=localhost", "certificate subject")
  t:like(i.cert and i.cert.issuer or "", "mailhook test CA", "issuer")
  t:like(i.cert and i.cert.not_after or "", "^%d%d%d%d%-%d%d%-%d%d", "expiry")
  t:is(i.auth_mechanism, "plain", "PLAIN chosen (strongest offered for a password)")
  local joined = table.concat(i.capabilities, " ")
  t:like(joined, "AUTH", "AUTH seen (aiosmtpd offers it only after TLS)")
  local r, e = s:send { from = "sender@example.test", to = "x@example.test", data = "Subject: tls\n\nhello\n" }
  t:ok(r, "sent", e)
  s:quit()
  s:close()
  local m = mails("starttls")
  t:like(m[#m].json or "", '"tls": "TLSv1%.[23]"', "server saw TLS")
  t:like(m[#m].json or "", '"auth": "user"', "and AUTH")
  t:like(read(smtp.tls_seen_path()) or "", "localhost:" .. P.starttls .. " starttls", "server remembered as seen with STARTTLS")
end)

tap.test("LOGIN, XOAUTH2 and OAUTHBEARER; an expired token is fetched again once", function(t)
  local s, err = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.starttls, auth = true,
    auth_mechanism = "login", username = "user", password_command = "echo secret", tls_ca_file = CA })
  t:ok(s, "LOGIN", err)
  if s then t:is(s:info().auth_mechanism, "login", "as asked"); s:close() end
  for _, mech in ipairs { "xoauth2", "oauthbearer" } do
    local flag = T .. "/token-" .. mech
    local cmd = "if [ -e " .. flag .. " ]; then echo good-token; else touch " .. flag .. "; echo expired; fi"
    s, err = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.starttls, auth = true,
      username = "user", oauth_token_command = cmd, tls_ca_file = CA, auth_mechanism = mech })
    t:ok(s, mech .. " after one refreshed token", err)
    if s then t:is(s:info().auth_mechanism, mech, mech); s:close() end
  end
  s, err = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.starttls, auth = true,
    username = "user", oauth_token_command = "echo never-good", tls_ca_file = CA })
  t:ok(not s, "a bad token fails")
  t:like(err or "", "535", "with the server's reply")
end)

tap.test("auth failures are named", function(t)
  local s, err, info = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.starttls, auth = true,
    username = "user", password_command = "echo wrong", tls_ca_file = CA })
  t:ok(not s, "wrong password fails")
  t:is(info and info.stage, "auth", "stage auth")
  t:is(info and info.smtp, 535, "server code")
  s, err, info = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.starttls, auth = true,
    username = "user", password_command = "printf ''", tls_ca_file = CA })
  t:like(err or "", "^auth = true but the password is empty", "empty password said exactly")
  t:is(info and info.stage, "auth", "stage auth")
end)

tap.test("implicit TLS", function(t)
  local s, err = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.implicit, tls = "implicit",
    auth = true, username = "user", password_command = "echo secret", tls_ca_file = CA })
  t:ok(s, "connected", err)
  if not s then return end
  t:is(s:info().security, "implicit", "implicit TLS")
  local r = s:send { from = "sender@example.test", to = { "y@example.test" }, data = "Subject: i\r\n\r\nx\r\n" }
  t:ok(r, "sent")
  s:quit()
  s:close()
end)

tap.test("certificates: system store refuses our CA; the sha256 pin decides when set", function(t)
  local s, err, info = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.implicit, tls = "implicit" })
  t:ok(not s, "unknown CA refused")
  t:is(info and info.stage, "tls", "stage tls")
  t:like(err or "", "certificate verification failed", "reason named: " .. tostring(err))
  s, err = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.implicit, tls = "implicit",
    tls_fingerprint = env "FP" })
  t:ok(s, "right pin accepted", err)
  if s then t:like(s:info().cert.result, "pinned", "reported as pinned"); s:close() end
  s, err, info = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.implicit, tls = "implicit",
    tls_fingerprint = string.rep("AB:", 31) .. "AB" })
  t:ok(not s, "wrong pin refused")
  t:like(err or "", "does not match tls_fingerprint", "reason named")
end)

tap.test("never a silent downgrade", function(t)
  local s, err, info = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.sink, tls = "starttls" })
  t:ok(not s, "STARTTLS required but not offered")
  t:is(info and info.stage, "tls", "stage tls")
  t:like(err or "", "does not offer STARTTLS", "said so")
  -- a server seen with TLS before: auto now insists on TLS, none is refused
  local f = io.open(smtp.tls_seen_path(), "a")
  f:write("127.0.0.1:" .. P.sink .. "\n")
  f:close()
  s, err, info = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.sink, tls_required = false })
  t:ok(not s, "auto refuses plain for a server seen with TLS")
  t:is(info and info.stage, "tls", "stage tls")
  s, err = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.sink, tls = "none", tls_required = false })
  t:ok(not s, "tls = none refused too")
  t:like(err or "", "seen with TLS", "naming why")
  s, err = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.plain, tls = "none", auth = true,
    username = "user", password_command = "echo secret" })
  t:ok(not s, "tls = none with auth (tls_required by default) refused")
end)

tap.test("failover, SIZE, dot-stuffing and CRLF through a real server", function(t)
  local s, err = smtp.connect(cfg { server = { "no-such-host.invalid", "127.0.0.1" }, port = P.plain,
    tls_required = false })
  t:ok(s, "second server of the list used", err)
  if not s then return end
  local big = "Subject: big\r\n\r\n" .. string.rep(string.rep("x", 99) .. "\r\n", 2000)
  local r, e, info = s:send { from = "a@example.test", to = { "b@example.test" }, data = big }
  t:ok(not r, "message over SIZE refused")
  t:is(info and info.stage, "mail", "before MAIL")
  t:is(info and info.class, "permanent", "permanently")
  t:ok(s:alive(), "session still usable")
  local body = "Subject: dots\n\na\n.\nb\r.\rc\rd\n..e\n.x"
  r, e = s:send { from = "a@example.test", to = { "b@example.test" }, data = body }
  t:ok(r, "tricky body accepted", e)
  s:quit()
  s:close()
  local m = mails("plain")
  t:is(m[#m].eml, "Subject: dots\r\n\r\na\r\n.\r\nb\r\n.\r\nc\r\nd\r\n..e\r\n.x\r\n",
       "arrives as data: dots and lone CR/LF kept as lines, not an end of message")
end)

tap.test("a trickling server cannot escape the session deadline", function(t)
  local t0 = mh.monotonic()
  local s, err, info = smtp.connect(cfg { server = { "127.0.0.1" }, port = P.trickle, tls_required = false,
    command_timeout = 60, session_deadline = 1.5 })
  t:ok(not s, "failed")
  local dt = mh.monotonic() - t0
  t:ok(dt >= 1.4 and dt < 4, string.format("after the deadline (%.2f s)", dt))
  t:like(err or "", "deadline", "says deadline")
end)

tap.test("smtp.test report", function(t)
  local r, err, info = smtp.test { cfg = cfg { server = { "127.0.0.1" }, port = P.starttls, auth = true,
    username = "user", password_command = "echo secret", tls_ca_file = CA }, to = "rcpt@example.test" }
  t:ok(r, "test passed", err)
  if not r then return end
  t:ok(r.from_accepted, "From accepted")
  t:ok(r.sent, "test message sent")
  t:is(r.info.security, "starttls", "security")
  t:is(r.info.auth_mechanism, "plain", "mechanism")
  r, err, info = smtp.test { cfg = cfg { server = { "127.0.0.1" }, port = P.starttls, auth = true,
    username = "user", password_command = "echo wrong", tls_ca_file = CA } }
  t:ok(not r, "wrong password fails the test")
  t:is(info and info.stage, "auth", "stage auth")
  t:ok(info and info.report and info.report.info and info.report.info.tls_version, "report keeps what was learned")
end)

return tap.done()
