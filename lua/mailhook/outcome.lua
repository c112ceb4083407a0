-- mailhook.outcome — what a failed send means for the message, decided from
-- the server's reply and the engine's info (never from guesswork): the
-- deliverer (mailhook.delivery) acts on the kind this module names, the mail
-- log (mailhook.maillog) and the failure sidecars word replies with it.
--
--   outcome.classify(info, reused, ctx) -> kind (see below)
--   outcome.permanent(x) -> boolean             x = {smtp =, class =}: the code first, the class second
--   outcome.stalled(info) -> boolean            a timeout on one message's own commands
--   outcome.overflow(r, accepted) -> boolean    r (a RCPT refusal) is only the server's recipient limit
--   outcome.reply_text{smtp =, enhanced =, text =} -> "451 4.7.0 try later" | nil
--   outcome.session_refusal_text(ci, info, reply, auth) -> what to tell an administrator
--
-- The kinds of classify(info, reused), in the order they are decided (reused:
-- the session had already carried a message):
--   "limit"         421, or a 4xx to MAIL, on a session that delivered before:
--                   the server's per-connection limit (Exim: 421; OpenSMTPD: 452)
--   "file"          the message's own spool file could not be read while it
--                   streamed (cut short, an I/O error; stage "file"): the
--                   engine closed the session before the final dot; that
--                   message's problem, never the server's
--   "connection"    the session broke (DNS, connect, TLS, auth, 421, EOF, timeout)
--   "session"       530/538 to MAIL or RCPT: authentication or TLS required, a
--                   setting and not the message; also every recipient refused
--                   5.7.1 / "access denied" with auth = false where the server
--                   offers AUTH (ctx: {auth =, caps =}; login_wanted)
--   "not_sent"      decided before asking the server (over its SIZE; 8-bit with
--                   nothing to convert it with)
--   "bad_address"   an address the engine will not send
--   "recipients"    the server answered MAIL: each recipient is settled by its reply
--   "permanent"     5xx (or a permanent class with no code): to failed/
--   "transient"     anything else: deferred, backoff
local M = {}

-- permanent(x): 5xx is permanent, 4xx transient; with no code, x.class decides.
function M.permanent(x)
  local code = tonumber(x.smtp)
  if code then return code >= 500 end
  return x.class == "permanent"
end

-- A refusal of the session rather than of a message: 530 to MAIL or RCPT
-- ("authentication required", RFC 4954; "must issue STARTTLS first", RFC 3207)
-- or 538 ("encryption required").  Failing each message for it would empty the
-- queue into failed/ over a setting.
local function session_refusal(info)
  local code = tonumber(info.smtp)
  return (code == 530 or code == 538) and (info.stage == "mail" or info.stage == "rcpt")
end

-- login_wanted(info, ctx): every recipient refused for a login the settings do
-- not give: auth = false, the server offers AUTH, no recipient accepted, and
-- each refusal is a 5xx with the enhanced code 5.7.1 or the words of an
-- access refusal.  Postfix never says 530 for a missing login: its submission
-- port answers "554 5.7.1 <x>: Recipient address rejected: Access denied",
-- its relay check "554 5.7.1 <x>: Relay access denied", to every recipient --
-- each message went to failed/ over a setting, each to be retried by hand.
-- ctx = {auth =, caps = the session's capability lines}.
-- A 5xx to MAIL worded so counts too (SendGrid: "550 Unauthenticated senders
-- not allowed"): the From is not in question, every message would get it.
local LOGIN_WORDS = { "unauthenticated", "not authenticated", "authentication required" }
local function asks_login(text)
  text = tostring(text or ""):lower()
  for _, w in ipairs(LOGIN_WORDS) do if text:find(w, 1, true) then return true end end
  return false
end
local function login_wanted(info, ctx)
  if type(ctx) ~= "table" or ctx.auth or (info.stage ~= "rcpt" and info.stage ~= "mail") then return false end
  local offers = false
  for _, c in ipairs(ctx.caps or {}) do if tostring(c):upper():find("^AUTH[%s,=]") then offers = true end end
  if not offers then return false end
  if info.stage == "mail" then
    local code = tonumber(info.smtp)
    return code ~= nil and code >= 500 and asks_login(info.text)
  end
  if #(info.accepted or {}) > 0 or #(info.rejected or {}) == 0 then return false end
  for _, r in ipairs(info.rejected) do
    local code, text = tonumber(r.smtp), tostring(r.text or ""):lower()
    if not code or code < 500 then return false end
    if r.enhanced ~= "5.7.1" and not text:find("access denied", 1, true) and not asks_login(text) then
      return false
    end
  end
  return true
end
M.login_wanted = login_wanted

-- stalled(info): a timeout while this message's own commands or data were
-- answered: it waits its backoff, the rest of the queue goes on.
function M.stalled(info)
  return info.code == "ETIMEDOUT" and (info.stage == "data" or info.stage == "rcpt" or info.stage == "mail")
end

-- overflow(r, accepted): r (a RCPT refusal, {smtp =, enhanced =, text =}) says
-- only that the transaction already holds as many recipients as the server
-- takes (RFC 5321 §4.5.3.1.10: 452, or an old server's 552, "too many
-- recipients", enhanced code X.5.3, RFC 3463): Exim's recipients_max ("452 too
-- many recipients"), OpenSMTPD's max-rcpt ("451 4.5.3 Too many recipients"),
-- Postfix's smtpd_recipient_limit.  A bare 452 counts only after a recipient of
-- the same transaction was accepted (accepted: how many were), else it is the
-- server's storage or a greylist: an ordinary 4xx.  Whether a new transaction
-- at once is worth it is the deliverer's call (it must settle someone).
function M.overflow(r, accepted)
  if type(r) ~= "table" then return false end
  local code = tonumber(r.smtp)
  if not code or not ((code >= 400 and code < 500) or code == 552) then return false end
  local enh = tostring(r.enhanced or "")
  local text = tostring(r.text or ""):lower()
  if enh:match("^[45]%.5%.3$") or text:find("too many recipients", 1, true)
     or text:find("^[45]%.5%.3") then
    return true
  end
  return code == 452 and (accepted or 0) >= 1
end

-- The stages before a transaction (the engine's names: runtime/smtp.c
-- stage_of): a failure there is about the server or the connection, never
-- about a message.
M.SESSION_STAGES = { dns = true, connect = true, greeting = true, ehlo = true, helo = true, tls = true,
                     auth = true }

function M.classify(info, reused, ctx)
  local code = tonumber(info.smtp)
  if info.stage == "file" then return "file" end
  if reused and (code == 421 or (info.stage == "mail" and code and code >= 400 and code < 500)) then
    return "limit"
  end
  if info.connection or M.SESSION_STAGES[info.stage] or code == 421 then
    return "connection"
  end
  if session_refusal(info) or login_wanted(info, ctx) then return "session" end
  if info.code == "ETOOBIG" or info.code == "E8BIT" then return "not_sent" end
  if info.code == "EBADADDR" then return "bad_address" end
  if (info.stage == "rcpt" or info.stage == "data") and info.smtp
     and #(info.accepted or {}) + #(info.rejected or {}) > 0 then
    return "recipients"
  end
  return M.permanent(info) and "permanent" or "transient"
end

-- reply_text{smtp=, enhanced=, text=} -> "451 4.7.0 try later" (or nil); a
-- string is returned as it is.
function M.reply_text(r)
  if type(r) == "string" then return r end
  if type(r) ~= "table" then return nil end
  if not r.smtp and not r.text then return nil end
  local parts = {}
  if r.smtp then parts[#parts + 1] = tostring(r.smtp) end
  local text = r.text and tostring(r.text):gsub("[\r\n]+", " ") or ""
  -- the engine's text may already start with the enhanced code
  if r.enhanced and r.enhanced ~= "" and text:sub(1, #r.enhanced) ~= r.enhanced then
    parts[#parts + 1] = r.enhanced
  end
  if text ~= "" then parts[#parts + 1] = text end
  return table.concat(parts, " ")
end

-- What to tell an administrator about a "session" refusal (ci: the session's
-- info(), for whether it was in plain text and offered STARTTLS; auth: whether
-- the settings log in).
function M.session_refusal_text(ci, info, reply, auth)
  local tls = require("mailhook.smtp").requires_tls(ci, info)
  if tls then return tls .. ": set tls = starttls (or auto)" end
  if tonumber(info.smtp) == 530 and auth == false then
    -- RFC 4954's "authentication required" ("530 5.7.57 Client not authenticated
    -- to send mail"), and no login set: that setting, not "check auth and tls"
    return "the server wants a login before it takes mail (" .. tostring(reply) ..
           "): set auth = true, username and password (mailhook test shows what was negotiated)"
  end
  if (info.stage == "rcpt" or info.stage == "mail") and tonumber(info.smtp) ~= 530 and tonumber(info.smtp) ~= 538 then
    return "the server refuses " .. (info.stage == "rcpt" and "every recipient" or "mail") ..
           " without a login (" .. tostring(reply) ..
           "), and offers one: set auth = true, username and password (mailhook test shows what was negotiated)"
  end
  return "the server refuses mail on this session (" .. tostring(reply) ..
         "): check `auth`, `username` and `tls` (mailhook test shows what was negotiated)"
end

return M
