-- mailhook test [--to ADDR] — the Test button: connect, negotiate TLS,
-- authenticate, check that the From address is accepted (MAIL FROM + RSET),
-- QUIT; with --to also send a real test message.  Prints what an
-- administrator needs to act on; never the password.
-- Exit 0 when everything passed, 1 when a stage failed (named), 2 on bad usage.
-- --json: the same facts as one JSON document (result_of below, docs/console.md).
-- The console runs this same script with a table instead of arguments,
-- {to =, cfg =, on_stage = fn(name, report)}, and gets that result table back.
local args = require "mailhook.args"
local smtp = require "mailhook.smtp"

local api = type((...)) == "table" and (...) or nil
local opts, rest
if api then
  opts, rest = { to = api.to, json = true }, {}
else
  opts, rest = args.parse({ ... }, { to = "string", help = "flag", json = "flag" })
end
if not opts then return args.fail("test", rest) end
if opts.help then
  print("usage: mailhook test [--to ADDR] [--json]")
  return 0
end
if #rest > 0 then return args.fail("test", "unexpected argument '" .. rest[1] .. "'") end

local cfg, err
local ok, settings = pcall(require, "mailhook.settings")
if not ok then return args.fail("test", "settings module missing: " .. tostring(settings), 1) end
if api and api.cfg then cfg = api.cfg else cfg, err = settings.load() end
if not cfg then
  if api then return { ok = false, failed_stage = "settings", error = err } end
  if opts.json then
    io.write(require("mailhook.json").encode { ok = false, failed_stage = "settings", error = err }, "\n")
    return 1
  end
  return args.fail("test", err, 1)
end

local HINT = {
  dns = "the server name does not resolve: check `server` and this machine's DNS",
  connect = "nothing answers there: check `server`, `port` and firewalls (465 = implicit TLS, 587 = submission)",
  tls = "TLS failed: check `tls`, `tls_ca_file`, `tls_fingerprint`, or the server's certificate",
  auth = "authentication failed: check `username`, `password`/`password_command`, `auth_mechanism`",
  sender = "the server refuses the From address: use an address this account may send as",
  recipient = "the server refused the test recipient or the message",
  -- by cause (info.why, or info.code EPROTO), before the stage's own hint
  protocol = "the server answered, but not in SMTP: check that `port` is an SMTP port " ..
    "(25, 465 = implicit TLS, 587 = submission) and that nothing in between (a proxy, " ..
    "an antivirus, a firewall) rewrites the traffic",
  requires_tls = "set `tls = starttls` (or `tls = auto`: STARTTLS when the server offers it)",
  requires_tls_auto = "the server offers no STARTTLS on this port: use its implicit-TLS port " ..
    "(465, `tls = implicit`) or its submission port (587)",
  tls_version = "the server's TLS is older than `tls_min_version` allows: update the server's TLS; " ..
    "lower `tls_min_version` only for a legacy server you trust (1.0 and 1.1 are deprecated, RFC 8996)",
  tls_version_13 = "the server does not speak TLS 1.3: set `tls_min_version = 1.2` (the default), " ..
    "or enable TLS 1.3 on the server",
  tls_closed = "the server hung up during the TLS handshake: often it supports no TLS version from " ..
    "`tls_min_version` (%s) up or no cipher in common; also check `tls` " ..
    "(465 = implicit TLS, 587 = STARTTLS) and the server's TLS log",
}

-- The hint for a failure: its cause when known, else its stage.
local function hint_for(info)
  if not info then return nil end
  local why = info.why
  if why == "tls_version" and info.tls_min_version == "1.3" then why = "tls_version_13" end
  if why == "requires_tls" and (cfg.tls or "auto") == "auto" then why = "requires_tls_auto" end
  if not why and info.code == "EPROTO" then why = "protocol" end
  local h = (why and HINT[why]) or HINT[info.stage]
  if h and h:find("%s", 1, true) then h = h:format(info.tls_min_version or "1.2") end
  return h
end

local function row(k, v) io.write(string.format("  %-14s %s\n", k, v)) end

local function show_info(i, stage)
  if not i then return end
  row("server", string.format("%s%s port %s", i.server or "?",
    (i.address and i.address ~= "") and (" (" .. i.address .. ")") or "", tostring(i.port or "?")))
  if not i.address or i.address == "" then return end   -- never connected: nothing more is known
  local sec = ({ implicit = "implicit TLS", starttls = "STARTTLS", none = "none (plain text)" })[i.security]
    or tostring(i.security)
  if i.tls_version then sec = sec .. " (" .. i.tls_version .. ", " .. (i.cipher or "?") .. ")" end
  if i.security == "none" and i.cert and (i.cert.subject or "") ~= "" then
    sec = "TLS attempted, not established: the certificate below was refused"
  elseif i.security == "none" and stage == "tls" and cfg.tls ~= "none" then
    sec = "TLS not established"
  end
  row("security", sec)
  if i.cert and (i.cert.subject or "") ~= "" then
    row("certificate", "subject " .. i.cert.subject)
    row("", "issuer  " .. (i.cert.issuer or "?"))
    row("", "expires " .. (i.cert.not_after or "?"))
    row("", "sha256  " .. (i.cert.fingerprint or "?"))
    row("", "verified " .. (i.cert.verified and "yes" or "NO") .. " (" .. (i.cert.result or "") .. ")")
  end
  if i.capabilities and #i.capabilities > 0 then
    -- each keyword with its parameters as the server sent them ("SIZE 35882577")
    local caps = {}
    for k, c in ipairs(i.capabilities) do caps[k] = (c:gsub(",", " ")) end
    row("capabilities", table.concat(caps, ", "))
  end
  if i.auth_mechanism then
    row("auth", i.auth_mechanism:upper() .. (cfg.username and (" as " .. cfg.username) or ""))
  elseif cfg.auth then
    row("auth", "offered: " .. (#(i.auth_offered or {}) > 0 and table.concat(i.auth_offered, ", ") or "none"))
  else
    row("auth", "not used (auth = false)")
  end
end

-- The result as data: what the text below shows, for --json and the console.
-- stages: dns, connect, tls, auth, sender, recipient in order, each "ok",
-- "failed", "skipped" (not configured) or "not reached", with at_ms (when it
-- completed, from the start of the test) where known.
local STAGES = { "dns", "connect", "tls", "auth", "sender", "recipient" }
local function result_of(report, msg, info)
  local rep = report or (info and info.report) or {}
  local i = rep.info or {}
  local failed = not report and (info and info.stage or "connect") or nil
  local passed, at = {}, rep.stage_at or {}
  for _, st in ipairs(rep.stages or {}) do passed[st] = true end
  if passed.connect or (failed and failed ~= "dns" and i.address and i.address ~= "") then passed.dns = true end
  local optional = { tls = passed.connect and i.security == "none", auth = not cfg.auth, recipient = not opts.to }
  local stages, reached = {}, true
  for _, name in ipairs(STAGES) do
    local state
    if name == failed then state, reached = "failed", false
    elseif passed[name] then state = "ok"
    elseif reached and optional[name] then state = "skipped"
    else state = "not reached" end
    stages[#stages + 1] = { name = name, state = state, at_ms = at[name == "dns" and "connect" or name] }
  end
  local cert = i.cert and (i.cert.subject or "") ~= "" and {
    subject = i.cert.subject, issuer = i.cert.issuer, not_after = i.cert.not_after,
    sha256 = i.cert.fingerprint, verified = i.cert.verified and true or false, result = i.cert.result } or nil
  local caps = {}
  for k, c in ipairs(i.capabilities or {}) do caps[k] = (c:gsub(",", " ")) end
  return {
    ok = report ~= nil, server = cfg.server, port = cfg.port, tls = cfg.tls or "auto", from = cfg.from,
    to = opts.to, username = cfg.auth and cfg.username or nil, stages = stages,
    connection = i.server and {
      server = i.server, address = (i.address ~= "" and i.address) or nil, port = i.port,
      security = i.security, tls_version = i.tls_version, cipher = i.cipher, certificate = cert,
      capabilities = caps, auth_mechanism = i.auth_mechanism, auth_offered = i.auth_offered } or nil,
    from_accepted = rep.from_accepted or false, sent = rep.sent or false,
    test_reply = rep.sent and rep.reply or nil,
    failed_stage = failed, error = not report and tostring(msg) or nil,
    reply = not report and info and info.smtp and { smtp = info.smtp, enhanced = info.enhanced,
      text = (tostring(info.text or ""):gsub("\n", " ")) } or nil,
    hint = not report and hint_for(info) or nil,
  }
end

local servers = type(cfg.server) == "table" and table.concat(cfg.server, ", ") or tostring(cfg.server or "(not set)")
if not opts.json then
  io.write("mailhook test: ", servers, " port ", tostring(cfg.port or "?"), ", tls = ", tostring(cfg.tls or "auto"),
    ", from ", tostring(cfg.from or "(not set)"), opts.to and (", test message to " .. opts.to) or "", "\n")
end

local report, msg, info = smtp.test { to = opts.to, cfg = cfg, on_stage = api and api.on_stage }
if opts.json then
  local result = result_of(report, msg, info)
  if api then return result end
  io.write(require("mailhook.json").encode(result), "\n")
  return report and 0 or 1
end
if report then
  show_info(report.info)
  row("from", report.from .. " accepted (MAIL FROM + RSET)")
  if report.sent then row("test message", "sent to " .. report.to .. ": " .. (report.reply or "")) end
  io.write("result: OK\n")
  return 0
end
report = info and info.report or {}
show_info(report.info, info and info.stage)
if report.from_accepted then row("from", report.from .. " accepted") end
io.write("result: FAILED at stage ", tostring(info and info.stage or "?"), "\n")
io.write("  error          ", tostring(msg), "\n")
if info and info.smtp then
  io.write("  server reply   ", tostring(info.smtp), " ", (tostring(info.text or ""):gsub("\n", " ")), "\n")
end
local hint = hint_for(info)
if hint then io.write("  hint           ", hint, "\n") end
return 1
