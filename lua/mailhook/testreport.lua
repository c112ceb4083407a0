-- mailhook.testreport — the Test button's report, in words: what `mailhook test`
-- prints and what the REPL's test() returns, from one place so the two never
-- drift apart.  Runs mailhook.smtp.test and turns its report (or its failure)
-- into the text an administrator acts on: what was negotiated, the stage that
-- failed, the server's reply, and a hint chosen by cause, else by stage.
-- Never shows the password (smtp.test's report holds none).
--
--   local tr = require "mailhook.testreport"
--   local r = tr.run{cfg = cfg, to = nil, timeout = 30}   (waits)
--   r.ok, r.text (the report, one line each), r.warnings {...}, r.report, r.error, r.info
local M = {}

M.HINT = {
  dns = "the server name does not resolve: check `server` and this machine's DNS",
  connect = "nothing answers there: check `server`, `port` and firewalls (465 = implicit TLS, 587 = submission)",
  tls = "TLS failed: check `tls`, `tls_ca_file`, `tls_fingerprint`, or the server's certificate",
  auth = "authentication failed: check `username`, `password`/`password_command`, `auth_mechanism`",
  -- (ENOAUTH: no login was tried, so the credentials are not in question)
  no_mechanism = "the server offers no login mechanism mailhook speaks (PLAIN, LOGIN, XOAUTH2, " ..
    "OAUTHBEARER, CRAM-MD5; DIGEST-MD5, NTLM and GSSAPI are not spoken): enable PLAIN or LOGIN " ..
    "on the server (under TLS), or use its port that offers them (often 587 or 465); the " ..
    "username and password were not sent, so they are not in question",
  no_mechanism_auth = "the server offers no login on this port at all (no AUTH in its EHLO reply): " ..
    "use its submission port (587, or 465 with `tls = implicit`), or set `auth = false` if it " ..
    "takes mail from this machine without a login",
  mechanism_not_offered = "`auth_mechanism` names a mechanism the server does not offer: set " ..
    "`auth_mechanism = auto` (or one it offers)",
  sender = "the server refuses the From address: use an address this account may send as",
  recipient = "the server refused the test recipient or the message",
  -- by cause (info.why, info.waited, or info.code EPROTO), before the stage's own hint
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
  offers_starttls = "the server offers STARTTLS: set tls = auto",
  auth_required = "the server wants a login before it takes mail (530): set `auth = true`, " ..
    "`username` and `password` (or `password_command`)",
  login_wanted = "the server refuses mail without a login, and offers one: set `auth = true`, " ..
    "`username` and `password` (or `password_command`)",
  -- (by the reply's words and codes: a login the server will not take whatever the
  -- password, or a From it will not take from this account)
  auth_disabled = "the server has SMTP AUTH disabled for this account or its organisation (its " ..
    "reply says so: the password is not in question): have its administrator enable SMTP AUTH " ..
    "(authenticated SMTP) for the mailbox and the organisation, or log in with OAuth " ..
    "(`auth_mechanism = xoauth2`, `oauth_token_command`)",
  app_password = "the server wants a stronger login than this account's password (534 5.7.9): " ..
    "an account with two-step verification needs an app password (made in the account's security " ..
    "settings) as `password`, or OAuth (`auth_mechanism = xoauth2`, `oauth_token_command`)",
  send_as = "the server does not let this account send as the From address (not its own address, " ..
    "one it may send as, nor a verified sender): set `from` to such an address (often the login's, " ..
    "`username`), or have the server's administrator allow this one",
  busy = "the server answered but refused the session for now (421: busy, in maintenance, or too " ..
    "many connections): try again later; if it lasts, see the server's log",
  refused_client = "the server answered, and refuses this client at once (its reply above: a " ..
    "blocklist such as Spamhaus, an access rule, or a port that takes no mail from here): ask its " ..
    "administrator to allow this machine's address, or use its submission port (587, with a login)",
  refused_helo = "the server answered, and refuses the greeting (EHLO and HELO): it may not take the " ..
    "name mailhook greets with (set `helo_name` to this machine's fully qualified name, one the " ..
    "server's DNS knows), or not this client's address; its reply above says which",
  plain_greeting = "the server greets in plain text, so this is no implicit-TLS port: set " ..
    "`tls = starttls` (or `auto`), or use its implicit-TLS port (465)",
  not_tls = "something on this port answered the TLS handshake in plain text that is not SMTP (a " ..
    "web server?): check `port` (25, 465 = implicit TLS, 587 = submission)",
  -- a setting missing (server, from): nothing was asked of any server; "the server refuses
  -- the From address" and "nothing answers there" were said for them
  not_set = "a setting is missing, so no server was asked: set it as the error says, then test again",
  too_big = "the message is larger than the server's SIZE limit (in its EHLO reply)",
  helo_rejected = "the server refuses the name mailhook greets with (EHLO, shown in its reply): set " ..
    "`helo_name` to this machine's fully qualified name, one the server's DNS knows " ..
    "(mailhook update helo_name=pbx.example.com)",
  plaintext_auth = "use TLS for the credentials: `tls = auto` (or `starttls`, or `implicit` on port 465); " ..
    "set `allow_plaintext_auth = true` only for a server that cannot do TLS, on a network you trust",
  no_greeting = "something accepts connections on this port but does not speak SMTP (or is stuck): " ..
    "check `server` and `port` (25, 465 = implicit TLS, 587 = submission)",
  -- (tls = starttls or none: an implicit-TLS port greets only after a handshake)
  no_greeting_plain = "something accepts connections on this port but does not speak SMTP (or is stuck), " ..
    "or it is an implicit-TLS port (465), which greets only after a TLS handshake: set `tls = implicit` " ..
    "(or `tls = auto`, which tries it); else check `server` and `port`",
  recipient_temporary = "the server refused the test recipient for now (a 4xx: greylisting, a full or " ..
    "busy mailbox, a rate limit): test again in a few minutes; a message the service sends is retried " ..
    "on its own",
  dns_silent = "the DNS resolver does not answer: check this machine's resolver (/etc/resolv.conf)",
  tls_silent = "something accepts connections on this port but does not answer a TLS handshake: " ..
    "check `port` and `tls` (465 = implicit TLS, 587 = STARTTLS, 25 = plain then STARTTLS)",
  silent = "the server stopped answering (overloaded, or a filter in between holds the traffic); " ..
    "`mailhook test --timeout SECONDS` waits longer",
  -- a refused certificate, by the verifier's reason (info.cert.result): what to change
  cert_host = "the certificate is not for the name in `server`: set `server` to a name the " ..
    "certificate holds (its names above), not an address or another alias",
  cert_expired = "the server's certificate is expired or not yet valid: renew it on the server, " ..
    "and check this machine's clock (`date`)",
  cert_self = "the server's certificate is self-signed: set `tls_fingerprint` to its sha256 above " ..
    "(after checking it with the server's administrator), or give its CA in `tls_ca_file`",
  cert_ca = "the certificate's issuer is not trusted here: set `tls_ca_file` to the issuing CA's " ..
    "certificate (PEM), or pin the server's certificate with `tls_fingerprint`",
  -- (tls_ca_file given: most often its root, and the server sends no intermediate)
  cert_ca_given = "the certificate's issuer is neither in `tls_ca_file` nor among the system's CAs: " ..
    "when `tls_ca_file` holds the root, the server does not send its intermediate certificate (fix " ..
    "the server's chain, or add the intermediate, the issuer above, to `tls_ca_file`: any CA there " ..
    "is trusted as it is); else `tls_ca_file` holds another CA; or pin with `tls_fingerprint`",
  starttls_refused = "the server offers STARTTLS but refused it: its TLS is not set up or not " ..
    "working; fix it on the server, or use its implicit-TLS port (465, `tls = implicit`); mailhook " ..
    "does not fall back to plain text after a refused STARTTLS",
  starttls_refused_optional = "the server offers STARTTLS but refused it: its TLS is not set up or " ..
    "not working; fix it on the server, or use its implicit-TLS port (465, `tls = implicit`); mailhook " ..
    "does not fall back to plain text after a refused STARTTLS (a refusal can be forged), even with " ..
    "`tls_required = false`: to send in plain text knowingly, set `tls = none`",
  starttls_missing = "the server offers no STARTTLS on this port: use its implicit-TLS port " ..
    "(465, `tls = implicit`) or its submission port (587)",
  -- (tls = none set by hand towards a server once reached with TLS: the setting, not an attack)
  downgrade_setting = "this server was reached with TLS before, and `tls = none` would send to it in " ..
    "plain text: set `tls = auto` (or `starttls`); only if it really lost its TLS, delete its line in " ..
    "SPOOL/state/tls-seen",
  downgrade = "this server was reached with TLS before and now offers none: something in between " ..
    "may strip STARTTLS (an attack), or the server changed; only if the change is known, delete its " ..
    "line in SPOOL/state/tls-seen",
  cert_pin = "the server's certificate is not the one `tls_fingerprint` pins: if the server's " ..
    "certificate was replaced, check the sha256 above with its administrator and update `tls_fingerprint`",
}

-- The verifier's reason (OpenSSL's X509 error text, or tls.c's "fingerprint
-- mismatch") -> the cause whose hint says which setting to change.
local CERT_WHY = {
  ["hostname mismatch"] = "cert_host", ["IP address mismatch"] = "cert_host",
  ["certificate has expired"] = "cert_expired", ["certificate is not yet valid"] = "cert_expired",
  ["self-signed certificate"] = "cert_self", ["self signed certificate"] = "cert_self",
  ["self-signed certificate in certificate chain"] = "cert_ca",
  ["self signed certificate in certificate chain"] = "cert_ca",
  ["unable to get local issuer certificate"] = "cert_ca", ["unable to get issuer certificate"] = "cert_ca",
  ["unable to verify the first certificate"] = "cert_ca",
  ["fingerprint mismatch"] = "cert_pin",
}

local function offers_starttls(i)
  for _, cap in ipairs(i and i.capabilities or {}) do
    if tostring(cap):upper():match("^STARTTLS") then return true end
  end
  return false
end

-- Whether the EHLO reply has an AUTH line (any mechanism; "AUTH=LOGIN" too).
local function offers_auth(i)
  for _, cap in ipairs(i and i.capabilities or {}) do
    if tostring(cap):upper():match("^AUTH[%s,=]") or tostring(cap):upper() == "AUTH" then return true end
  end
  return false
end

-- hint_for(cfg, info, report, err) -> the hint line for a failure: its cause when
-- known, else its stage.
function M.hint_for(cfg, info, report, err)
  if not info then return nil end
  local why = info.why
  if why == "tls_version" and info.tls_min_version == "1.3" then why = "tls_version_13" end
  if why == "requires_tls" and (cfg.tls or "auto") == "auto" then why = "requires_tls_auto" end
  if why == "plaintext_auth" and info.starttls_offered then why = "offers_starttls" end
  if not why and info.code == "ENOAUTH" then
    local want = tostring(cfg.auth_mechanism or "auto"):lower()
    local i = report and report.info
    if want ~= "auto" and want ~= "" and #(i and i.auth_offered or {}) > 0 then
      why = "mechanism_not_offered"
    elseif i and not offers_auth(i) and not offers_starttls(i) then
      why = "no_mechanism_auth"
    elseif not (cfg.tls == "none" and offers_starttls(i)) then   -- (else: offers_starttls, below)
      why = "no_mechanism"
    end
  end
  if not why and info.code == "ETIMEDOUT" and info.waited then
    why = info.waited == "greeting" and "no_greeting" or info.waited == "dns" and "dns_silent" or
          info.waited == "connect" and "connect" or info.waited == "tls" and "tls_silent" or "silent"
  end
  local cert = report and report.info and report.info.cert
  if not why and info.stage == "tls" and cert and cert.verified == false then
    why = CERT_WHY[tostring(cert.result or "")]
    if why == "cert_ca" and (cfg.tls_ca_file or "") ~= "" then why = "cert_ca_given" end
  end
  -- STARTTLS answered with an error, or not offered at all (no certificate was involved)
  if not why and info.stage == "tls" and info.code == "ENOTLS" then
    if tonumber(info.smtp) and tonumber(info.smtp) >= 400 then
      why = ((cfg.tls or "auto") == "auto" and not cfg.tls_required and not cfg.auth)
            and "starttls_refused_optional" or "starttls_refused"
    elseif report and report.info and not offers_starttls(report.info) then why = "starttls_missing" end
  end
  if not why and info.code == "EDOWNGRADE" then
    why = cfg.tls == "none" and "downgrade_setting" or "downgrade"
  end
  if why == "no_greeting" and (cfg.tls == "starttls" or cfg.tls == "none") then why = "no_greeting_plain" end
  -- a 530 to MAIL or RCPT with no login configured: RFC 4954's "authentication
  -- required" (a 530 asking for STARTTLS is requires_tls, above), not the From
  if not why and not cfg.auth and (info.stage == "sender" or info.stage == "recipient") and
     tonumber(info.smtp) == 530 then
    why = "auth_required"
  end
  -- "Helo command rejected" (Postfix's reject_non_fqdn_helo_hostname and kin,
  -- said at RCPT): the EHLO name, not the recipient nor the From
  if not why and (info.stage == "sender" or info.stage == "recipient" or info.stage == "connect") and
     tostring(info.text or err or ""):lower():find("helo command rejected", 1, true) then
    why = "helo_rejected"
  end
  -- every recipient refused 5.7.1 / "access denied" while a login is offered
  -- and not used (Postfix's submission port, its relay check), or MAIL refused
  -- for the missing login ("550 Unauthenticated senders not allowed"): the login
  if not why and not cfg.auth and (info.stage == "recipient" or info.stage == "sender") and
     report and report.info and
     require("mailhook.outcome").login_wanted(info.stage == "sender" and
       { stage = "mail", smtp = info.smtp, enhanced = info.enhanced, text = info.text } or
       { stage = "rcpt", accepted = {},
         rejected = { { smtp = info.smtp, enhanced = info.enhanced, text = info.text } } },
       { auth = false, caps = report.info.capabilities }) then
    why = "login_wanted"
  end
  local code, text = tonumber(info.smtp), tostring(info.text or ""):lower()
  -- a login refused whatever the password: SMTP AUTH off for the account ("535
  -- 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for
  -- the Tenant", "... basic authentication is disabled"), or too weak for it
  -- (RFC 4954's 534 5.7.9; "534-5.7.9 Application-specific password required")
  if not why and info.stage == "auth" and code and code >= 500 then
    if text:find("authentication is disabled", 1, true) or text:find("auth is disabled", 1, true) then
      why = "auth_disabled"
    elseif code == 534 or info.enhanced == "5.7.9" or text:find("application-specific password", 1, true) then
      why = "app_password"
    end
  end
  -- the From refused for this account, at MAIL or for the message ("550 5.7.60
  -- SMTP; Client does not have permissions to send as this sender", "554 5.2.252
  -- SendAsDenied", "554 Message rejected: Email address is not verified")
  if not why and code and code >= 500 and (info.stage == "sender" or info.stage == "recipient") and
     (text:find("send as", 1, true) or text:find("sendas", 1, true) or
      text:find("address is not verified", 1, true) or text:find("identities failed", 1, true) or
      text:find("not authorized to send from", 1, true)) then
    why = "send_as"
  end
  -- a 421, at the greeting or later: something answered, and said not now
  if not why and code == 421 then why = "busy" end
  -- a 5xx greeting, or 5xx to EHLO and HELO: something answered, and refuses this
  -- client or its greeting ("nothing answers there" was said for both)
  if not why and info.stage == "connect" and tonumber(info.smtp) and tonumber(info.smtp) >= 500 then
    local e = tostring(err or "")
    if e:find("greeting: 5%d%d") then why = "refused_client"
    elseif e:find("HELO refused: 5%d%d") or e:find("EHLO refused: 5%d%d") then why = "refused_helo" end
  end
  if not why and info.plain_smtp then why = "plain_greeting" end
  -- plain text where a TLS record was due, from a port that gave no SMTP greeting
  if not why and info.stage == "tls" and tostring(err or ""):find("wrong version number", 1, true) then
    why = "not_tls"
  end
  -- (a reply over its bounds, 100 lines or 2000 bytes a line, is one too: it
  -- said "nothing answers there" to a server that answered thousands of lines)
  if not why and (info.code == "EPROTO" or info.code == "ETOOLONG") then why = "protocol" end
  if not why and info.code == "ETOOBIG" then why = "too_big" end
  -- plain text by choice against a server that offers TLS: say so before any
  -- guess about credentials or addresses (the refusal may well be the server's
  -- way of asking for TLS)
  if not why and cfg.tls == "none" and offers_starttls(report and report.info) and
     (info.stage == "auth" or info.stage == "sender" or info.stage == "recipient") then
    why = "offers_starttls"
  end
  -- a 4xx to the test recipient: for now, not for good
  if not why and info.stage == "recipient" and tonumber(info.smtp) and tonumber(info.smtp) >= 400 and
     tonumber(info.smtp) < 500 then
    why = "recipient_temporary"
  end
  local h = (why and M.HINT[why]) or M.HINT[info.stage]
  if h and h:find("%s", 1, true) then h = h:format(info.tls_min_version or "1.2") end
  return h
end

-- header(cfg, opts) -> the first line: what is tested, against what.
function M.header(cfg, opts)
  local servers = type(cfg.server) == "table" and table.concat(cfg.server, ", ") or tostring(cfg.server or "(not set)")
  return "mailhook test: " .. servers .. " port " .. tostring(cfg.port or "?") .. ", tls = " ..
    tostring(cfg.tls or "auto") .. ", from " .. tostring(cfg.from or "(not set)") ..
    (opts.to and (", test message to " .. opts.to) or "")
end

-- The rows about the session (server, security, certificate, capabilities, auth).
local function info_rows(out, cfg, i, stage, failure)
  local function row(k, v) out[#out + 1] = string.format("  %-14s %s", k, v) end
  if not i then return row end
  row("server", string.format("%s%s port %s", i.server or "?",
    (i.address and i.address ~= "") and (" (" .. i.address .. ")") or "", tostring(i.port or "?")))
  if not i.address or i.address == "" then return row end   -- never connected: nothing more is known
  local sec = ({ implicit = "implicit TLS", starttls = "STARTTLS", none = "none (plain text)" })[i.security]
    or tostring(i.security)
  if i.tls_version then sec = sec .. " (" .. i.tls_version .. ", " .. (i.cipher or "?") .. ")" end
  local waited = failure and failure.code == "ETIMEDOUT" and failure.waited
  if i.security == "none" and (waited == "greeting" or (waited == "tls" and #(i.capabilities or {}) == 0)) then
    sec = "not negotiated: the server sent nothing"
  elseif i.security == "none" and i.cert and (i.cert.fingerprint or "") ~= "" then
    sec = "TLS attempted, not established: the certificate below was refused"
  elseif i.security == "none" and stage == "tls" and cfg.tls ~= "none" then
    sec = "TLS not established"
  elseif i.security == "none" and stage == "connect" and #(i.capabilities or {}) == 0 then
    -- (a garbage or 421 greeting: no session, so nothing was negotiated, not "plain text")
    sec = "not negotiated: the session ended before EHLO"
  end
  row("security", sec)
  -- tls = auto and a plain greeting later than greeting_wait (mailhook.smtp, greeting-late)
  if i.greeting_late then
    local path = require("mailhook.smtp").greeting_late_path()
    local after = string.format("in plain text after %.1f s", tonumber(i.greeting_after) or 0)
    if i.greeting_late == "probed" then
      row("greeting", after .. ", later than greeting_wait: mailhook took the silence for implicit " ..
        "TLS, the server answered its ClientHello in plain text, so it connected again and waited " ..
        "for the greeting; remembered in " .. path .. ": later sessions wait for it without a TLS probe")
    else
      row("greeting", after .. ": a server known to greet late (" .. path .. "), waited for " ..
        "without a TLS probe")
    end
  end
  -- (a certificate with an empty subject and only alternative names is valid: RFC 5280)
  if i.cert and (i.cert.fingerprint or "") ~= "" then
    row("certificate", "subject " .. (i.cert.subject ~= "" and i.cert.subject or "(empty)"))
    -- what the host name is checked against: the admin picks `server` among them
    if (i.cert.names or "") ~= "" then row("", "names   " .. i.cert.names) end
    row("", "issuer  " .. (i.cert.issuer or "?"))
    row("", "expires " .. (i.cert.not_after or "?"))
    row("", "sha256  " .. (i.cert.fingerprint or "?"))
    row("", "verified " .. (i.cert.verified and "yes" or "NO") .. " (" .. (i.cert.result or "") .. ")")
  end
  -- an old server that refused EHLO and took HELO: no extensions, so no
  -- STARTTLS, AUTH nor SIZE, whatever the settings ask (said, not left to guess
  -- from a missing capabilities row)
  if i.ehlo_refused and not i.esmtp then
    row("capabilities", "none: the server refused EHLO (" .. i.ehlo_refused .. ") and took HELO, " ..
      "so it offers no extensions (no STARTTLS, AUTH, SIZE nor 8BITMIME)")
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
    -- the mechanisms mailhook speaks, and those it does not ("AUTH CRAM-MD5" read
    -- "offered: none" beside a capabilities line naming it)
    local other, known = {}, {}
    for _, k in ipairs(i.auth_offered or {}) do known[k:upper()] = true end
    for _, c in ipairs(i.capabilities or {}) do
      -- (Postfix's broken_sasl_auth_clients sends "AUTH=..." as well: each named once)
      local list = tostring(c):upper():match("^AUTH[%s,=](.*)$")
      for m in (list or ""):gmatch("[%w_-]+") do
        if not known[m] then other[#other + 1] = m; known[m] = true end
      end
    end
    local ours = #(i.auth_offered or {}) > 0 and table.concat(i.auth_offered, ", ") or "none"
    row("auth", "offered: " .. ours .. (#other > 0 and ("; also " .. table.concat(other, ", ") ..
        ", which mailhook does not speak") or ""))
  else
    row("auth", "not used (auth = false)")
  end
  return row
end

-- format(cfg, opts, report, err, info) -> the report's lines (a list), as
-- `mailhook test` prints them after its header: report set = success, else the
-- failure (err, info; info.report holds what was learned).
function M.format(cfg, opts, report, err, info)
  local out = {}
  if report then
    local row = info_rows(out, cfg, report.info)
    row("from", report.from .. " accepted (MAIL FROM" .. (report.probe and (", RCPT TO:<" .. report.probe .. ">") or "")
        .. " + RSET)")
    if report.sent then row("test message", "sent to " .. report.to .. ": " .. (report.reply or "")) end
    out[#out + 1] = "result: OK"
    return out
  end
  local learned = info and info.report or {}
  local row = info_rows(out, cfg, learned.info, info and info.stage, info)
  if learned.from_accepted then row("from", learned.from .. " accepted") end
  out[#out + 1] = "result: FAILED at stage " .. tostring(info and info.stage or "?")
  out[#out + 1] = "  error          " .. tostring(err)
  if info and info.smtp then
    out[#out + 1] = "  server reply   " .. tostring(info.smtp) .. " " .. (tostring(info.text or ""):gsub("\n", " "))
  end
  local hint = M.hint_for(cfg, info, learned, err)
  if hint then out[#out + 1] = "  hint           " .. hint end
  return out
end

-- data(cfg, opts, report, err, info) -> the result as data: what format() shows,
-- for --json and the console (docs/console.md).  stages: dns, connect, tls, auth,
-- sender, recipient in order, each "ok", "failed", "skipped" (not configured) or
-- "not reached", with at_ms (when it completed, from the start of the test)
-- where known.
local STAGES = { "dns", "connect", "tls", "auth", "sender", "recipient" }
function M.data(cfg, opts, report, msg, info)
  local rep = report or (info and info.report) or {}
  local i = rep.info or {}
  local failed = not report and (info and info.stage or "connect") or nil
  local passed, at = {}, rep.stage_at or {}
  local keys = not report and info and info.stage == "settings" and info.keys or nil
  for _, st in ipairs(rep.stages or {}) do passed[st] = true end
  -- a failure at connect was resolved first (the client names a failed
  -- resolution stage dns): a refused connect has no address, yet dns passed
  -- (not a missing server setting: why = "not_set", nothing was resolved)
  if passed.connect or (failed == "connect" and not (info and info.why == "not_set")) or
     (failed and failed ~= "dns" and i.address and i.address ~= "") then
    passed.dns = true
  end
  -- a failure past connect (a refused STARTTLS or certificate, AUTH...) was connected first
  if failed and failed ~= "dns" and failed ~= "connect" and i.address and i.address ~= "" then
    passed.connect = true
  end
  local optional = { tls = passed.connect and i.security == "none", auth = not cfg.auth, recipient = not opts.to }
  local stages, reached = {}, failed ~= "settings"   -- (settings: no stage was begun)
  for _, name in ipairs(STAGES) do
    local state
    if name == failed then state, reached = "failed", false
    elseif passed[name] then state = "ok"
    elseif reached and optional[name] then state = "skipped"
    else state = "not reached" end
    stages[#stages + 1] = { name = name, state = state, at_ms = at[name == "dns" and "connect" or name] }
  end
  local cert = i.cert and (i.cert.fingerprint or "") ~= "" and {
    subject = i.cert.subject, names = i.cert.names, issuer = i.cert.issuer, not_after = i.cert.not_after,
    sha256 = i.cert.fingerprint, verified = i.cert.verified and true or false, result = i.cert.result } or nil
  -- every list here goes out as [] when empty (json.array): the page and jq iterate them
  local json = require "mailhook.json"
  local caps = json.array {}
  for k, c in ipairs(i.capabilities or {}) do caps[k] = (c:gsub(",", " ")) end
  return {
    ok = report ~= nil, server = cfg.server, port = cfg.port, tls = cfg.tls or "auto", from = cfg.from,
    to = opts.to, username = cfg.auth and cfg.username or nil, stages = stages,
    connection = i.server and {
      server = i.server, address = (i.address ~= "" and i.address) or nil, port = i.port,
      security = i.security, tls_version = i.tls_version, cipher = i.cipher, certificate = cert,
      capabilities = caps, auth_mechanism = i.auth_mechanism, auth_offered = json.array(i.auth_offered or {}),
      greeting_after = i.greeting_after, greeting_late = i.greeting_late,
      ehlo_refused = i.ehlo_refused } or nil,
    from_accepted = rep.from_accepted or false, sent = rep.sent or false,
    test_reply = rep.sent and rep.reply or nil,
    failed_stage = failed, error = not report and tostring(msg) or nil,
    reply = not report and info and info.smtp and { smtp = info.smtp, enhanced = info.enhanced,
      text = (tostring(info.text or ""):gsub("\n", " ")) } or nil,
    hint = not report and M.hint_for(cfg, info, rep, msg) or nil,
    -- settings unset (M.missing): their names; key the first (the console marks its field)
    missing = keys and json.array(keys) or nil, key = keys and keys[1] or nil,
    warnings = json.array(M.warnings(cfg)),
  }
end

-- missing(cfg) -> nil | error, {key...}: the settings a test needs and cfg
-- leaves unset, named with the command that sets them (mh.smtp.unset: the
-- Lua API's mh.smtp.test says the same, at the same stage).
function M.missing(cfg) return require("mailhook.smtp").unset(cfg) end

-- The object run() returns: its fields, and the report's text as its string
-- form (the REPL prints it so; print(r) and tostring(r) give it too).
local Result = { __tostring = function(r) return (r.text:gsub("\n$", "")) end }
Result.__index = Result

-- warnings(cfg) -> {text...}: what a test warns about: the risky settings
-- (settings.warnings), and mail turned off (a test that passed, "OK", while
-- nothing would be sent: enqueue refused, the queue waiting).
function M.warnings(cfg)
  local settings = require "mailhook.settings"
  local out = settings.warnings and settings.warnings(cfg) or require("mailhook.json").array {}
  if cfg.enabled == false then
    out[#out + 1] = "enabled = false: this test talks to the server, but no mail is sent until " ..
      "`mailhook update enabled=true` (new mail is refused, the queue waits)"
  end
  return out
end

-- run{cfg = cfg, to = ADDR, timeout = S [, started = fn(header)] [, on_stage = fn(name,
-- report)]} -> result (waits):
-- result.ok, .from_accepted, .sent, .stages, .text (the header and the report, as
-- `mailhook test` prints them;
-- .body without the header), .warnings (about the settings: allow_plaintext_auth,
-- ...), .report (smtp.test's), .info (the session: security, capabilities,
-- auth_mechanism, ...); on failure .error, .stage, .hint, .failure (the failure's
-- info: class, smtp, why, waited); .data, the same facts as data (M.data: --json
-- and the console).  on_stage(name, report) is called as each stage passes.  started(header) runs before the test waits,
-- so a terminal shows what is being tried at once.
function M.run(opts)
  local cfg = opts.cfg
  local smtp = require "mailhook.smtp"
  local r = setmetatable({ warnings = M.warnings(cfg) }, Result)
  local header = M.header(cfg, opts)
  if opts.started then opts.started(header) end
  local report, err, info = smtp.test { to = opts.to, cfg = cfg, timeout = opts.timeout,
                                       on_stage = opts.on_stage }
  local lines = M.format(cfg, opts, report, err, info)
  r.data = M.data(cfg, opts, report, err, info)
  r.body = table.concat(lines, "\n") .. "\n"
  r.text = header .. "\n" .. r.body
  r.ok = report ~= nil
  local learned = report or (info and info.report) or {}
  r.from_accepted, r.sent, r.stages = learned.from_accepted == true, learned.sent == true, learned.stages
  if report then
    r.report, r.info = report, report.info
  else
    r.error, r.stage, r.failure = err, info and info.stage, info
    r.report = info and info.report
    r.info = r.report and r.report.info
    r.hint = M.hint_for(cfg, info, r.report, err)
  end
  return r
end

return M
