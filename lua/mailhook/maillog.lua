-- mailhook.maillog — the mail log: one line per message and recipient once its
-- fate is known, greppable as Postfix's is:
--
--   ID: to=<rcpt>, from=<sender>, uid=N, size=N, relay=host[addr]:port, delay=S,
--       attempts=N, dsn=X.Y.Z, status=sent|deferred|failed (the reply)
--
-- (one line; uid=N, the local caller who submitted it as Postfix's pickup line
-- says it, is left out for a message queued before the spool kept it).  With log = journal the entry also carries the fields
-- MAILHOOK_QUEUE_ID, MAILHOOK_MESSAGE_ID (the Message-ID header),
-- MAILHOOK_RECIPIENT, MAILHOOK_SENDER, MAILHOOK_UID, MAILHOOK_STATUS, MAILHOOK_SMTP_REPLY,
-- MAILHOOK_DSN, MAILHOOK_RELAY, MAILHOOK_SIZE, MAILHOOK_DELAY,
-- MAILHOOK_ATTEMPTS, and MESSAGE_ID=M.CATALOG_ID (journalctl MESSAGE_ID=...
-- finds every outcome line).  No credential can reach it: the lines hold the
-- envelope, the relay and the server's replies to MAIL, RCPT and DATA only.
--
-- The deliverer (mailhook.delivery) calls it at its outcome points, each call
-- one line there:
--   maillog.relay(session)            -> "host[addr]:port", once per connection
--   maillog.note(entry, result)       the per-recipient replies of a send
--   maillog.outcome(d, entry, status [, reply [, done [, refused [, logged]]]])
--                                     the lines for the entry's recipients:
--                                     those the send accepted are `sent`,
--                                     those refused for good at this attempt
--                                     (refused = {{rcpt =, reply =}...}: by the
--                                     server, or by mailhook itself without
--                                     asking it, when they are in entry.to no
--                                     more) `failed` with their own reply, the
--                                     others take `status` and their own reply
--                                     (else `reply`); logged: more recipients
--                                     refused before whose line was never
--                                     written (drop-in items left out at intake)
--   maillog.before_move(entry)        its file leaves pickup/ next (to failed/):
--                                     the journal's Message-ID is read first
-- The entry's fields used: id, from, uid, to (the recipients pending at this
-- attempt), size and offset (the message is size - offset bytes), queued_at,
-- attempts (before this attempt), relay (set when it was submitted on a
-- session: none for a message that expired in the queue), path and data
-- (for the Message-ID, read only for the journal).
local core = require "mailhook.core"
local outcome = require "mailhook.outcome"   -- reply_text: one wording of a reply

local M = {}

-- The journal's MESSAGE_ID of every outcome line (a catalog id: 128 bits, fixed).
M.CATALOG_ID = "8d1c7e52a4f34b0f9b6e2d71c05a3e96"
M.REPLY_MAX = 500          -- characters of a reply kept in a line

function M.relay(s)
  local ok, info = pcall(function() return s.info and s:info() end)
  if not ok or type(info) ~= "table" then return nil end
  local host = info.server or info.address
  if not host then return nil end
  return string.format("%s[%s]:%s", tostring(host), tostring(info.address or host), tostring(info.port or "?"))
end

-- One line of text: control characters (CR, LF of a multi-line reply) become
-- spaces, so a server cannot add a line of its own to the log; one too long
-- is cut on a character boundary (a reply "550 Grüße..." cut inside the ü
-- logged a byte that is no UTF-8, a '?' once the log cleaned it).
local function clean(s, max)
  s = tostring(s):gsub("%c+", " "):gsub("^ +", ""):gsub(" +$", "")
  if max and #s > max then s = require("mailhook.core").text.cut(s, max - 3) .. "..." end
  return s
end

-- An address in its to=<...> or from=<...> field: what could end the field or
-- read as another field (angle brackets, comma, '=', blank, quote, and the
-- backslash itself) as \xNN.  A recipient item left out (sendmail's `To:
-- ...` text, an unprivileged caller's mailhook-drop -l) or a quoted local part
-- ("a, uid=0"@x) wrote `boss@x>, from=<ceo@x>, uid=0, ..., status=sent (...`:
-- a line whose first to=, uid= and status= a log reader took were the
-- sender's choice (found by review4).  A plain address is written as it is.
local function addr(s)
  return (clean(s):gsub("[<>\\,= \"]", function(c) return string.format("\\x%02x", c:byte()) end))
end

local function reply_text(r)
  if r == nil then return nil end
  if type(r) == "table" then r = outcome.reply_text(r) end
  return r and clean(r, M.REPLY_MAX)
end

function M.note(e, res)
  if type(e) ~= "table" or type(res) ~= "table" then return end
  local n = { accepted = {}, replies = {}, final = res.reply }
  for _, r in ipairs(res.accepted or {}) do n.accepted[r] = true end
  for _, r in ipairs(res.rejected or {}) do
    local rcpt = r.rcpt or r[1]
    if rcpt then n.replies[rcpt] = r end
  end
  e.maillog = n
end

-- The Message-ID header of the entry's message (the first 64 KiB of it).
local function message_id(e)
  if e.message_id ~= nil then return e.message_id or nil end   -- (M.before_move)
  local head = e.data
  if type(head) == "userdata" then head = head:bytes(65536) end   -- the deliverer's handle (spool.md)
  if not head and e.path then
    local f = require("mailhook.core").fsutil.open(e.path)   -- a spool file: never a FIFO
    if f then
      if e.offset then f:seek("set", e.offset) end
      head = f:read(65536)
      f:close()
    end
  end
  if not head then return nil end
  head = "\n" .. (head:match("^(.-)\r?\n\r?\n") or head)
  local id = head:match("\n[Mm][Ee][Ss][Ss][Aa][Gg][Ee]%-[Ii][Dd]:[ \t]*([^\r\n]*)")
  return id and id ~= "" and clean(id, 998) or nil
end

-- before_move(entry): the entry's file is about to leave pickup/ (failed/):
-- its Message-ID is read now for the journal's line after it, as the
-- deliverer's data handle went with the submit (message_id then reads the file)
function M.before_move(e)
  if type(e) == "table" and e.message_id == nil and core.logsink.get() == "journal" then
    e.message_id = message_id(e) or false
  end
end

local function fmt_delay(s)
  if s < 0 then s = 0 end
  if s < 10 then return string.format("%.2f", s) end
  if s < 100 then return string.format("%.1f", s) end
  return string.format("%d", math.floor(s + 0.5))
end

local LEVEL = { sent = "info", deferred = "info", failed = "warn" }

-- A recipient's fate is logged once: a recipient refused for good is `failed`
-- at the attempt that refused it (it is never in entry.to again), whatever
-- happens to the others; the ones still pending are `deferred` until the
-- attempt that settles them (docs/service.md, *The mail log*).
function M.outcome(d, e, status, reply, done, refused, logged)
  if type(e) ~= "table" then return end
  local to = type(e.to) == "table" and e.to or {}
  refused, logged = refused or {}, logged or {}
  if #to == 0 and #refused == 0 and #logged == 0 then return end
  local verbose = not d or d.verbose ~= false          -- info lines wanted (the deliverer knows)
  if not verbose and status ~= "failed" and #refused == 0 and #logged == 0 then return end
  local mh = require "mailhook"
  local log = d and d.log
  local injected = type(log) == "table" and log ~= mh.log     -- a test's logger: plain lines to it
  local journal = not injected and core.logsink.get() == "journal"
  local note = e.maillog or { accepted = {}, replies = {} }
  e.maillog = nil                                              -- logged once
  local sent_to = {}
  for _, r in ipairs(done or {}) do sent_to[r] = true end
  -- refused for good: failed, with its own reply; the ones no longer in
  -- entry.to (refused by mailhook before the send) after the others
  local gone, rcpts, seen = {}, {}, {}
  for _, r in ipairs(to) do rcpts[#rcpts + 1] = r; seen[r] = true end
  for _, list in ipairs({ refused, logged }) do
    for _, r in ipairs(list) do
      if type(r) == "table" and r.rcpt then
        gone[r.rcpt] = r.reply or true
        if not seen[r.rcpt] then rcpts[#rcpts + 1] = r.rcpt; seen[r.rcpt] = true end
      end
    end
  end
  local now = d and d.now and d.now() or mh.now()
  local common = {
    id = tostring(e.id),
    from = clean(e.from or ""),
    uid = math.tointeger(e.uid),
    size = e.size and math.max(0, e.size - (e.offset or 0)) or nil,
    relay = e.relay or "none",
    delay = e.queued_at and fmt_delay(now - e.queued_at) or nil,
    attempts = (e.attempts or 0) + (e.relay and 1 or 0),
  }
  local msgid = journal and message_id(e) or nil
  for _, rcpt in ipairs(rcpts) do
    local st, rep
    if note.accepted[rcpt] or sent_to[rcpt] then
      st, rep = "sent", reply_text(note.final) or "250 accepted"
    elseif gone[rcpt] then
      st = "failed"
      rep = reply_text(note.replies[rcpt]) or (gone[rcpt] ~= true and reply_text(gone[rcpt])) or reply_text(reply)
    else
      st, rep = status, reply_text(note.replies[rcpt]) or reply_text(reply)
      if st == "sent" then rep = rep or reply_text(note.final) or "250 accepted" end
    end
    local level = LEVEL[st] or "info"
    if verbose or level ~= "info" then
      local dsn = rep and rep:match("^[2-5]%d%d[ -]([2-5]%.%d%d?%d?%.%d%d?%d?)")
      local line = string.format("%s: to=<%s>, from=<%s>, %s%srelay=%s, %sattempts=%d, %sstatus=%s%s",
        common.id, addr(rcpt), addr(common.from), common.uid and ("uid=" .. common.uid .. ", ") or "",
        common.size and ("size=" .. common.size .. ", ") or "",
        common.relay, common.delay and ("delay=" .. common.delay .. ", ") or "", common.attempts,
        dsn and ("dsn=" .. dsn .. ", ") or "", st, rep and (" (" .. rep .. ")") or "")
      if injected then
        if log[level] then log[level](line) end
      else
        core.logsink.entry(level, line, journal and {
          MESSAGE_ID = M.CATALOG_ID,
          MAILHOOK_QUEUE_ID = common.id,
          MAILHOOK_MESSAGE_ID = msgid,
          MAILHOOK_RECIPIENT = clean(rcpt),
          MAILHOOK_SENDER = common.from,
          MAILHOOK_UID = common.uid,
          MAILHOOK_STATUS = st,
          MAILHOOK_SMTP_REPLY = rep,
          MAILHOOK_DSN = dsn,
          MAILHOOK_RELAY = common.relay,
          MAILHOOK_SIZE = common.size,
          MAILHOOK_DELAY = common.delay,
          MAILHOOK_ATTEMPTS = common.attempts,
        } or nil)
      end
    end
  end
end

return M
