-- mailhook queue [--json] | queue show ID | queue rm ID | queue retry ID
-- Lists and manages the pickup/ and failed/ folders.  The listing is oldest
-- first (enqueue order) and streams: the ids are read once (8 bytes each),
-- then one batch of files at a time, whatever the size of the queue.
local args = require "mailhook.args"
local queue = require "mailhook.queue"
local json = require "mailhook.json"

local function age(secs)
  secs = math.floor(secs)
  if secs < 0 then secs = 0 end
  if secs < 120 then return string.format("%ds", secs) end
  if secs < 7200 then return string.format("%dm", secs // 60) end
  if secs < 172800 then return string.format("%dh", secs // 3600) end
  return string.format("%dd", secs // 86400)
end

-- A time as the log lines show it: UTC, ISO 8601, the offset written out.
local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%S+00:00", math.floor(t)) end

-- Values for the terminal, by mailhook.display's rule (the one for text local
-- users wrote): control bytes, C1 controls, bytes that are not UTF-8 as \xNN,
-- direction overrides, isolates and U+2028/9 as \u202e.  vis: a caller's
-- value as it came (a backslash as \x5C, as mailhook-drop -l records it: else
-- a "\x1b" a caller typed read exactly as an escaped ESC byte); esc: a value
-- the spool keeps escaped already (the items intake left out and why,
-- submit.printable; a drop-in's reason, spool.c), its backslashes kept.
local display = require "mailhook.display"
local vis, esc = display.raw, display.kept
-- s cut to at most n bytes on a character boundary: the LAST REPLY column of a
-- server's "451 4.7.1 Grüße..." cut inside the ü wrote a stray byte (no UTF-8)
-- to the terminal.
local cut = display.cut
-- The RECIPIENTS column: the pending ones, then those refused for good.
local function rcpts_of(e)
  local refused = {}
  for i, r in ipairs(e.refused or {}) do refused[i] = r.rcpt end
  local s = vis(table.concat(e.to or {}, ","))
  if #refused > 0 then s = s .. (s ~= "" and " " or "") .. "refused:" .. esc(table.concat(refused, ",")) end
  return s
end

-- When a waiting message goes next.  One due during an outage waits for the
-- connection's retry, not "now" (it read as being sent now): the running
-- service's next attempt (status.json), else "outage".
local function next_at(e, now, retry_at, outage)
  if (e.next_attempt or 0) > now or not outage then return e.next_attempt end
  -- (the service's time has a fraction: whole seconds, as the rest of the listing)
  return retry_at and retry_at > now and math.ceil(retry_at) or nil
end
local function next_attempt(e, now, retry_at, outage)
  if e.state == "failed" then return "failed" end
  local at = next_at(e, now, retry_at, outage)
  if not at then return "outage" end
  if at <= now then return "now" end
  return "in " .. age(at - now)
end

-- One entry as JSON: through mailhook.json like every --json of the CLI, so a
-- drop-in's file name or a server's reply holding bytes that are not UTF-8
-- still makes valid JSON (U+FFFD), keys sorted.
local function json_entry(e, waits, next_attempt)
  local refused = json.array()
  for i, r in ipairs(e.refused or {}) do refused[i] = { rcpt = r.rcpt, reply = r.reply } end
  return json.encode {
    id = e.id, state = e.state, size = e.size, queued_at = e.queued_at, attempts = e.attempts,
    next_attempt = next_attempt, from = e.from or "",
    to = json.array(e.to or {}), done = json.array(e.done or {}), refused = refused,
    last_reply = e.last_reply, reason = e.reason, failed_at = e.failed_at,
    uid = e.uid and math.tointeger(e.uid), login = e.login,
    name = e.name,   -- a file of maildrop/ (state "maildrop"): its name there
    stuck = e.stuck, -- one the running service cannot adopt (it can be read here): why
    outage = e.state ~= "failed" and waits or nil,   -- the server outage it waits on (SPOOL/outage)
  }
end

-- Who submitted it, as the listing shows it: the login, else the uid, else
-- "-" (a file written before the uid was kept).  Control bytes cannot reach
-- the terminal (a login is the password database's, still escaped).
local function submitter(e)
  if e.login then return e.login end
  if e.uid then return tostring(math.tointeger(e.uid)) end
  return "-"
end

local function list(json)
  local now = os.time()
  local n = 0
  local out = io.stdout
  -- a spool this user may not open (a local user's: 0710) is a one-line error
  local sp, serr, sinfo = queue.spool()   -- never makes the spool: "no spool at DIR" (exit 1)
  if not sp then return args.fail("queue", queue.why(serr, sinfo), 1) end
  if json then out:write("[") end
  -- the server outage met by the last deliverer: the reason of every waiting
  -- message that has no reply of its own (only the one tried got one)
  local outage = queue.outage()
  local waits = outage and ("outage: " .. outage.error)
  local c = outage and require("mailhook.status").running()
  local retry_at = c and tonumber(c.next_attempt)
  for e in queue.list() do
    n = n + 1
    if json then
      -- (absent while an outage waits on no known retry: 0 read as "due now")
      out:write(n > 1 and ",\n" or "\n", json_entry(e, outage and outage.error,
                                                  e.state == "failed" and e.next_attempt or
                                                  next_at(e, now, retry_at, outage) or
                                                  (not outage and 0 or nil)))
    else
      if n == 1 then
        out:write(string.format("%-16s %5s %9s %3s %-9s %-30s %-8s %s\n", "ID", "AGE", "SIZE", "TRY",
                                "NEXT", "LAST REPLY", "USER", "RECIPIENTS"))
      end
      local reply = cut((e.reason and esc(e.reason) or vis(e.last_reply or (e.state ~= "failed" and waits) or "")), 30)
      -- pending recipients, then those refused for good (never sent to again)
      out:write(string.format("%-16s %5s %9d %3d %-9s %-30s %-8s %s\n", vis(e.id), age(now - e.queued_at),
                              e.size, e.attempts, next_attempt(e, now, retry_at, outage), reply, vis(submitter(e)),
                              rcpts_of(e)))
    end
  end
  -- what local users handed over (maildrop/) and no service adopted yet:
  -- listed as sendmail -bp lists them (queue.maildrop), NEXT "maildrop"
  for _, e in ipairs(queue.maildrop()) do
    n = n + 1
    if json then
      out:write(n > 1 and ",\n" or "\n", json_entry(e, nil, nil))
    else
      if n == 1 then
        out:write(string.format("%-16s %5s %9s %3s %-9s %-30s %-8s %s\n", "ID", "AGE", "SIZE", "TRY",
                                "NEXT", "LAST REPLY", "USER", "RECIPIENTS"))
      end
      out:write(string.format("%-16s %5s %9d %3d %-9s %-30s %-8s %s\n", vis(e.id),
                              e.reason and "-" or age(now - e.queued_at), e.size, 0, "maildrop",
                              cut(esc(e.reason or (e.stuck and "the service cannot adopt it") or "waits for the service"), 30), vis(submitter(e)), rcpts_of(e)))
    end
  end
  -- (text only) files set aside in corrupt/: never sent, and listed nowhere else
  if not json then
    local dir = require("mailhook.core").paths.spool
    local cids, ctotal, _, cothers = require("mailhook.core").admin.page(dir .. "/corrupt", { limit = 0 })
    local nc = cids and (ctotal + (cothers or 0)) or 0
    if nc > 0 then
      out:write(string.format("%d file%s in %s/corrupt/: set aside as unusable, never sent (the log says why)\n",
                              nc, nc == 1 and "" or "s", dir))
    end
  end
  if json then out:write(n > 0 and "\n]\n" or "]\n")
  elseif n == 0 then out:write("queue is empty\n")
  elseif outage then
    out:write(string.format("delivery suspended since %s (%s ago): %s\n", iso(outage.since),
                            age(now - outage.since), vis(outage.error)))
  end
  return 0
end

local function show(id, as_json)
  local e, err = queue.show(id)
  if not e then return args.fail("queue show", err, 1) end
  if as_json then
    -- the entry as the listing's --json gives it, with the file and where its
    -- message starts (the text itself is the file's: a 50 MB fax is no JSON)
    local now = os.time()
    local outage = e.state ~= "failed" and queue.outage()
    local c = outage and require("mailhook.status").running()
    local at = e.state ~= "failed" and next_at(e, now, c and tonumber(c.next_attempt), outage) or e.next_attempt
    if e.state == "maildrop" then at = nil end
    local doc = json.decode(json_entry(e, outage and outage.error, at and at > 0 and at or nil))
    doc.path, doc.offset = e.path, e.offset
    io.write(json.encode(doc), "\n")
    return 0
  end
  local function line(k, v) if v ~= nil then io.write(string.format("%-13s %s\n", k .. ":", vis(v))) end end
  line("id", e.id); line("state", e.state); line("file", e.path); line("size", e.size)
  if e.state == "maildrop" then
    line("waits", e.stuck and ("in maildrop/: the service cannot adopt it: " .. e.stuck:gsub("^maildrop: ", ""))
                  or "in maildrop/ for the service to adopt it (it gets its own id then)")
  end
  line("queued", iso(e.queued_at))
  line("from", e.from == "" and "<>" or e.from or "(decided at adoption)")
  line("submitter", e.uid and ("uid " .. math.tointeger(e.uid) .. (e.login and (" (" .. e.login .. ")") or ""))
                    or "unknown (queued before the uid was kept)")
  -- the recipients still to send to; none left (every one accepted or refused)
  -- printed an empty "to:" line
  line("to", #e.to > 0 and table.concat(e.to, ", ") or
             ((#e.done > 0 or #(e.refused or {}) > 0) and "(none left to send to: accepted and refused below)" or ""))
  if #e.done > 0 then line("accepted", table.concat(e.done, ", ")) end
  local function line_esc(k, v) if v ~= nil then io.write(string.format("%-13s %s\n", k .. ":", esc(v))) end end
  for _, r in ipairs(e.refused or {}) do line_esc("refused", r.rcpt .. ": " .. r.reply) end
  line("attempts", e.attempts)
  -- during an outage, the connection's retry (the running service's), as the
  -- listing's NEXT says it: the message's own time had passed and read as due
  local now = os.time()
  local outage = e.state ~= "failed" and queue.outage()
  local c = outage and require("mailhook.status").running()
  local at = e.state ~= "failed" and next_at(e, now, c and tonumber(c.next_attempt), outage) or nil
  -- (a message in failed/ has none: its last attempt's time read as the next one)
  if e.state == "maildrop" then at, outage = nil, nil end
  if at and at > now then
    line("next attempt", iso(at) .. " (in " .. age(at - now) .. (outage and (e.next_attempt or 0) <= now and
         ", the connection's retry during the outage" or "") .. ")")
  elseif outage then
    line("next attempt", "none scheduled: it waits on the outage since " .. iso(outage.since) ..
         ", and no running service has a retry due (start the service, or `mailhook flush`)")
  elseif at and at > 0 then line("next attempt", iso(at)) end
  line("last reply", e.last_reply)
  line_esc("reason", e.reason)
  if e.failed_at then line("failed at", iso(e.failed_at)) end
  -- the message as it is sent, streamed (a spool file: opened by the core's
  -- rule, so a FIFO swapped in since the load cannot block `queue show`)
  local f = require("mailhook.core").fsutil.open(e.path)
  if f then
    io.write("\n")
    f:seek("set", e.offset)
    -- a CRLF or a UTF-8 character cut by a chunk's end: shown whole
    -- (display.lines keeps its first bytes for the next chunk)
    local shown = display.lines()
    while true do
      local chunk = f:read(65536)
      if not chunk then break end
      io.write(shown(chunk))
    end
    io.write(shown(nil))
    f:close()
  end
  return 0
end

local USAGE = "usage: mailhook queue [--json] | queue [--json] show ID | queue [--json] rm ID | queue [--json] retry ID\n"

-- subcommand -> what it does with a checked id.  Every id goes through
-- queue.check_id first: a path, an empty or over-long name, a control byte is a
-- one-line error naming it, never a traceback.
local SUB = {
  show = show,
  rm = function(id, as_json)
    local ok, err, info = queue.remove(id)
    if not ok then return args.fail("queue rm", err, 1) end
    local md = type(info) == "table" and info.maildrop   -- a file of maildrop/, never adopted
    if md then
      if as_json then io.write(json.encode { ok = true, id = id, removed = true, maildrop = md }, "\n")
      else print("removed maildrop/" .. vis(md) .. " (it was not adopted: never queued, never sent)") end
      return 0
    end
    local pid = queue.sending(id)
    if as_json then
      -- sending: the service's pid when the message's data is with the server already
      io.write(json.encode { ok = true, id = id, removed = true, sending = pid and math.tointeger(pid) or nil }, "\n")
    elseif pid then
      print("removed " .. id .. " from the queue, but the service (pid " .. pid .. ") is sending it right now: "
            .. "its data is with the server already and cannot be recalled; the server may deliver it "
            .. "(the service's log says whether it went)")
    else
      print("removed " .. id)
    end
    return 0
  end,
  retry = function(id, as_json)
    local ok, err, info = queue.retry(id)
    -- a file of maildrop/: not queued yet, it goes once adopted (exit 0: nothing is
    -- wrong); one the running service cannot adopt (info.stuck) is an error, below
    if not ok and type(info) == "table" and info.code == "EMAILDROP" and not info.stuck then
      if as_json then
        io.write(json.encode { ok = true, id = id, queued = false, maildrop = info.maildrop, note = err }, "\n")
      else print(vis(err)) end
      return 0
    end
    if not ok then return args.fail("queue retry", err, 1) end
    if as_json then io.write(json.encode { ok = true, id = id, queued = true }, "\n") return 0 end
    -- with no service on the spool nothing sends it: a newcomer waited for it
    local holder = require("mailhook.core").admin.lock_holder(require("mailhook.core").paths.spool)
    print("queued " .. id .. " for delivery" .. (holder and "" or
          "; no service runs on this spool: `mailhook flush` sends it now (or start `mailhook run`)"))
    return 0
  end,
}
SUB.remove = SUB.rm

return function(...)
  local opts, rest = args.parse({ ... }, { json = "flag", help = "flag" })
  if not opts then return args.fail("queue", rest) end
  local sub, id = rest[1], rest[2]
  if opts.help then
    io.write(USAGE)
    return 0
  end
  if sub == nil or sub == "list" then
    if rest[2] then return args.fail("queue", "unexpected argument '" .. rest[2] .. "'") end
    return list(opts.json)
  end
  local fn = SUB[sub]
  if not fn then
    return args.fail("queue", "unknown subcommand '" .. sub .. "' (list, show, rm, retry)")
  end
  if id == nil then return args.fail("queue " .. sub, "needs a message id: mailhook queue " .. sub .. " ID") end
  if rest[3] then return args.fail("queue " .. sub, "one message id at a time (got '" .. rest[3] .. "' too)") end
  local good, err = queue.check_id(id)
  if not good then return args.fail("queue " .. sub, err) end
  return fn(good, opts.json)
end
